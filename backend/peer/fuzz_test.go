package peer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addSeeds seeds f with every vector in testdata/messages, whatever its
// type, so each decoder also meets the others' messages: the payloads, or
// whole frames when frames is set.
func addSeeds(f *testing.F, frames bool) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "messages", "*.hex"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds in testdata/messages: %v", err)
	}
	for _, p := range paths {
		text, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(text)))
		if err != nil || len(b) < frameHeaderSize {
			f.Fatalf("%s: bad seed: %v", p, err)
		}
		if !frames {
			b = b[frameHeaderSize:]
		}
		f.Add(b)
	}
}

// fuzzDecoder checks that decode never panics, that a failure wraps
// ErrProtocol, and that what decodes encodes back to the same bytes.
func fuzzDecoder[T any](f *testing.F, decode func([]byte) (T, error), encode func(T) []byte) {
	addSeeds(f, false)
	f.Fuzz(func(t *testing.T, p []byte) {
		v, err := decode(p)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error not wrapping ErrProtocol: %v", err)
			}
			return
		}
		if got := encode(v); !bytes.Equal(got, p) {
			t.Fatalf("re-encoding gives\n%x\nnot the input\n%x", got, p)
		}
	})
}

func FuzzClientHello(f *testing.F) {
	fuzzDecoder(f, decodeClientHello, clientHello.encode)
}

func FuzzServerHello(f *testing.F) {
	fuzzDecoder(f, decodeServerHello, serverHello.encode)
}

func FuzzRequest(f *testing.F) {
	fuzzDecoder(f, decodeRequest, request.encode)
}

func FuzzCommit(f *testing.F) {
	fuzzDecoder(f, decodeCommit, commit.encode)
}

func FuzzResponse(f *testing.F) {
	fuzzDecoder(f, decodeResponse, response.encode)
}

func FuzzListFrame(f *testing.F) {
	fuzzDecoder(f, decodeListFrame, listFrame.encode)
}

// FuzzReadFrame feeds whole streams to the frame reader with a small limit:
// no panic, no payload over the limit, and a payload read is exactly
// the bytes after the length.
func FuzzReadFrame(f *testing.F) {
	addSeeds(f, true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 64
		p, err := readFrame(bytes.NewReader(b), limit)
		if err != nil {
			return
		}
		if len(p) == 0 || len(p) > limit {
			t.Fatalf("payload of %d bytes with limit %d", len(p), limit)
		}
		if !bytes.Equal(p, b[frameHeaderSize:frameHeaderSize+len(p)]) {
			t.Fatalf("payload differs from the input")
		}
	})
}
