package repo

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// BenchmarkCheckReadData verifies every byte of a repository on local disk
// (the text and random inputs of the stage benchmarks, 64 MB in 16 MiB
// packs), as `cairn check --read-data` does. Throughput is bytes of
// plaintext per second.
func BenchmarkCheckReadData(b *testing.B) {
	ctx := context.Background()
	text, random := benchData(b)
	be, err := local.Create(ctx, filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	r, err := Init(ctx, be, []byte("pw"), InitOptions{KDF: crypt.FastKDFParamsForTests()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var total int64
	for _, data := range [][]byte{text, random} {
		for _, ch := range benchChunks(b, data) {
			if _, err := r.SaveBlob(ctx, pack.DataBlob, backend.Hash(ch), ch); err != nil {
				b.Fatal(err)
			}
			total += int64(len(ch))
		}
	}
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		res, err := r.Check(ctx, CheckOptions{ReadData: true})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Problems) > 0 {
			b.Fatalf("problems: %v", res.Problems)
		}
	}
}
