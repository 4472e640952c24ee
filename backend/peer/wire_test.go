package peer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

var update = flag.Bool("update", false, "rewrite testdata/messages from the encoders")

// vector is one message of the spec, pinned in testdata/messages/NAME.hex.
type vector struct {
	name   string
	encode func() []byte
	decode func([]byte) (any, error)
	value  any
}

var sampleID = backend.Hash([]byte("cairn")).String()

func vectors() []vector {
	dec := func(f func([]byte) (any, error)) func([]byte) (any, error) { return f }
	ch := clientHello{MinVersion: 1, MaxVersion: 1, Repo: "laptop"}
	shOK := serverHello{Status: codeOK, Version: 1, Mode: ModeAppendOnly, MaxStreams: 64, Quota: 10 << 30, Used: 123456789}
	shRefused := serverHello{Status: codeBusy, Version: 1, Message: "too many connections from this device (limit 4)"}
	reqList := request{Op: opList, Type: backend.PackFile}
	reqStat := request{Op: opStat, Type: backend.ConfigFile, Name: "config"}
	reqGet := request{Op: opGet, Type: backend.PackFile, Name: sampleID, Offset: 4096, Length: 1000}
	reqPut := request{Op: opPut, Type: backend.IndexFile, Name: sampleID, Length: 5}
	reqDelete := request{Op: opDelete, Type: backend.LockFile, Name: sampleID}
	cm := commit{Sum: backend.Hash([]byte("cairn"))}
	respOK := response{Status: codeOK, Size: 1000}
	respErr := response{Status: codeQuota, Message: "quota exceeded: storing data/0123 (16.0 MiB) would bring this device's files on the server to 1.0 GiB, over its quota of 1.0 GiB"}
	lf := listFrame{Entries: []backend.FileInfo{{Name: sampleID, Size: 16 << 20}, {Name: backend.Hash(nil).String(), Size: 0}}}
	return []vector{
		{"client-hello", ch.encode, dec(func(p []byte) (any, error) { return decodeClientHello(p) }), ch},
		{"server-hello-ok", shOK.encode, dec(func(p []byte) (any, error) { return decodeServerHello(p) }), shOK},
		{"server-hello-busy", shRefused.encode, dec(func(p []byte) (any, error) { return decodeServerHello(p) }), shRefused},
		{"request-list", reqList.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqList},
		{"request-stat", reqStat.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqStat},
		{"request-get", reqGet.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqGet},
		{"request-put", reqPut.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqPut},
		{"request-delete", reqDelete.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), reqDelete},
		{"commit", cm.encode, dec(func(p []byte) (any, error) { return decodeCommit(p) }), cm},
		{"response-ok", respOK.encode, dec(func(p []byte) (any, error) { return decodeResponse(p) }), respOK},
		{"response-quota", respErr.encode, dec(func(p []byte) (any, error) { return decodeResponse(p) }), respErr},
		{"list-frame", lf.encode, dec(func(p []byte) (any, error) { return decodeListFrame(p) }), lf},
		{"request-receipt", request{Op: opReceipt}.encode, dec(func(p []byte) (any, error) { return decodeRequest(p) }), request{Op: opReceipt}},
	}
}

// TestVectors pins the byte layout of every message: the encoders must
// produce testdata/messages/NAME.hex (a whole frame, length prefix
// included, as hex), and decoding its payload must give the value back.
func TestVectors(t *testing.T) {
	checkVectors(t, vectors(), maxListFrame)
}

// checkVectors checks each vector against testdata/messages/NAME.hex
// (written with -update), reading frames of at most maxFrame bytes.
func checkVectors(t *testing.T, vs []vector, maxFrame int) {
	t.Helper()
	for _, v := range vs {
		path := filepath.Join("testdata", "messages", v.name+".hex")
		got := frame(v.encode())
		if *update {
			if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to write it)", err)
		}
		want, err := hex.DecodeString(strings.TrimSpace(string(text)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoder gives\n%x\nwant\n%x", v.name, got, want)
		}
		p, err := readFrame(bytes.NewReader(want), maxFrame)
		if err != nil {
			t.Fatalf("%s: read frame: %v", v.name, err)
		}
		val, err := v.decode(p)
		if err != nil {
			t.Fatalf("%s: decode: %v", v.name, err)
		}
		if !reflect.DeepEqual(val, v.value) {
			t.Errorf("%s: decoded %+v, want %+v", v.name, val, v.value)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	withTrailing := func(b []byte) []byte { return append(b, 0) }
	for _, c := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
	}{
		{"client hello: empty", clientHelloErr, []byte{}},
		{"client hello: wrong type", clientHelloErr, []byte{msgServerHello, 0, 1, 0, 1, 0}},
		{"client hello: version 0", clientHelloErr, clientHello{MinVersion: 0, MaxVersion: 1, Repo: "a"}.encode()},
		{"client hello: inverted range", clientHelloErr, clientHello{MinVersion: 3, MaxVersion: 2, Repo: "a"}.encode()},
		{"client hello: trailing", clientHelloErr, withTrailing(clientHello{MinVersion: 1, MaxVersion: 1, Repo: "a"}.encode())},
		{"client hello: name cut", clientHelloErr, clientHello{MinVersion: 1, MaxVersion: 1, Repo: "abc"}.encode()[:7]},
		{"server hello: unknown status", serverHelloErr, serverHello{Status: 99, Version: 1}.encode()},
		{"server hello: unknown mode", serverHelloErr, serverHello{Status: codeOK, Version: 1, Mode: 3, MaxStreams: 1}.encode()},
		{"server hello: no streams", serverHelloErr, serverHello{Status: codeOK, Version: 1, Mode: ModeReadWrite}.encode()},
		{"server hello: refusal with mode", serverHelloErr, serverHello{Status: codeBusy, Version: 1, Mode: ModeReadWrite}.encode()},
		{"server hello: negative quota", serverHelloErr, serverHello{Status: codeOK, Version: 1, Mode: 1, MaxStreams: 1, Quota: -1}.encode()},
		{"server hello: control character", serverHelloErr, serverHello{Status: codeBusy, Version: 1, Message: "a\x1b[2Jb"}.encode()},
		{"server hello: bad UTF-8", serverHelloErr, serverHello{Status: codeBusy, Version: 1, Message: "a\xffb"}.encode()},
		{"server hello: long message", serverHelloErr, serverHello{Status: codeBusy, Version: 1, Message: strings.Repeat("x", maxMessage+1)}.encode()},
		{"request: unknown op", requestErr, request{Op: 9, Type: 1}.encode()},
		{"request: list with name", requestErr, request{Op: opList, Type: 1, Name: "x"}.encode()},
		{"request: stat with offset", requestErr, request{Op: opStat, Type: 1, Name: "x", Offset: 1}.encode()},
		{"request: put with offset", requestErr, request{Op: opPut, Type: 1, Name: "x", Offset: 1}.encode()},
		{"request: put too large", requestErr, request{Op: opPut, Type: 3, Name: "x", Length: MaxFileSize + 1}.encode()},
		{"request: get too long", requestErr, request{Op: opGet, Type: 3, Name: "x", Length: MaxFileSize + 1}.encode()},
		{"request: offset over int64", requestErr, append(append([]byte{msgRequest, byte(opGet), 3}, bytes.Repeat([]byte{0xff}, 8)...), make([]byte, 10)...)},
		{"request: trailing", requestErr, withTrailing(request{Op: opStat, Type: 1, Name: "config"}.encode())},
		{"commit: short", commitErr, commit{}.encode()[:20]},
		{"commit: trailing", commitErr, withTrailing(commit{}.encode())},
		{"response: error with size", responseErr, response{Status: codeNotExist, Size: 5}.encode()},
		{"response: unknown status", responseErr, response{Status: 200}.encode()},
		{"response: newline in message", responseErr, response{Status: codeQuota, Message: "a\nb"}.encode()},
		{"list: no entries", listErr, []byte{msgList, 0, 0}},
		{"list: empty name", listErr, []byte{msgList, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"list: count beyond payload", listErr, []byte{msgList, 0xff, 0xff, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0}},
		{"list: trailing", listErr, withTrailing(listFrame{Entries: []backend.FileInfo{{Name: "a", Size: 1}}}.encode())},
	} {
		err := c.decode(c.in)
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: got %v, want an error wrapping ErrProtocol", c.name, err)
		}
	}
}

func clientHelloErr(p []byte) error { _, err := decodeClientHello(p); return err }
func serverHelloErr(p []byte) error { _, err := decodeServerHello(p); return err }
func requestErr(p []byte) error     { _, err := decodeRequest(p); return err }
func commitErr(p []byte) error      { _, err := decodeCommit(p); return err }
func responseErr(p []byte) error    { _, err := decodeResponse(p); return err }
func listErr(p []byte) error        { _, err := decodeListFrame(p); return err }

func TestReadFrame(t *testing.T) {
	// A frame over the limit is refused from its length alone.
	huge := []byte{0x7f, 0xff, 0xff, 0xff}
	if _, err := readFrame(bytes.NewReader(huge), 4096); !errors.Is(err, errFrameTooLarge) || !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized frame: got %v, want errFrameTooLarge", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 0}), 4096); !errors.Is(err, ErrProtocol) {
		t.Errorf("empty frame: got %v, want ErrProtocol", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 5, 1, 2}), 4096); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut frame: got %v, want io.ErrUnexpectedEOF", err)
	}
	p, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 2, 7, 8, 9}), 2)
	if err != nil || !bytes.Equal(p, []byte{7, 8}) {
		t.Errorf("frame at the limit: %x, %v", p, err)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":         "plain text",
		"a\nb\x1b[31mc":      "a?b?[31mc",
		"bad \xff utf8":      "bad ? utf8",
		"caf\u00e9 \u0085ok": "caf\u00e9 ?ok",
	} {
		if got := sanitize(in); got != want || !printable(got) {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	long := sanitize(strings.Repeat("\u00e9", maxMessage))
	if len(long) > maxMessage || !printable(long) {
		t.Errorf("sanitize of a long message: %d bytes, printable %v", len(long), printable(long))
	}
}
