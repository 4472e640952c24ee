package repo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/restic/chunker"
)

// FormatVersion is the repository format this code writes and reads.
const FormatVersion = 1

// Pack size bounds. Packs are assembled in memory, so the upper bound also
// bounds memory: at most (upload workers + 2 blob types) packs in flight.
const (
	DefaultPackSize = 16 << 20
	MinPackSize     = 1 << 20
	MaxPackSize     = 128 << 20
)

// maxConfigSize caps the config file before it is opened.
const maxConfigSize = 64 << 10

// Config is the repository configuration, sealed in the `config` file.
type Config struct {
	Version           int             `json:"version"`
	ID                string          `json:"id"`
	ChunkerPolynomial chunker.Pol     `json:"chunker_polynomial"`
	Compression       CompressionMode `json:"compression"`
	PackSize          int             `json:"pack_size"`
	Cipher            string          `json:"cipher"`
}

const cipherName = "xchacha20-poly1305"

// ErrFormat is returned for repository files whose bytes are malformed
// after they authenticated, or whose content is out of range.
var ErrFormat = errors.New("malformed repository file")

func newConfig(compression CompressionMode, packSize int) (Config, error) {
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return Config{}, fmt.Errorf("chunker polynomial: %w", err)
	}
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Config{}, err
	}
	if packSize == 0 {
		packSize = DefaultPackSize
	}
	c := Config{
		Version:           FormatVersion,
		ID:                hex.EncodeToString(id[:]),
		ChunkerPolynomial: pol,
		Compression:       compression,
		PackSize:          packSize,
		Cipher:            cipherName,
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if c.Version != FormatVersion {
		return fmt.Errorf("%w: config: unsupported format version %d", ErrFormat, c.Version)
	}
	if b, err := hex.DecodeString(c.ID); err != nil || len(b) != 32 {
		return fmt.Errorf("%w: config: invalid repository id", ErrFormat)
	}
	if !c.ChunkerPolynomial.Irreducible() || c.ChunkerPolynomial.Deg() != 53 {
		return fmt.Errorf("%w: config: invalid chunker polynomial", ErrFormat)
	}
	if c.PackSize < MinPackSize || c.PackSize > MaxPackSize {
		return fmt.Errorf("%w: config: pack size %d out of range", ErrFormat, c.PackSize)
	}
	if c.Cipher != cipherName {
		return fmt.Errorf("%w: config: unsupported cipher %q", ErrFormat, c.Cipher)
	}
	return nil
}

func encodeConfig(c Config) ([]byte, error) {
	return json.Marshal(c)
}

func decodeConfig(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: config: %v", ErrFormat, err)
	}
	if dec.More() {
		return c, fmt.Errorf("%w: config: trailing data", ErrFormat)
	}
	return c, c.validate()
}
