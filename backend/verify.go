package backend

import (
	"crypto/sha256"
	"fmt"
	"io"
)

// VerifyContent checks that the content rd holds is what h names: for any
// type but the config, SHA-256(content) must equal h.Name, and the content
// must be exactly rd.Length() bytes. A mismatch returns an error wrapping
// ErrHashMismatch. rd is rewound before and after, so a caller can verify
// and then store the same reader.
func VerifyContent(h Handle, rd RewindReader) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if h.Type == ConfigFile {
		return nil
	}
	want, err := ParseID(h.Name)
	if err != nil {
		return err
	}
	if err := rd.Rewind(); err != nil {
		return fmt.Errorf("verify %s: rewind: %w", h, err)
	}
	hw := sha256.New()
	n, err := io.Copy(hw, io.LimitReader(rd, rd.Length()+1))
	if err != nil {
		return fmt.Errorf("verify %s: %w", h, err)
	}
	if err := rd.Rewind(); err != nil {
		return fmt.Errorf("verify %s: rewind: %w", h, err)
	}
	if n != rd.Length() {
		return fmt.Errorf("verify %s: %w: content is %d bytes, want %d",
			h, ErrHashMismatch, n, rd.Length())
	}
	var got ID
	hw.Sum(got[:0])
	if got != want {
		return fmt.Errorf("verify %s: %w: content hashes to %s", h, ErrHashMismatch, got.Str())
	}
	return nil
}
