package repo

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzDecodeLock: a lock file's plaintext parses or is refused with
// ErrFormat; what parses has a PID the liveness check can use, and
// encodes back to a lock that parses the same.
func FuzzDecodeLock(f *testing.F) {
	b, err := json.Marshal(LockInfo{Time: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), Exclusive: true, Hostname: "h", Username: "u", PID: 42, UID: 1000, GID: 1000})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"pid":4294967297}`))
	f.Add([]byte(`{"time":"not a time"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := decodeLock(data)
		if err != nil {
			if info != (LockInfo{}) {
				t.Fatal("lock returned with an error")
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if info.PID < 0 || int64(info.PID) > 1<<31-1 {
			t.Fatalf("accepted PID %d", info.PID)
		}
		again, err := json.Marshal(info)
		if err != nil {
			t.Fatalf("accepted lock does not encode: %v", err)
		}
		info2, err := decodeLock(again)
		if err != nil || !info2.Time.Equal(info.Time) || info2.PID != info.PID || info2.Hostname != info.Hostname ||
			info2.Exclusive != info.Exclusive {
			t.Fatalf("lock changed by encoding: %+v, then %+v (%v)", info, info2, err)
		}
	})
}

// FuzzDecompress: a blob's compressed plaintext decompresses to exactly
// its recorded length, never more than a blob may hold, or fails.
func FuzzDecompress(f *testing.F) {
	c, err := newCodec()
	if err != nil {
		f.Fatal(err)
	}
	plain := []byte("a blob that compresses, a blob that compresses, a blob that compresses")
	comp, ok := c.compress(nil, plain, CompressionAuto)
	if !ok {
		f.Fatal("seed does not compress")
	}
	f.Add(comp, len(plain))
	f.Add(comp, maxBlobSize+1)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}, 0)
	f.Fuzz(func(t *testing.T, src []byte, rawLen int) {
		if rawLen < 0 || rawLen > maxBlobSize {
			rawLen %= maxBlobSize + 1
			if rawLen < 0 {
				rawLen = -rawLen
			}
		}
		// The caller allocates rawLen up front: keep the fuzzer's
		// memory in check the same way a blob's index entry would.
		if rawLen > 16<<20 {
			t.Skip("large raw length")
		}
		out, err := c.decompress(nil, src, rawLen)
		if err != nil {
			if out != nil {
				t.Fatal("output returned with an error")
			}
			return
		}
		if len(out) != rawLen {
			t.Fatalf("decompressed %d bytes, want %d", len(out), rawLen)
		}
	})
}

// FuzzDecodeFile: a compressed repository file (an index) decompresses
// to at most maxFilePlain bytes or fails.
func FuzzDecodeFile(f *testing.F) {
	c, err := newCodec()
	if err != nil {
		f.Fatal(err)
	}
	comp, _ := c.compress(nil, make([]byte, 1<<20), CompressionAuto)
	f.Add(comp)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := c.decodeFile(src)
		if err == nil && len(out) > maxFilePlain {
			t.Fatalf("decoded %d bytes, more than %d", len(out), maxFilePlain)
		}
	})
}
