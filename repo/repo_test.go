package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

var testPassword = []byte("correct horse battery staple")

func testInit(t *testing.T, be backend.Backend, opts InitOptions) *Repository {
	t.Helper()
	if opts.KDF.Algorithm == "" {
		opts.KDF = crypt.FastKDFParamsForTests()
	}
	if opts.PackSize == 0 {
		opts.PackSize = MinPackSize
	}
	r, err := Init(context.Background(), be, testPassword, opts)
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func testOpen(t *testing.T, be backend.Backend, opts Options) *Repository {
	t.Helper()
	if opts.Warn == nil {
		// Unexpected warnings hide bugs behind fallbacks: fail on them.
		opts.Warn = func(msg string) { t.Errorf("unexpected warning: %s", msg) }
	}
	r, _, err := OpenForJob(context.Background(), be, testPassword, opts, NoLock)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func randomBlob(rnd *rand.Rand, n int, compressible bool) []byte {
	b := make([]byte, n)
	if compressible {
		words := []string{"alpha ", "beta ", "gamma ", "delta\n"}
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[rnd.Intn(len(words))])
		}
		copy(b, buf.Bytes())
		return b
	}
	rnd.Read(b)
	return b
}

func TestInitOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	cfg := r.Config()

	r2 := testOpen(t, be, Options{})
	if r2.Config() != cfg {
		t.Fatalf("config differs after open: %+v vs %+v", r2.Config(), cfg)
	}
	if _, err := Open(ctx, be, []byte("wrong"), Options{}); !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("wrong password: got %v", err)
	}
	if _, err := Open(ctx, mem.New(), testPassword, Options{}); !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("empty backend: got %v", err)
	}
}

func TestInitTwiceChangesNothing(t *testing.T) {
	be := mem.New()
	testInit(t, be, InitOptions{})
	before := snapshotFiles(be)
	_, err := Init(context.Background(), be, testPassword, InitOptions{KDF: crypt.FastKDFParamsForTests()})
	if !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second init: got %v", err)
	}
	if after := snapshotFiles(be); after != before {
		t.Fatalf("second init changed the repository:\n%s\nvs\n%s", before, after)
	}
}

func snapshotFiles(be *mem.Backend) string {
	var lines []string
	for h, data := range be.Files() {
		lines = append(lines, fmt.Sprintf("%s %x", h, backend.Hash(data)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestSaveLoadBlobs(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(1))
	want := map[backend.ID][]byte{}
	for i := 0; i < 300; i++ {
		data := randomBlob(rnd, 1+rnd.Intn(64<<10), i%2 == 0)
		id := backend.Hash(data)
		known, err := r.SaveBlob(ctx, pack.DataBlob, id, data)
		if err != nil {
			t.Fatal(err)
		}
		if known != (want[id] != nil) {
			t.Fatalf("blob %d: known=%v", i, known)
		}
		want[id] = data
	}
	// A saved blob is known at once, before Flush.
	for id := range want {
		if !r.Has(pack.DataBlob, id) {
			t.Fatalf("blob %s not known before flush", id.Str())
		}
		break
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, rr := range []*Repository{r, testOpen(t, be, Options{})} {
		for id, data := range want {
			got, err := rr.LoadBlob(ctx, pack.DataBlob, id, nil)
			if err != nil {
				t.Fatalf("load %s: %v", id.Str(), err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("blob %s differs", id.Str())
			}
			if rr.Has(pack.TreeBlob, id) {
				t.Fatalf("data blob %s reported as tree blob", id.Str())
			}
		}
	}
	// More than one pack was written: the pack size is 1 MiB.
	packs := 0
	_ = be.List(ctx, backend.PackFile, func(backend.FileInfo) error { packs++; return nil })
	if packs < 2 {
		t.Fatalf("expected several packs, got %d", packs)
	}
}

func TestCompressionModes(t *testing.T) {
	ctx := context.Background()
	// Word salad: compressible like prose, with room between zstd's
	// levels (a repeated phrase shrinks the same at every level).
	rnd := rand.New(rand.NewSource(7))
	words := strings.Fields("the a backup of every file restores byte for byte and metadata tree pack index snapshot log mirror peer key chunk")
	var text bytes.Buffer
	for text.Len() < 200000 {
		text.WriteString(words[rnd.Intn(len(words))])
		text.WriteByte(" \n"[rnd.Intn(2)])
	}
	data := text.Bytes()
	id := backend.Hash(data)
	sizes := map[CompressionMode]int64{}
	for _, mode := range []CompressionMode{CompressionOff, CompressionFastest, CompressionAuto, CompressionMax} {
		be := mem.New()
		r := testInit(t, be, InitOptions{Compression: mode})
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// Compare sealed blob lengths: pack sizes vary with header padding.
		pb, _ := r.Lookup(pack.DataBlob, id)
		sizes[mode] = int64(pb.Length)
		r2 := testOpen(t, be, Options{})
		if got := r2.Config().Compression; got != mode {
			t.Fatalf("mode %s: the config says %s after reopening", mode, got)
		}
		got, err := r2.LoadBlob(ctx, pack.DataBlob, id, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("mode %s: load: %v", mode, err)
		}
	}
	n := int64(len(data))
	if !(sizes[CompressionOff] > n && sizes[CompressionFastest] < n/2 &&
		sizes[CompressionAuto] < sizes[CompressionFastest] && sizes[CompressionMax] <= sizes[CompressionAuto]) {
		t.Fatalf("unexpected sealed sizes %v for %d bytes: want off > raw, fastest < raw/2, auto < fastest, max <= auto", sizes, n)
	}
	for _, name := range []string{"off", "fastest", "auto", "max"} {
		m, err := ParseCompression(name)
		if err != nil || m.String() != name {
			t.Errorf("ParseCompression(%q) = %s, %v", name, m, err)
		}
	}
	if _, err := ParseCompression("fast"); err == nil {
		t.Error("ParseCompression accepted \"fast\"")
	}
}

func TestIncompressibleStoredRaw(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	data := randomBlob(rand.New(rand.NewSource(2)), 100000, false)
	id := backend.Hash(data)
	if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pb, ok := r.Lookup(pack.DataBlob, id)
	if !ok || pb.RawLength != 0 {
		t.Fatalf("random data should be stored raw: %+v", pb)
	}
}

func TestDamagedIndexFallsBackToPackHeaders(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	data := []byte("some blob content")
	id := backend.Hash(data)
	if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for h, b := range be.Files() {
		if h.Type == backend.IndexFile {
			b[len(b)/2] ^= 1
			be.SetFile(h, b)
		}
	}
	var warnings []string
	r2 := testOpen(t, be, Options{Warn: func(s string) { warnings = append(warnings, s) }})
	got, err := r2.LoadBlob(ctx, pack.DataBlob, id, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load after index damage: %v", err)
	}
	if len(warnings) == 0 {
		t.Fatal("no warning about the damaged index")
	}
}

func TestDamagedBlobDetected(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	data := randomBlob(rand.New(rand.NewSource(3)), 5000, false)
	id := backend.Hash(data)
	if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pb, _ := r.Lookup(pack.DataBlob, id)
	h := backend.Handle{Type: backend.PackFile, Name: pb.PackID.String()}
	b := be.Files()[h]
	b[pb.Offset+30] ^= 0x80
	be.SetFile(h, b)
	if _, err := r.LoadBlob(ctx, pack.DataBlob, id, nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("damaged blob: got %v", err)
	}
	var seen error
	err := r.LoadPack(ctx, pb.PackID, []pack.Blob{pb.Blob}, func(b pack.Blob, plain []byte, err error) error {
		seen = err
		return nil
	})
	if err != nil || !errors.Is(seen, ErrDamaged) {
		t.Fatalf("LoadPack: %v / %v", err, seen)
	}
}

func TestLoadPackReadsManyBlobs(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(4))
	want := map[backend.ID][]byte{}
	for i := 0; i < 50; i++ {
		data := randomBlob(rnd, 1000+rnd.Intn(4000), i%3 == 0)
		id := backend.Hash(data)
		want[id] = data
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	byPack := map[backend.ID][]pack.Blob{}
	for id := range want {
		pb, _ := r.Lookup(pack.DataBlob, id)
		byPack[pb.PackID] = append(byPack[pb.PackID], pb.Blob)
	}
	n := 0
	for pid, blobs := range byPack {
		last := int64(-1)
		err := r.LoadPack(ctx, pid, blobs, func(b pack.Blob, plain []byte, err error) error {
			if err != nil {
				return err
			}
			if int64(b.Offset) <= last {
				return fmt.Errorf("not in offset order")
			}
			last = int64(b.Offset)
			if !bytes.Equal(plain, want[b.ID]) {
				return fmt.Errorf("blob %s differs", b.ID.Str())
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != len(want) {
		t.Fatalf("got %d blobs, want %d", n, len(want))
	}
}

func TestCacheServesIndexAndTrees(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	cacheDir := t.TempDir()
	r := testInit(t, be, InitOptions{Options: Options{CacheDir: cacheDir}})
	tree := []byte(`{"nodes":[]}`)
	id := backend.Hash(tree)
	if _, err := r.SaveBlob(ctx, pack.TreeBlob, id, tree); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Count backend reads of a fresh open that uses the cache.
	counting := &countingBackend{Backend: be}
	r2 := testOpen(t, counting, Options{CacheDir: cacheDir})
	counting.gets = 0
	got, err := r2.LoadBlob(ctx, pack.TreeBlob, id, nil)
	if err != nil || !bytes.Equal(got, tree) {
		t.Fatalf("load tree: %v", err)
	}
	if counting.gets != 0 {
		t.Fatalf("tree load read the backend %d times despite the cache", counting.gets)
	}
}

type countingBackend struct {
	backend.Backend
	gets int
}

func (c *countingBackend) Get(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	c.gets++
	return c.Backend.Get(ctx, h, length, offset, fn)
}

func TestLocks(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{Options: Options{Hostname: "h1"}})
	s1, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	_, err = r.Lock(ctx, true)
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.PID == 0 {
		t.Fatalf("exclusive while shared held: %v", err)
	}
	if err := s1.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	x, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatalf("exclusive on free repo: %v", err)
	}
	if _, err := r.Lock(ctx, false); !errors.As(err, &le) || !le.Holder.Exclusive {
		t.Fatalf("shared while exclusive held: %v", err)
	}
	// A lock of a dead process on this host is stale.
	if err := x.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.writeLock(ctx, LockInfo{Time: time.Now(), Exclusive: true, Hostname: "h1", PID: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatalf("stale lock of a dead process blocked: %v", err)
	}
	_ = l.Unlock(ctx)
	// A lock of another host is live however old its time field: this
	// device has only just seen it. Once this device has seen it for
	// longer than lockStale, it is stale.
	clk := newFakeClock()
	r.clockFn = clk.read
	if _, err := r.writeLock(ctx, LockInfo{Time: time.Now().Add(-2 * lockStale), Exclusive: true, Hostname: "h2", PID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(ctx, false); !errors.As(err, &le) || le.Holder.Hostname != "h2" {
		t.Fatalf("old foreign lock seen for the first time: %v", err)
	}
	locks, err := r.RemoveLocks(ctx, false)
	if err != nil || removedCount(locks) != 1 || len(locks) != 2 {
		t.Fatalf("remove stale (the dead process's lock only): %+v err=%v", locks, err)
	}
	for _, l := range locks {
		if !l.Removed && (l.Info.Hostname != "h2" || !strings.Contains(l.Why, "first time")) {
			t.Fatalf("kept %+v", l)
		}
	}
	clk.advance(lockStale + time.Second)
	if _, err := r.writeLock(ctx, LockInfo{Time: time.Now(), Exclusive: true, Hostname: "h2", PID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lock(ctx, false); !errors.As(err, &le) || le.Holder.Hostname != "h2" {
		t.Fatalf("fresh foreign lock: %v", err)
	}
	locks, err = r.RemoveLocks(ctx, false)
	if err != nil || removedCount(locks) != 1 {
		t.Fatalf("remove stale: %+v err=%v", locks, err)
	}
	locks, err = r.RemoveLocks(ctx, true)
	if err != nil || removedCount(locks) != 1 {
		t.Fatalf("remove all: %+v err=%v", locks, err)
	}
}

func removedCount(locks []LockState) int {
	n := 0
	for _, l := range locks {
		if l.Removed {
			n++
		}
	}
	return n
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	kdf := crypt.FastKDFParamsForTests()
	id2, err := r.AddKey(ctx, []byte("second"), kdf)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, be, []byte("second"), Options{})
	if err != nil {
		t.Fatalf("open with added key: %v", err)
	}
	defer r2.Close()
	keys, err := r.ListKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("list keys: %v %d", err, len(keys))
	}
	if err := r2.RemoveKey(ctx, id2); !errors.Is(err, ErrLastKey) {
		t.Fatalf("removing the key in use: %v", err)
	}
	if err := r2.RemoveKey(ctx, r.KeyFileID()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, testPassword, Options{}); !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("removed key still opens: %v", err)
	}
	if _, err := r2.ChangePassword(ctx, []byte("third"), kdf); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, []byte("second"), Options{}); !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("old password still opens: %v", err)
	}
	r3, err := Open(ctx, be, []byte("third"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r3.Close()
}

func TestCorruptConfig(t *testing.T) {
	be := mem.New()
	testInit(t, be, InitOptions{})
	h := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	b := be.Files()[h]
	b[len(b)-1] ^= 1
	be.SetFile(h, b)
	_, err := Open(context.Background(), be, testPassword, Options{})
	if err == nil || errors.Is(err, crypt.ErrWrongPassword) || errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("corrupt config: got %v", err)
	}
}

func FuzzDecodeConfig(f *testing.F) {
	c, _ := newConfig(CompressionAuto, 0)
	b, _ := encodeConfig(c)
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeConfig(data)
		if err != nil {
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("decoded config does not validate: %v", err)
		}
	})
}

// A blob asked for twice in one call (LoadPack decrypts in place when
// blobs do not overlap) still comes back right both times, raw and
// compressed alike.
func TestLoadPackSameBlobTwice(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(5))
	var blobs []pack.Blob
	want := map[backend.ID][]byte{}
	var pid backend.ID
	for i, compressible := range []bool{false, true} {
		data := randomBlob(rnd, 3000+i, compressible)
		id := backend.Hash(data)
		want[id] = data
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		pb, _ := r.Lookup(pack.DataBlob, id)
		if compressible != (pb.RawLength != 0) {
			t.Fatalf("blob %d: compressed %v, want %v", i, pb.RawLength != 0, compressible)
		}
		pid = pb.PackID
		blobs = []pack.Blob{pb.Blob, pb.Blob}
		got := 0
		err := r.LoadPack(ctx, pid, blobs, func(b pack.Blob, plain []byte, err error) error {
			if err != nil {
				return err
			}
			if !bytes.Equal(plain, want[b.ID]) {
				return fmt.Errorf("blob %s differs", b.ID.Str())
			}
			got++
			return nil
		})
		if err != nil || got != 2 {
			t.Fatalf("blob %d: %d of 2 returned: %v", i, got, err)
		}
	}
}
