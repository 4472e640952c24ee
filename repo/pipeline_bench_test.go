package repo

// Benchmarks of each stage of the backup pipeline and of the whole
// pipeline in memory, so that a regression shows in the stage that caused
// it. Every benchmark reports bytes of plaintext per second (SetBytes). Two
// inputs: "text" is Go source from GOROOT (what a source tree or a folder of
// documents holds; zstd fastest shrinks it about 4x), "random" is
// incompressible (media, archives, encrypted files). docs/performance.md
// records their results on the benchmark machine.

import (
	"bytes"
	"context"
	"go/build"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/restic/chunker"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// benchInputSize is the size of each benchmark input: large enough that the
// chunker cuts a few dozen chunks, small enough to build in a moment.
const benchInputSize = 32 << 20

var benchInputs struct {
	once         sync.Once
	text, random []byte
}

// benchData returns the text and random inputs, built once per process.
func benchData(b *testing.B) (text, random []byte) {
	b.Helper()
	benchInputs.once.Do(func() {
		benchInputs.text = goSourceText(benchInputSize)
		rnd := mrand.NewChaCha8([32]byte{1})
		benchInputs.random = make([]byte, benchInputSize)
		_, _ = rnd.Read(benchInputs.random)
	})
	return benchInputs.text, benchInputs.random
}

// goSourceText concatenates the .go files under GOROOT/src in path order up
// to n bytes, repeating them if there are fewer. Without a GOROOT it falls
// back to generated text of English-like word frequencies.
func goSourceText(n int) []byte {
	var buf bytes.Buffer
	buf.Grow(n)
	root := filepath.Join(build.Default.GOROOT, "src")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || buf.Len() >= n {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".go") {
			if data, err := os.ReadFile(p); err == nil {
				buf.Write(data)
			}
		}
		return nil
	})
	if buf.Len() == 0 {
		rnd := mrand.New(mrand.NewPCG(1, 2))
		words := strings.Fields("the of and to in is that for it as with was on be by this are from at or an have not which but")
		for buf.Len() < n {
			// Zipf-like: low indexes far more often.
			i := int(float64(len(words)) * rnd.Float64() * rnd.Float64())
			buf.WriteString(words[i])
			if rnd.IntN(12) == 0 {
				buf.WriteString(".\n")
			} else {
				buf.WriteByte(' ')
			}
		}
	}
	for buf.Len() < n {
		buf.Write(buf.Bytes()[:min(buf.Len(), n-buf.Len())])
	}
	return buf.Bytes()[:n]
}

// benchChunks cuts data with a fixed polynomial and returns the chunks.
func benchChunks(b *testing.B, data []byte) [][]byte {
	b.Helper()
	c := chunker.New(bytes.NewReader(data), benchPol)
	var out [][]byte
	for {
		ch, err := c.Next(nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, ch.Data)
	}
}

// benchPol is a fixed irreducible polynomial, so chunk boundaries do not
// change between runs.
const benchPol = chunker.Pol(0x3DA3358B4DC173)

func forEachInput(b *testing.B, fn func(b *testing.B, data []byte)) {
	text, random := benchData(b)
	b.Run("text", func(b *testing.B) { fn(b, text) })
	b.Run("random", func(b *testing.B) { fn(b, random) })
}

// BenchmarkStageChunk runs the content-defined chunker over one stream,
// reusing one chunk buffer (as the archiver's readers do).
func BenchmarkStageChunk(b *testing.B) {
	forEachInput(b, func(b *testing.B, data []byte) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, chunker.MaxSize)
		c := chunker.New(bytes.NewReader(data), benchPol)
		for b.Loop() {
			c.Reset(bytes.NewReader(data), benchPol)
			for {
				ch, err := c.Next(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				buf = ch.Data[:0]
			}
		}
	})
}

// BenchmarkStageSHA256 hashes chunks (blob IDs) on one core.
func BenchmarkStageSHA256(b *testing.B) {
	_, random := benchData(b)
	chunks := benchChunks(b, random)
	b.SetBytes(int64(len(random)))
	for b.Loop() {
		for _, c := range chunks {
			_ = backend.Hash(c)
		}
	}
}

// BenchmarkStageZstd compresses chunks with each mode's encoder (auto is
// the repository's default) on one core, into a reused buffer.
func BenchmarkStageZstd(b *testing.B) {
	c, err := newCodec()
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	for _, mode := range []CompressionMode{CompressionFastest, CompressionAuto} {
		b.Run(mode.String(), func(b *testing.B) {
			forEachInput(b, func(b *testing.B, data []byte) {
				chunks := benchChunks(b, data)
				var out []byte
				var stored int
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					stored = 0
					for _, ch := range chunks {
						comp, ok := c.compress(out, ch, mode)
						out = comp[:0]
						if ok {
							stored += len(comp)
						} else {
							stored += len(ch)
						}
					}
				}
				b.ReportMetric(float64(stored)/float64(len(data)), "stored/raw")
			})
		})
	}
}

// BenchmarkStageZstdDecode decompresses chunks on one core (restore).
func BenchmarkStageZstdDecode(b *testing.B) {
	c, err := newCodec()
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	text, _ := benchData(b)
	chunks := benchChunks(b, text)
	comp := make([][]byte, len(chunks))
	for i, ch := range chunks {
		comp[i] = c.encoder(CompressionAuto).EncodeAll(ch, nil)
	}
	var out []byte
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		for i, cc := range comp {
			raw, err := c.decompress(out, cc, len(chunks[i]))
			if err != nil {
				b.Fatal(err)
			}
			out = raw[:0]
		}
	}
}

// BenchmarkStageSeal seals 1 MiB blobs with XChaCha20-Poly1305 on one
// core, into a reused buffer.
func BenchmarkStageSeal(b *testing.B) {
	ring, err := crypt.NewKeyRing()
	if err != nil {
		b.Fatal(err)
	}
	k := ring.Current()
	_, random := benchData(b)
	const size = 1 << 20
	blob := random[:size]
	id := backend.Hash(blob)
	out := make([]byte, 0, size+crypt.Overhead)
	b.SetBytes(size)
	for b.Loop() {
		out = pack.SealBlob(k, out[:0], pack.DataBlob, id, blob)
	}
}

// BenchmarkStageOpen authenticates and decrypts 1 MiB blobs on one core.
func BenchmarkStageOpen(b *testing.B) {
	ring, err := crypt.NewKeyRing()
	if err != nil {
		b.Fatal(err)
	}
	_, random := benchData(b)
	const size = 1 << 20
	blob := random[:size]
	id := backend.Hash(blob)
	sealed := pack.SealBlob(ring.Current(), nil, pack.DataBlob, id, blob)
	pb := pack.Blob{Type: pack.DataBlob, ID: id, Length: uint32(len(sealed)), KeyID: ring.Current().ID()}
	out := make([]byte, 0, size)
	b.SetBytes(size)
	for b.Loop() {
		if out, err = pack.OpenBlob(ring, out[:0], pb, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipelineInMemory is the in-memory pipeline limit: GOMAXPROCS
// workers, each chunking its own share of the input as one stream, hashing,
// compressing (the default mode, auto: zstd's default level; raw when it
// does not shrink) and sealing every
// chunk into reused buffers. No index, no packing, no I/O: a backup cannot
// beat this on the same machine, and docs/performance.md compares backup
// throughput with it.
func BenchmarkPipelineInMemory(b *testing.B) {
	c, err := newCodec()
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	ring, err := crypt.NewKeyRing()
	if err != nil {
		b.Fatal(err)
	}
	k := ring.Current()
	forEachInput(b, func(b *testing.B, data []byte) {
		workers := runtime.GOMAXPROCS(0)
		share := len(data) / workers
		b.SetBytes(int64(share * workers))
		for b.Loop() {
			var wg sync.WaitGroup
			for w := range workers {
				part := data[w*share : (w+1)*share]
				wg.Go(func() {
					ch := chunker.New(bytes.NewReader(part), benchPol)
					buf := make([]byte, 0, chunker.MaxSize)
					var comp, sealed []byte
					for {
						chunk, err := ch.Next(buf)
						if err == io.EOF {
							return
						}
						if err != nil {
							panic("benchmark: chunker failed on an in-memory reader: " + err.Error())
						}
						buf = chunk.Data[:0]
						id := backend.Hash(chunk.Data)
						plain := chunk.Data
						cc, ok := c.compress(comp, chunk.Data, CompressionAuto)
						if ok {
							plain = cc
						}
						comp = cc[:0]
						sealed = pack.SealBlob(k, sealed[:0], pack.DataBlob, id, plain)
					}
				})
			}
			wg.Wait()
		}
	})
}

// BenchmarkSaveBlobs is the repository's share of a backup: chunks (cut
// beforehand) hashed and saved from GOMAXPROCS goroutines through SaveBlob
// into an in-memory backend, then Flush. Compared with
// BenchmarkPipelineInMemory it shows what packing, the index and uploads
// cost beyond the stages themselves. Every round saves into a fresh
// repository, so nothing deduplicates.
func BenchmarkSaveBlobs(b *testing.B) {
	forEachInput(b, func(b *testing.B, data []byte) {
		chunks := benchChunks(b, data)
		b.SetBytes(int64(len(data)))
		ctx := context.Background()
		for b.Loop() {
			b.StopTimer()
			r, err := Init(ctx, mem.New(), []byte("pw"), InitOptions{KDF: crypt.FastKDFParamsForTests()})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			next := make(chan []byte)
			var wg sync.WaitGroup
			for range runtime.GOMAXPROCS(0) {
				wg.Go(func() {
					for ch := range next {
						if _, err := r.SaveBlob(ctx, pack.DataBlob, backend.Hash(ch), ch); err != nil {
							b.Error(err)
						}
					}
				})
			}
			for _, ch := range chunks {
				next <- ch
			}
			close(next)
			wg.Wait()
			if err := r.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r.Close()
			b.StartTimer()
		}
	})
}
