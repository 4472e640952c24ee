package snapshot

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

func sampleTree() *Tree {
	sub := backend.Hash([]byte("subtree"))
	t := &Tree{}
	for _, n := range []*Node{
		{Name: "b.txt", Type: NodeFile, Mode: 0o644, ModTime: time.Unix(1700000000, 123456789).UTC(), Size: 5,
			Content: []backend.ID{backend.Hash([]byte("hello"))}, UID: 1000, GID: 1000, User: "u", Group: "g",
			ExtendedAttributes: []ExtendedAttribute{{Name: "user.k", Value: []byte{0, 1, 2}}}},
		{Name: "a", Type: NodeDir, Mode: os.ModeDir | 0o755, Subtree: &sub},
		{Name: "link", Type: NodeSymlink, Mode: os.ModeSymlink | 0o777, LinkTarget: "../x"},
		{Name: "dev", Type: NodeCharDev, Mode: os.ModeDevice | os.ModeCharDevice | 0o600, Device: 0x0103},
	} {
		if err := t.Insert(n); err != nil {
			panic(err)
		}
	}
	return t
}

func TestTreeRoundTrip(t *testing.T) {
	tr := sampleTree()
	b, err := EncodeTree(tr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTree(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := EncodeTree(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs:\n%s\n%s", b, b2)
	}
	if got.Find("b.txt") == nil || got.Find("zz") != nil {
		t.Fatal("Find")
	}
	if got.Nodes[0].Name != "a" {
		t.Fatal("nodes not sorted")
	}
}

func TestEmptyTreeEncodesAsEmptyList(t *testing.T) {
	b, err := EncodeTree(&Tree{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "{\"nodes\":[]}\n" {
		t.Fatalf("got %q", b)
	}
}

func TestDecodeTreeRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":       "nope",
		"unknown field":  `{"nodes":[],"x":1}`,
		"trailing":       `{"nodes":[]} {}`,
		"dotdot":         `{"nodes":[{"name":"..","type":"file"}]}`,
		"slash":          `{"nodes":[{"name":"a/b","type":"file"}]}`,
		"empty name":     `{"nodes":[{"name":"","type":"file"}]}`,
		"unsorted":       `{"nodes":[{"name":"b","type":"file"},{"name":"a","type":"file"}]}`,
		"duplicate":      `{"nodes":[{"name":"a","type":"file"},{"name":"a","type":"file"}]}`,
		"bad type":       `{"nodes":[{"name":"a","type":"weird"}]}`,
		"dir no subtree": `{"nodes":[{"name":"a","type":"dir"}]}`,
		"nul":            `{"nodes":[{"name":"a\u0000b","type":"file"}]}`,
		"null node":      `{"nodes":[null]}`,
	} {
		if _, err := DecodeTree([]byte(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func FuzzDecodeTree(f *testing.F) {
	b, _ := EncodeTree(sampleTree())
	f.Add(b)
	f.Add([]byte(`{"nodes":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTree(data)
		if err != nil {
			if tr != nil {
				t.Fatal("partial result on error")
			}
			return
		}
		enc, err := EncodeTree(tr)
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		tr2, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v", err)
		}
		enc2, _ := EncodeTree(tr2)
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not stable")
		}
	})
}
