package repo

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/backend/mem"
)

func TestDestinations(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	testInit(t, be, InitOptions{})
	r := testOpen(t, be, Options{Now: metaClock()})
	if list, err := r.Destinations(ctx); err != nil || len(list) != 0 {
		t.Fatalf("none saved: %v %v", list, err)
	}
	a := Destination{Name: "alice", Location: "peer://AAAA@alice.example.org:7484/laptop"}
	b := Destination{Name: "nas", Location: "sftp:backup@nas:/srv/cairn"}
	for _, d := range []Destination{a, b} {
		if err := r.AddDestination(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []Destination{{Name: "alice", Location: "/elsewhere"}, {Name: "other", Location: b.Location}, {Name: "Bad", Location: "/x"}} {
		if err := r.AddDestination(ctx, d); !errors.Is(err, ErrDestination) {
			t.Errorf("add %+v: %v, want ErrDestination", d, err)
		}
	}
	// Another opening of the repository (a new machine) sees them.
	r2 := testOpen(t, be, Options{Now: metaClock()})
	list, err := r2.Destinations(ctx)
	if err != nil || len(list) != 2 || list[0] != a || list[1] != b {
		t.Fatalf("saved: %+v %v", list, err)
	}
	// Sealed: no location in clear on the backend.
	for h, data := range be.Files() {
		if bytes.Contains(data, []byte("alice.example.org")) {
			t.Fatalf("%v holds a location in clear", h)
		}
	}
	if got, err := r2.RemoveDestination(ctx, "alice"); err != nil || got != a {
		t.Fatalf("remove: %+v %v", got, err)
	}
	if _, err := r2.RemoveDestination(ctx, "alice"); !errors.Is(err, ErrDestination) {
		t.Fatalf("remove twice: %v", err)
	}
	if list, err := r.Destinations(ctx); err != nil || len(list) != 1 || list[0] != b {
		t.Fatalf("after remove: %+v %v", list, err)
	}
}

func TestDecodeDestinationsRejects(t *testing.T) {
	for name, s := range map[string]string{
		"not json":      "{",
		"version":       `{"version":2,"destinations":[]}`,
		"unknown field": `{"version":1,"destinations":[],"x":1}`,
		"bad name":      `{"version":1,"destinations":[{"name":"-a","location":"/x"}]}`,
		"twice":         `{"version":1,"destinations":[{"name":"a","location":"/x"},{"name":"a","location":"/y"}]}`,
		"control":       `{"version":1,"destinations":[{"name":"a","location":"/x\u001b"}]}`,
		"empty loc":     `{"version":1,"destinations":[{"name":"a","location":""}]}`,
		"trailing":      `{"version":1,"destinations":[]} {}`,
	} {
		if _, err := DecodeDestinations([]byte(s)); !errors.Is(err, ErrDestination) {
			t.Errorf("%s: %v, want ErrDestination", name, err)
		}
	}
}

// FuzzDecodeDestinations: no panic; a failure wraps ErrDestination; a
// list that decodes encodes and decodes to the same list.
func FuzzDecodeDestinations(f *testing.F) {
	f.Add([]byte(`{"version":1,"destinations":[{"name":"alice","location":"peer://X@h:1/n"}]}`))
	f.Add([]byte(`{"version":1,"destinations":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := DecodeDestinations(data)
		if err != nil {
			if !errors.Is(err, ErrDestination) {
				t.Fatalf("error not wrapping ErrDestination: %v", err)
			}
			return
		}
		enc, err := EncodeDestinations(list)
		if err != nil {
			t.Fatalf("decoded list does not encode: %v", err)
		}
		back, err := DecodeDestinations(enc)
		if err != nil || len(back) != len(list) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range back {
			if back[i] != list[i] {
				t.Fatalf("entry %d: %+v then %+v", i, list[i], back[i])
			}
		}
	})
}
