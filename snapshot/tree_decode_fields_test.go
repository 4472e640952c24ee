package snapshot

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestTreeDecodeFastPathEveryField builds a tree whose nodes set every
// field of Node, and every field of the types inside it (found by
// reflection, so a field added later is set too), to a value that is not
// zero, encodes it with EncodeTree and requires decodeTreeFast, not the
// encoding/json fallback, to decode it to exactly the input. A field added
// to Node, ExtendedAttribute or Tree fails this test until tree_decode.go
// decodes the key EncodeTree writes for it; a field of a kind filler
// cannot fill fails it too.
func TestTreeDecodeFastPathEveryField(t *testing.T) {
	in := fullTree(t)
	data, err := EncodeTree(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeTreeFast(data)
	if err != nil {
		t.Fatalf("decodeTreeFast refused a tree with every field of Node set (%v): "+
			"tree_decode.go must decode every key EncodeTree writes:\n%s", err, data)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("decodeTreeFast decoded a tree with every field of Node set wrongly:\n%s\nof\n%s",
			fieldDiffs(reflect.ValueOf(got).Elem(), reflect.ValueOf(in).Elem(), "Tree"), data)
	}
	before := TreeDecoderMisses()
	if got, err := DecodeTree(data); err != nil || !reflect.DeepEqual(got, in) {
		t.Fatalf("DecodeTree: %v", err)
	}
	if n := TreeDecoderMisses() - before; n != 0 {
		t.Fatalf("DecodeTree counted %d misses of the fast path for a tree it took", n)
	}
	compareDecoders(t, data)
}

// fullTree returns a tree with one node of each type, every field of
// every node set (filler) except where Tree.check forbids it: content
// only on files, a subtree only on directories. Each field of Node is
// set in at least one node.
func fullTree(t *testing.T) *Tree {
	t.Helper()
	f := &filler{t: t}
	tr := &Tree{}
	tv := reflect.ValueOf(tr).Elem()
	for i := range tv.NumField() {
		if sf := tv.Type().Field(i); sf.Name != "Nodes" {
			f.fill(tv.Field(i), "Tree."+sf.Name)
		}
	}
	for _, typ := range []NodeType{NodeFile, NodeDir, NodeSymlink, NodeDev, NodeCharDev, NodeFifo, NodeSocket} {
		n := &Node{}
		f.fill(reflect.ValueOf(n).Elem(), "Node")
		n.Type = typ
		if typ != NodeFile {
			n.Content = nil
		}
		if typ != NodeDir {
			n.Subtree = nil
		}
		if err := tr.Insert(n); err != nil {
			t.Fatal(err)
		}
	}
	nt := reflect.TypeFor[Node]()
	for i := range nt.NumField() {
		set := false
		for _, n := range tr.Nodes {
			set = set || !reflect.ValueOf(n).Elem().Field(i).IsZero()
		}
		if !set {
			t.Fatalf("no node of the test tree sets Node.%s", nt.Field(i).Name)
		}
	}
	return tr
}

// filler sets values and everything inside them to values that are not
// zero, survive a round trip through encoding/json and differ from each
// other (each leaf takes the next serial number), so that a key decoded
// into the wrong field shows. It fails the test for a type it does not
// know how to fill: teach it, and decodeTreeFast.
type filler struct {
	t      *testing.T
	serial uint64
}

func (f *filler) fill(v reflect.Value, path string) {
	f.t.Helper()
	f.serial++
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		// Parsed, not built with time.FixedZone: an offset that is the
		// local zone's decodes to time.Local, as time.Parse gives it.
		tm, err := time.Parse(time.RFC3339Nano, fmt.Sprintf("2024-02-29T13:14:15.%09d+05:30", 123456789+f.serial))
		if err != nil {
			f.t.Fatal(err)
		}
		v.Set(reflect.ValueOf(tm))
		return
	case reflect.TypeFor[NodeType]():
		v.SetString(string(NodeFile)) // Tree.check refuses other strings
		return
	}
	switch v.Kind() {
	case reflect.String:
		// Escapes, HTML characters and non-ASCII, still a valid file name.
		name := path[strings.LastIndexAny(path, ".]")+1:]
		v.SetString(fmt.Sprintf("%s-%d \"\\\t<&> Ω \u2028😀", name, f.serial))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		limit := uint64(math.MaxUint64) >> (64 - v.Type().Bits())
		v.SetUint(limit - f.serial%limit)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		limit := int64(math.MaxInt64) >> (64 - v.Type().Bits())
		v.SetInt(-limit - 1 + int64(f.serial%uint64(limit)))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(-0.25 - float64(f.serial))
	case reflect.Array:
		for i := range v.Len() {
			f.fill(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{0, 1, '"', '\n', 0xfe, 0xff, byte(f.serial), byte(f.serial >> 8)})
			break
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range s.Len() {
			f.fill(s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem(), path)
		v.Set(p)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		f.fill(k, path+"[key]")
		f.fill(e, path+"[value]")
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				f.t.Fatalf("%s.%s: cannot set an unexported field: teach filler about %s", path, sf.Name, v.Type())
			}
			f.fill(v.Field(i), path+"."+sf.Name)
		}
	default:
		f.t.Fatalf("%s: no test value for a %s: teach filler (and decodeTreeFast) about it", path, v.Type())
	}
	if v.IsZero() {
		f.t.Fatalf("%s: filler left it zero", path)
	}
}

// fieldDiffs names the leaves where got and want differ.
func fieldDiffs(got, want reflect.Value, path string) string {
	if reflect.DeepEqual(got.Interface(), want.Interface()) {
		return ""
	}
	switch got.Kind() {
	case reflect.Struct:
		if got.Type() == reflect.TypeFor[time.Time]() {
			break
		}
		var b strings.Builder
		for i := range got.NumField() {
			b.WriteString(fieldDiffs(got.Field(i), want.Field(i), path+"."+got.Type().Field(i).Name))
		}
		return b.String()
	case reflect.Pointer:
		if !got.IsNil() && !want.IsNil() {
			return fieldDiffs(got.Elem(), want.Elem(), path)
		}
	case reflect.Slice:
		if got.Len() == want.Len() && got.Type().Elem().Kind() != reflect.Uint8 {
			var b strings.Builder
			for i := range got.Len() {
				b.WriteString(fieldDiffs(got.Index(i), want.Index(i), fmt.Sprintf("%s[%d]", path, i)))
			}
			return b.String()
		}
	}
	return fmt.Sprintf("%s: got %#v, want %#v\n", path, got.Interface(), want.Interface())
}

// TestTreeDecoderMissesCounted plays a fast decoder that has fallen
// behind Node by handing blobs straight to the fallback: a tree in
// EncodeTree's exact form is decoded and counted; hand-made JSON is
// decoded the same way but not counted.
func TestTreeDecoderMissesCounted(t *testing.T) {
	own, err := EncodeTree(sampleTree())
	if err != nil {
		t.Fatal(err)
	}
	spaced := []byte(strings.Replace(string(own), `"nodes":`, `"nodes": `, 1))
	for _, c := range []struct {
		name string
		data []byte
		want uint64
	}{
		{"own encoding", own, 1},
		{"own encoding of the empty tree", []byte("{\"nodes\":[]}\n"), 1},
		{"same tree, other spacing", spaced, 0},
		{"without the final newline", own[:len(own)-1], 0},
		{"malformed", []byte(`{"nodes":[{"name":"..","type":"file"}]}`), 0},
	} {
		before := TreeDecoderMisses()
		got, err := decodeTreeSlow(c.data)
		if n := TreeDecoderMisses() - before; n != c.want {
			t.Errorf("%s: counted %d misses, want %d", c.name, n, c.want)
		}
		if c.name == "malformed" {
			if err == nil {
				t.Errorf("%s: decoded", c.name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want, _ := decodeTreeJSON(c.data); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: fallback result differs from encoding/json", c.name)
		}
	}
	// The real fast decoder takes the own encodings: nothing counted.
	before := TreeDecoderMisses()
	for _, data := range [][]byte{own, []byte("{\"nodes\":[]}\n")} {
		if _, err := DecodeTree(data); err != nil {
			t.Fatal(err)
		}
	}
	if n := TreeDecoderMisses() - before; n != 0 {
		t.Fatalf("DecodeTree counted %d misses for trees the fast decoder takes", n)
	}
}

// TestTreeIsEncoding holds isEncoding to EncodeTree: true for what
// EncodeTree writes (every field set, random trees, the empty tree), false
// for the same trees one byte off.
func TestTreeIsEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	trees := []*Tree{{}, {Nodes: []*Node{}}, sampleTree(), fullTree(t)}
	for i := range 50 {
		trees = append(trees, randomTree(rng, 1+i%10))
	}
	for _, tr := range trees {
		data, err := EncodeTree(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !isEncoding(tr, data) {
			t.Fatalf("isEncoding is false for EncodeTree's output:\n%s", data)
		}
		for _, odd := range [][]byte{
			data[:len(data)-1],
			append(bytes.Clone(data), '\n'),
			append([]byte(" "), data...),
			bytes.Replace(data, []byte(`"nodes":`), []byte(`"nodes": `), 1),
			bytes.Replace(data, []byte(`},{`), []byte(`}, {`), 1),
			bytes.Replace(data, []byte(`"type":`), []byte(`"Type":`), 1),
		} {
			if !bytes.Equal(odd, data) && isEncoding(tr, odd) {
				t.Fatalf("isEncoding is true for a blob EncodeTree does not write:\n%s", odd)
			}
		}
	}
}
