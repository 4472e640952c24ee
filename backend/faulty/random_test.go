//go:build cairn_testonly

package faulty_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/mem"
)

// randomRun makes 200 Puts then 200 Gets of distinct files through a
// wrapper injecting at rate, and returns the faults reported, in order,
// and what each call returned.
func randomRun(t *testing.T, seed uint64, rate float64) (reports []string, results []string) {
	t.Helper()
	inner := mem.New()
	f := faulty.New(inner)
	f.InjectRandomly(seed, rate, func(m faulty.Method, kind string, h backend.Handle) {
		reports = append(reports, fmt.Sprintf("%v %s %s", m, kind, h.Name[:8]))
	})
	var handles []backend.Handle
	var contents [][]byte
	for i := range 200 {
		h, data := file(backend.PackFile, fmt.Sprintf("content %d %0*d", i, i*30, 0))
		handles, contents = append(handles, h), append(contents, data)
		err := f.Put(t.Context(), h, backend.NewByteReader(data))
		_, serr := inner.Stat(t.Context(), h)
		switch {
		case err == nil && serr != nil:
			t.Fatalf("put %d succeeded but stored nothing: %v", i, serr)
		case err != nil && !errors.Is(err, faulty.ErrInjected):
			t.Fatalf("put %d: %v, want the injected error", i, err)
		}
		results = append(results, fmt.Sprintf("put %v stored %v", err, serr == nil))
	}
	for i, h := range handles {
		var got []byte
		err := f.Get(t.Context(), h, 0, 0, func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		if err == nil && len(got) > len(contents[i]) {
			t.Fatalf("get %d returned more than was stored", i)
		}
		if err == nil && string(got) != string(contents[i][:len(got)]) {
			t.Fatalf("get %d returned other bytes: a random fault must never corrupt", i)
		}
		results = append(results, fmt.Sprintf("get %v %d", err, len(got)))
	}
	return reports, results
}

func TestInjectRandomly(t *testing.T) {
	reports, results := randomRun(t, 7, 0.25)
	// Every kind that suits Put and Get is drawn at this rate.
	kinds := map[string]int{}
	for _, r := range reports {
		var m, kind, name string
		if _, err := fmt.Sscan(r, &m, &kind, &name); err != nil {
			t.Fatal(err)
		}
		kinds[m+" "+kind]++
	}
	for _, want := range []string{"Put error", "Put broken-io", "Put lost-ack", "Get error", "Get short-get", "Get broken-io"} {
		if kinds[want] == 0 {
			t.Errorf("no %q fault drawn in 400 calls at rate 0.25 (drawn: %v)", want, kinds)
		}
	}
	if n := len(reports); n < 50 || n > 150 {
		t.Errorf("%d faults in 400 calls at rate 0.25", n)
	}
	// The same seed gives the same faults; another seed others.
	reports2, results2 := randomRun(t, 7, 0.25)
	if !slices.Equal(reports, reports2) || !slices.Equal(results, results2) {
		t.Errorf("same seed, different faults")
	}
	if reports3, _ := randomRun(t, 8, 0.25); slices.Equal(reports, reports3) {
		t.Errorf("another seed, same faults")
	}
}

func TestInjectRandomlyQueuedFirst(t *testing.T) {
	f := faulty.New(mem.New())
	f.AddFault(faulty.Stat).Times(3).ErrorInstead(errBoom)
	var n int
	f.InjectRandomly(1, 1, func(faulty.Method, string, backend.Handle) { n++ })
	h, _ := file(backend.KeyFile, "k")
	for i := range 5 {
		_, err := f.Stat(t.Context(), h)
		want := errBoom
		if i >= 3 {
			want = faulty.ErrInjected
		}
		if !errors.Is(err, want) {
			t.Errorf("stat %d: %v, want %v", i, err, want)
		}
	}
	if n != 2 {
		t.Errorf("%d random faults reported, want 2 (after the 3 queued ones)", n)
	}
	f.VerifyAllFaultsHit(t)
}
