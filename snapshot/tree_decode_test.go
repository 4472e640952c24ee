package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// randomTree builds a tree of n nodes covering every field EncodeTree
// writes: odd names (escapes, non-ASCII, HTML characters), all types,
// zero and maximal numbers, times in several zones, xattrs with nil,
// empty and binary values.
func randomTree(rng *rand.Rand, n int) *Tree {
	names := []string{"a", "Ω.txt", "x<y>&z", "tab\there", "quote\"back\\slash", "nl\nx", "\u2028\u2029",
		"emoji-😀", "ctl\x01\x1f", "日本語", "\xff\xfe", "sp ace", "a.b.c", ".hidden", "~", "-"}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 2*3600), time.FixedZone("", -(5*3600 + 1800))}
	types := []NodeType{NodeFile, NodeDir, NodeSymlink, NodeDev, NodeCharDev, NodeFifo, NodeSocket}
	num := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return ^uint64(0)
		case 2:
			return uint64(rng.IntN(10))
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	tm := func() time.Time {
		if rng.IntN(5) == 0 {
			return time.Time{}
		}
		return time.Unix(rng.Int64N(4e9)-1e9, rng.Int64N(1e9)*int64(rng.IntN(2))).In(zones[rng.IntN(len(zones))])
	}
	id := func() backend.ID {
		var id backend.ID
		for i := range id {
			id[i] = byte(rng.UintN(256))
		}
		return id
	}
	t := &Tree{}
	for i := 0; len(t.Nodes) < n; i++ {
		nd := &Node{
			Name:       fmt.Sprintf("%s%d", names[rng.IntN(len(names))], i),
			Type:       types[rng.IntN(len(types))],
			Mode:       os.FileMode(uint32(num())),
			ModTime:    tm(),
			AccessTime: tm(),
			ChangeTime: tm(),
			UID:        uint32(num()),
			GID:        uint32(num()),
			Inode:      num(),
			DeviceID:   num(),
			Size:       num(),
			Links:      num(),
			Device:     num(),
		}
		if rng.IntN(2) == 0 {
			nd.User, nd.Group = []string{"root", "u", "ü<>"}[rng.IntN(3)], []string{"wheel", "g"}[rng.IntN(2)]
		}
		switch nd.Type {
		case NodeFile:
			for range rng.IntN(4) {
				nd.Content = append(nd.Content, id())
			}
		case NodeDir:
			s := id()
			nd.Subtree = &s
		case NodeSymlink:
			nd.LinkTarget = names[rng.IntN(len(names))] + "/../t"
		}
		if rng.IntN(4) == 0 {
			for j := range rng.IntN(3) + 1 {
				var v []byte
				switch rng.IntN(3) {
				case 1:
					v = []byte{}
				case 2:
					v = []byte(names[rng.IntN(len(names))])
				}
				nd.ExtendedAttributes = append(nd.ExtendedAttributes,
					ExtendedAttribute{Name: fmt.Sprintf("user.%s%d", names[rng.IntN(len(names))], j), Value: v})
			}
		}
		if ValidName(nd.Name) != nil || t.Find(nd.Name) != nil {
			continue
		}
		if err := t.Insert(nd); err != nil {
			panic(err)
		}
	}
	return t
}

// trickyTrees are JSON texts that encoding/json accepts or refuses in ways
// the fast path must match or leave to it.
var trickyTrees = []string{
	`{"nodes":[]}`,
	` {"nodes" : [ ] } ` + "\n\t\r",
	`{"nodes":null}`,
	`null`,
	`{}`,
	`{"nodes":[]}}`,
	`{"nodes":[]}]]`,
	`{"nodes":[]} x`,
	`{"nodes":[],"nodes":[]}`,
	`{"Nodes":[]}`,
	`{"NODES":[{"NAME":"a","Type":"file"}]}`,
	`{"nodes":[{"name":"a","type":"file","size":1,"size":2}]}`,
	`{"nodes":[{"name":"a","type":"file","size":5}],"nodes":[{"name":"a","type":"file"}]}`,
	`{"nodes":[{"name":"a","type":"file","size":1.0}]}`,
	`{"nodes":[{"name":"a","type":"file","size":1e3}]}`,
	`{"nodes":[{"name":"a","type":"file","size":-0}]}`,
	`{"nodes":[{"name":"a","type":"file","size":01}]}`,
	`{"nodes":[{"name":"a","type":"file","size":18446744073709551615}]}`,
	`{"nodes":[{"name":"a","type":"file","size":18446744073709551616}]}`,
	`{"nodes":[{"name":"a","type":"file","uid":4294967295}]}`,
	`{"nodes":[{"name":"a","type":"file","uid":4294967296}]}`,
	`{"nodes":[{"name":"a","type":"file","mode":4294967296}]}`,
	`{"nodes":[{"name":"a","type":"file","size":"1"}]}`,
	`{"nodes":[{"name":"a","type":"file","size":null}]}`,
	`{"nodes":[{"name":null,"type":"file"}]}`,
	`{"nodes":[{"name":"\u0061","type":"fil\u0065"}]}`,
	`{"nodes":[{"name":"\ud83d\ude00","type":"file"}]}`,
	`{"nodes":[{"name":"\ud83d","type":"file"}]}`,
	`{"nodes":[{"name":"\ud83dx","type":"file"}]}`,
	`{"nodes":[{"name":"\ude00\ud83d","type":"file"}]}`,
	`{"nodes":[{"name":"\ud83d\ud83d\ude00","type":"file"}]}`,
	`{"nodes":[{"name":"\ud83d\u0041","type":"file"}]}`,
	`{"nodes":[{"name":"a\/b\\c\"d\b\f\n\r\t","type":"file"}]}`,
	`{"nodes":[{"name":"a\x","type":"file"}]}`,
	`{"nodes":[{"name":"a\u00g1","type":"file"}]}`,
	`{"nodes":[{"name":"a` + "\x01" + `","type":"file"}]}`,
	`{"nodes":[{"name":"a` + "\xff" + `","type":"file"}]}`,
	`{"nodes":[{"name":"a` + "\xed\xa0\x80" + `","type":"file"}]}`,
	`{"nodes":[{"na\u006de":"a","type":"file"}]}`,
	`{"nodes":[{"name":"a","type":"file","unknown":1}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":"2024-01-02T03:04:05.123456789Z"}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":"2024-01-02T03:04:05+02:00"}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":"2024-01-02T03:04:05+00:00"}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":"2024-01-02T03:04:05"}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":"2024-01-02T03:04:05\u005a"}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":null}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":0}]}`,
	`{"nodes":[{"name":"a","type":"file","mtime":"0001-01-01T00:00:00Z"}]}`,
	`{"nodes":[{"name":"a","type":"file","content":[]}]}`,
	`{"nodes":[{"name":"a","type":"file","content":null}]}`,
	`{"nodes":[{"name":"a","type":"file","content":["` + strings.Repeat("ab", 32) + `"]}]}`,
	`{"nodes":[{"name":"a","type":"file","content":["` + strings.Repeat("AB", 32) + `"]}]}`,
	`{"nodes":[{"name":"a","type":"file","content":["` + strings.Repeat("ab", 31) + `"]}]}`,
	`{"nodes":[{"name":"a","type":"file","content":[null]}]}`,
	`{"nodes":[{"name":"a","type":"dir","subtree":"` + strings.Repeat("0f", 32) + `"}]}`,
	`{"nodes":[{"name":"a","type":"dir","subtree":null}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":null}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","value":null}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","value":""}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","value":"AAEC"}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","value":"AA\nEC"}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","value":"AA\u000aEC"}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","value":"AAE"}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","value":"AAEC","value":"AA=="}]}]}`,
	`{"nodes":[{"name":"a","type":"file","extended_attributes":[{"name":"x","Value":"AAEC"}]}]}`,
	`{"nodes":[{}]}`,
	`{"nodes":[null]}`,
	`{"nodes":[1]}`,
	`{"nodes":[{"name":"a","type":"file"},]}`,
	`{"nodes":[{"name":"a","type":"file",}]}`,
	`{"nodes":[{"name":"a" "type":"file"}]}`,
	`{"nodes":[{"name":"b","type":"file"},{"name":"a","type":"file"}]}`,
	"\xef\xbb\xbf" + `{"nodes":[]}`,
	``,
	` `,
}

// seedTrees returns tree blobs from testdata, real encodings and the
// tricky cases.
func seedTrees(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, s := range trickyTrees {
		seeds = append(seeds, []byte(s))
	}
	b, err := EncodeTree(sampleTree())
	if err != nil {
		tb.Fatal(err)
	}
	seeds = append(seeds, b)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 3, 10} {
		b, err := EncodeTree(randomTree(rng, n))
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	files, _ := filepath.Glob("testdata/*.tree")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// compareDecoders fails unless the fast decoder agrees with encoding/json:
// on its own where it answers at all, and through DecodeTree always. It
// also fails if the fast decoder refuses a blob that is exactly what
// EncodeTree writes: only hand-made input may take the slow path.
func compareDecoders(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := decodeTreeJSON(data)
	fast, fastErr := decodeTreeFast(data)
	if fastErr == nil {
		if wantErr != nil {
			t.Fatalf("fast path accepted what encoding/json refuses (%v):\n%q", wantErr, data)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("fast path differs from encoding/json on\n%q\nfast %s\njson %s", data, dumpTree(fast), dumpTree(want))
		}
	} else if !errors.Is(fastErr, errSlowPath) {
		t.Fatalf("fast path returned %v, not errSlowPath", fastErr)
	}
	if wantErr == nil {
		if err := want.check(); err != nil {
			want, wantErr = nil, err
		}
	}
	if fastErr != nil && wantErr == nil && isEncoding(want, data) {
		t.Fatalf("fast path refused a tree exactly as EncodeTree writes it:\n%q", data)
	}
	got, err := DecodeTree(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("DecodeTree error %v, encoding/json %v, on\n%q", err, wantErr, data)
	}
	if err != nil && !errors.Is(err, ErrFormat) {
		t.Fatalf("DecodeTree error %v is not ErrFormat", err)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeTree differs from encoding/json on\n%q", data)
	}
}

func dumpTree(t *Tree) string {
	var b strings.Builder
	for _, n := range t.Nodes {
		fmt.Fprintf(&b, "%#v\n", n)
	}
	return b.String()
}

func TestTreeDecodeTricky(t *testing.T) {
	for _, s := range seedTrees(t) {
		compareDecoders(t, s)
	}
}

// TestTreeDecodeFastPathTaken proves the fast path handles everything
// EncodeTree writes (so the speed-up applies) and agrees with encoding/json.
func TestTreeDecodeFastPathTaken(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 200 {
		tr := randomTree(rng, 1+i%20)
		b, err := EncodeTree(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeTreeFast(b); err != nil {
			t.Fatalf("fast path refused an encoded tree: %v\n%s", err, b)
		}
		compareDecoders(t, b)
		// Pretty-printed with reordered whitespace it still agrees.
		var ind bytes.Buffer
		for _, c := range b {
			ind.WriteByte(c)
			if c == ',' || c == ':' || c == '[' || c == '{' {
				ind.WriteString("\n\t ")
			}
		}
		compareDecoders(t, ind.Bytes())
	}
}

// TestTreeDecodeFieldOrder swaps the keys of nodes: JSON objects are
// unordered and the fast path must not care.
func TestTreeDecodeFieldOrder(t *testing.T) {
	in := `{"nodes":[{"subtree":"` + strings.Repeat("12", 32) + `","uid":7,"type":"dir","name":"d","mtime":"2020-01-01T00:00:00Z"},` +
		`{"content":["` + strings.Repeat("34", 32) + `"],"size":3,"name":"f","type":"file"}]}`
	if _, err := decodeTreeFast([]byte(in)); err != nil {
		t.Fatal(err)
	}
	compareDecoders(t, []byte(in))
}

// TestTreeDecodeSharedArenas checks that nodes decoded together do not
// share mutable backing arrays: appending to one node's content must not
// change the next node's.
func TestTreeDecodeSharedArenas(t *testing.T) {
	in := `{"nodes":[{"name":"a","type":"file","content":["` + strings.Repeat("11", 32) + `"]},` +
		`{"name":"b","type":"file","content":["` + strings.Repeat("22", 32) + `"]}]}`
	tr, err := DecodeTree([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(tr.Nodes[0].Content, backend.ID{})
	want, _ := backend.ParseID(strings.Repeat("22", 32))
	if tr.Nodes[1].Content[0] != want {
		t.Fatal("append to one node's content overwrote another's")
	}
}

// FuzzTreeDecodeDifferential decodes the same bytes with the fast decoder
// and with encoding/json and requires the same answer.
func FuzzTreeDecodeDifferential(f *testing.F) {
	for _, s := range seedTrees(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareDecoders(t, data)
	})
}

func BenchmarkDecodeTree(b *testing.B) {
	for _, n := range []int{10, 1000} {
		rng := rand.New(rand.NewPCG(5, 6))
		tr := &Tree{}
		// Shaped like a backup of a source tree: mostly files with one
		// or two chunks, some directories, one owner, UTC times.
		for i := range n {
			nd := &Node{Name: fmt.Sprintf("file-%06d.go", i), Type: NodeFile, Mode: 0o644,
				ModTime: time.Unix(1.7e9+rng.Int64N(1e7), rng.Int64N(1e9)).UTC(), UID: 1000, GID: 1000,
				User: "user", Group: "user", Inode: rng.Uint64N(1e7), DeviceID: 2049, Size: rng.Uint64N(1e5), Links: 1}
			nd.AccessTime, nd.ChangeTime = nd.ModTime, nd.ModTime
			if i%10 == 0 {
				nd.Type, nd.Mode, nd.Size = NodeDir, os.ModeDir|0o755, 0
				s := backend.Hash([]byte(nd.Name))
				nd.Subtree = &s
			} else {
				for j := range 1 + i%2 {
					nd.Content = append(nd.Content, backend.Hash([]byte(fmt.Sprint(i, j))))
				}
			}
			tr.Nodes = append(tr.Nodes, nd)
		}
		data, err := EncodeTree(tr)
		if err != nil {
			b.Fatal(err)
		}
		// The same tree with one key that only encoding/json matches: what
		// DecodeTree costs on hand-made input, its miss check included.
		odd := bytes.Replace(data, []byte(`"name":`), []byte(`"Name":`), 1)
		for _, dec := range []struct {
			name string
			data []byte
			fn   func([]byte) (*Tree, error)
		}{{"fast", data, DecodeTree}, {"json", data, func(d []byte) (*Tree, error) {
			t, err := decodeTreeJSON(d)
			if err == nil {
				err = t.check()
			}
			return t, err
		}}, {"fallback", odd, DecodeTree}} {
			b.Run(fmt.Sprintf("%s/nodes=%d", dec.name, n), func(b *testing.B) {
				b.SetBytes(int64(len(dec.data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := dec.fn(dec.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
