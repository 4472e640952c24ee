package repo

import (
	"context"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// TestCheckExecutesItsPlan: PlanCheck lists every key file, index file
// and pack with its size, and chooses the packs to read; ExecuteCheck
// reads exactly those packs, each once, and reports the planned counts
// and bytes. The structure check alone reads no pack.
func TestCheckExecutesItsPlan(t *testing.T) {
	ctx := context.Background()
	sizes := make([]int, 12)
	for i := range sizes {
		sizes[i] = 5
	}
	fx := buildFixture(t, 21, sizes...)
	f, reads := recordPackReads(fx.be)
	r := testOpen(t, f, Options{})
	reads()
	files := fx.be.Files()
	var keys, index int
	for h := range files {
		keys += b2i(h.Type == backend.KeyFile)
		index += b2i(h.Type == backend.IndexFile)
	}

	for _, sub := range []string{"", "all", "1/3", "30%"} {
		opts := CheckOptions{ReadData: sub == "all"}
		if sub != "" && sub != "all" {
			s, err := ParseSubset(sub)
			if err != nil {
				t.Fatal(err)
			}
			opts.Subset = s
		}
		plan, err := r.PlanCheck(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Keys) != keys || len(plan.IndexFiles) != index || len(plan.Packs) != len(packIDs(fx.be)) {
			t.Fatalf("%q: plan lists %d keys, %d index files, %d packs; the backend holds %d, %d, %d",
				sub, len(plan.Keys), len(plan.IndexFiles), len(plan.Packs), keys, index, len(packIDs(fx.be)))
		}
		var total int64
		for _, p := range plan.Packs {
			if want := int64(len(files[backend.Handle{Type: backend.PackFile, Name: p.ID.String()}])); p.Size != want {
				t.Fatalf("%q: plan says pack %s holds %d bytes, it holds %d", sub, p.ID.Str(), p.Size, want)
			}
			total += p.Size
		}
		var planned []string
		var readBytes int64
		for _, p := range plan.Read {
			planned = append(planned, p.ID.String())
			readBytes += p.Size
		}
		if total != plan.PackBytes || readBytes != plan.ReadBytes || plan.ReadData != (sub != "") || (sub == "") != (len(plan.Read) == 0) {
			t.Fatalf("%q: plan %+v", sub, plan)
		}
		res, err := r.ExecuteCheck(ctx, plan, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := reads()
		slices.Sort(got)
		if !slices.Equal(got, planned) {
			t.Errorf("%q: read packs %q, the plan %q", sub, got, planned)
		}
		if res.PacksRead != len(plan.Read) || res.BytesRead != plan.ReadBytes || res.Packs != len(plan.Packs) || res.IndexFiles != len(plan.IndexFiles) {
			t.Errorf("%q: result %+v, plan %d packs, %d read (%d bytes)", sub, res, len(plan.Packs), len(plan.Read), plan.ReadBytes)
		}
		wantProblems(t, res.Problems)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
