package repo

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/faulty"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/backend/retry"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo/pack"
)

// problemKeys reduces problems to "kind file" for exact comparison.
func problemKeys(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		k := string(p.Kind) + " " + p.File
		if p.Warning {
			k = "warning " + k
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func wantProblems(t *testing.T, got []Problem, want ...string) {
	t.Helper()
	slices.Sort(want)
	if g := problemKeys(got); !slices.Equal(g, want) {
		t.Errorf("problems:\n%q\nwant\n%q\nfull: %v", g, want, got)
	}
}

func checkRepo(t *testing.T, be backend.Backend, opts CheckOptions) CheckResult {
	t.Helper()
	r := testOpen(t, be, Options{Warn: func(string) {}})
	res, err := r.Check(context.Background(), opts)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return res
}

func packFile(id backend.ID) string { return "data/" + id.String() }

func TestCheckCleanRepository(t *testing.T) {
	fx := buildFixture(t, 11, 20, 20)
	res := checkRepo(t, fx.be, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems)
	if res.Packs != 4 || res.PacksRead != 4 || res.Blobs != 40 || res.IndexFiles != 2 {
		t.Errorf("counts: %+v", res)
	}
}

func TestCheckFindsBitFlip(t *testing.T) {
	fx := buildFixture(t, 12, 20, 20)
	victim := packIDs(fx.be)[1]
	h := backend.Handle{Type: backend.PackFile, Name: victim.String()}
	// A bit in the middle of the blobs: the header still reads.
	if err := fx.be.Corrupt(h, 100); err != nil {
		t.Fatal(err)
	}
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{}).Problems) // structure is fine
	res := checkRepo(t, fx.be, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems, "pack_damaged "+packFile(victim))
}

func TestCheckFindsMissingPack(t *testing.T) {
	fx := buildFixture(t, 13, 20, 20)
	victim := packIDs(fx.be)[2]
	fx.be.DeleteRaw(backend.Handle{Type: backend.PackFile, Name: victim.String()})
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{}).Problems, "pack_missing "+packFile(victim))
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{ReadData: true}).Problems, "pack_missing "+packFile(victim))
}

func TestCheckFindsTruncatedPack(t *testing.T) {
	fx := buildFixture(t, 14, 20, 20)
	victim := packIDs(fx.be)[0]
	h := backend.Handle{Type: backend.PackFile, Name: victim.String()}
	data := fx.be.Files()[h]
	if err := fx.be.SetFile(h, data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{}).Problems, "pack_size_wrong "+packFile(victim))
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{ReadData: true}).Problems,
		"pack_size_wrong "+packFile(victim), "pack_damaged "+packFile(victim))

	// Cut by a single byte, only reading the data tells.
	fx = buildFixture(t, 14, 20, 20)
	victim = packIDs(fx.be)[0]
	h = backend.Handle{Type: backend.PackFile, Name: victim.String()}
	data = fx.be.Files()[h]
	if err := fx.be.SetFile(h, data[:len(data)-1]); err != nil {
		t.Fatal(err)
	}
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{ReadData: true}).Problems, "pack_damaged "+packFile(victim))
}

func TestCheckFindsDamagedIndexFile(t *testing.T) {
	fx := buildFixture(t, 15, 20, 20)
	// Each round wrote one index file listing its two packs; damage one.
	r := testOpen(t, fx.be, Options{})
	victim := filesOf(fx.be, backend.IndexFile)[0]
	vid, _ := backend.ParseID(victim.Name)
	f, err := r.loadIndexFile(context.Background(), vid)
	if err != nil {
		t.Fatal(err)
	}
	var victimPacks []backend.ID
	for _, p := range f.Packs {
		victimPacks = append(victimPacks, p.ID)
	}
	if len(victimPacks) != 2 {
		t.Fatalf("index file lists %d packs, want 2", len(victimPacks))
	}
	if err := fx.be.Corrupt(victim, 40); err != nil {
		t.Fatal(err)
	}
	// The damaged file is damage; the packs it listed are now unindexed
	// (the open read their headers, so nothing is lost).
	want := []string{"index_damaged index/" + victim.Name}
	for _, p := range victimPacks {
		want = append(want, "warning pack_unindexed "+packFile(p))
	}
	res := checkRepo(t, fx.be, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems, want...)
	if !HasDamage(res.Problems) {
		t.Error("HasDamage is false")
	}
}

func TestCheckFindsDamagedKeyAndConfig(t *testing.T) {
	fx := buildFixture(t, 16, 5)
	r := testOpen(t, fx.be, Options{})
	// A second key file, then damage it (the first still opens).
	if _, err := r.AddKey(context.Background(), []byte("other"), crypt.FastKDFParamsForTests()); err != nil {
		t.Fatal(err)
	}
	var other backend.Handle
	for _, h := range filesOf(fx.be, backend.KeyFile) {
		if h.Name != r.KeyFileID().String() {
			other = h
		}
	}
	if err := fx.be.Corrupt(other, 10); err != nil {
		t.Fatal(err)
	}
	res, err := r.Check(context.Background(), CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, res.Problems, "key_damaged keys/"+other.Name)

	cfg := backend.Handle{Type: backend.ConfigFile, Name: backend.ConfigName}
	if err := fx.be.Corrupt(cfg, 30); err != nil {
		t.Fatal(err)
	}
	res, err = r.Check(context.Background(), CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, res.Problems, "config_damaged config", "key_damaged keys/"+other.Name)
}

// TestCheckJunkKeyFilesAreWarnings: files under keys/ that whoever can
// add files put there (a friend's server, an append-only client), named
// by their hash as a peer server demands: random bytes, and a well-formed
// key file whose KDF costs more than the limit. Neither is damage:
// nothing is lost, and opening skips both. Check names each as a warning.
// A key file whose content no longer matches its name stays damage.
func TestCheckJunkKeyFilesAreWarnings(t *testing.T) {
	fx := buildFixture(t, 18, 5)
	junk := putKeyFile(t, fx.be, []byte("not a key file\x00\xff\n"))
	big := putKeyFile(t, fx.be, bytes.Repeat([]byte("x"), 70<<10)) // larger than any key file
	kf := otherKeyFile(t, "x", crypt.FastKDFParamsForTests(), time.Now())
	costly := bytes.Replace(kf, []byte(`"time": 1`), []byte(`"time": 2`), 1)
	costly = bytes.Replace(costly, []byte(`"memory_kib": 64`), []byte(`"memory_kib": 1048576`), 1)
	costlyID := putKeyFile(t, fx.be, costly)
	rotten := putKeyFile(t, fx.be, kf)
	if err := fx.be.Corrupt(backend.Handle{Type: backend.KeyFile, Name: rotten.String()}, 40); err != nil {
		t.Fatal(err)
	}

	res := checkRepo(t, fx.be, CheckOptions{})
	wantProblems(t, res.Problems, "warning key_junk keys/"+junk.String(), "warning key_junk keys/"+big.String(),
		"warning key_too_costly keys/"+costlyID.String(),
		"key_damaged keys/"+rotten.String())
	for _, p := range res.Problems {
		if p.Kind == ProblemKeyJunk && !strings.Contains(p.Message, "not a key file") ||
			p.Kind == ProblemKeyTooCostly && !strings.Contains(p.Message, "exceed the cost limit") {
			t.Errorf("%s: message %q", p.File, p.Message)
		}
	}
}

func TestCheckReportsUnindexedPackAsWarning(t *testing.T) {
	fx := buildFixture(t, 17, 10)
	ids := filesOf(fx.be, backend.IndexFile)
	for _, h := range ids {
		fx.be.DeleteRaw(h)
	}
	var want []string
	for _, id := range packIDs(fx.be) {
		want = append(want, "warning pack_unindexed "+packFile(id))
	}
	res := checkRepo(t, fx.be, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems, want...)
	if HasDamage(res.Problems) {
		t.Error("unindexed packs counted as damage")
	}
}

// recordPackReads wraps be so that every Get of a pack is recorded.
func recordPackReads(be backend.Backend) (*faulty.Backend, func() []string) {
	f := faulty.New(be)
	var mu sync.Mutex
	var names []string
	f.AddFault(faulty.Get).Match(backend.PackFile, "").Times(1 << 30).Hook(func(h backend.Handle) {
		mu.Lock()
		names = append(names, h.Name)
		mu.Unlock()
	})
	return f, func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := names
		names = nil
		return out
	}
}

func TestCheckSubsets(t *testing.T) {
	ctx := context.Background()
	// Many small packs: each round is its own pair of packs.
	sizes := make([]int, 20)
	for i := range sizes {
		sizes[i] = 5
	}
	fx := buildFixture(t, 18, sizes...)
	all := packIDs(fx.be)
	f, reads := recordPackReads(fx.be)
	r := testOpen(t, f, Options{})
	reads() // the open reads no pack, but start clean anyway

	for _, m := range []int{1, 3, 7, 256} {
		seen := make(map[string]int)
		for n := 1; n <= m; n++ {
			sub, err := ParseSubset(fmt.Sprintf("%d/%d", n, m))
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Check(ctx, CheckOptions{Subset: sub})
			if err != nil {
				t.Fatal(err)
			}
			got := reads()
			if res.PacksRead != len(got) {
				t.Fatalf("%d/%d: reported %d packs read, read %d", n, m, res.PacksRead, len(got))
			}
			for _, name := range got {
				id, _ := backend.ParseID(name)
				if int(id[0])%m != n-1 {
					t.Errorf("%d/%d read pack %s", n, m, name[:8])
				}
				seen[name]++
			}
			wantProblems(t, res.Problems)
		}
		// Over the m runs, every pack exactly once.
		if len(seen) != len(all) {
			t.Errorf("m=%d: %d of %d packs read", m, len(seen), len(all))
		}
		for name, c := range seen {
			if c != 1 {
				t.Errorf("m=%d: pack %s read %d times", m, name[:8], c)
			}
		}
	}

	for _, tc := range []struct {
		pct  string
		want int
	}{{"50%", (len(all) + 1) / 2}, {"100%", len(all)}, {"0.1%", 1}, {"10%", (len(all) + 9) / 10}} {
		s, err := ParseSubset(tc.pct)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Check(ctx, CheckOptions{Subset: s})
		if err != nil {
			t.Fatal(err)
		}
		if got := reads(); len(got) != tc.want || res.PacksRead != tc.want {
			t.Errorf("%s: read %d packs (reported %d), want %d", tc.pct, len(got), res.PacksRead, tc.want)
		}
	}
}

func TestParseSubset(t *testing.T) {
	good := map[string]string{"1/1": "1/1", "3/7": "3/7", "256/256": "256/256", "5%": "5%", "0.5%": "0.5%", "100%": "100%"}
	for in, want := range good {
		s, err := ParseSubset(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if s.String() != want || s.IsAll() {
			t.Errorf("%q parses to %q (all %v)", in, s, s.IsAll())
		}
	}
	for _, in := range []string{"", "0/3", "4/3", "1/0", "1/257", "-1/3", "1/3/4", "a/b", "0%", "-5%", "101%", "NaN%", "%", "5", "1 /3", "1/3%"} {
		if _, err := ParseSubset(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if !(Subset{}).IsAll() || (Subset{}).String() != "all" {
		t.Error("zero Subset is not all")
	}
}

func TestProblemString(t *testing.T) {
	p := Problem{Kind: ProblemPackDamaged, File: "data/abc", Message: "damaged: x"}
	if got := p.String(); got != "data/abc: damaged: x" {
		t.Errorf("got %q", got)
	}
	p = Problem{Kind: "blob_missing", Snapshot: "0123456789", Path: "/a/b", Blob: "fedcba9876", Message: "gone", Warning: true}
	if got := p.String(); got != "warning: snapshot 01234567 /a/b blob fedcba98: gone" {
		t.Errorf("got %q", got)
	}
}

// TestCheckLargeAndSmallBlobs reads packs that mix blobs larger than a
// verifier batch with runs of small ones, compressible and not, and finds
// a flipped bit inside a large blob.
func TestCheckLargeAndSmallBlobs(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(19))
	var large backend.ID
	for i := range 40 {
		n := 1024 + rnd.Intn(8192)
		if i%10 == 3 {
			n = checkBatch + rnd.Intn(2*checkBatch)
		}
		data := randomBlob(rnd, n, i%2 == 0)
		id := backend.Hash(data)
		if i == 13 {
			large = id
		}
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantProblems(t, checkRepo(t, be, CheckOptions{ReadData: true}).Problems)

	pb, ok := r.Lookup(pack.DataBlob, large)
	if !ok {
		t.Fatal("large blob not indexed")
	}
	h := backend.Handle{Type: backend.PackFile, Name: pb.PackID.String()}
	if err := be.Corrupt(h, int64(pb.Offset)+int64(pb.Length)/2); err != nil {
		t.Fatal(err)
	}
	res := checkRepo(t, be, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems, "pack_damaged "+packFile(pb.PackID))
}

// TestCheckFindsBlobNotMatchingItsID stores a blob under another blob's
// ID: the pack is intact and its header matches the index, only the
// plaintext's hash tells.
func TestCheckFindsBlobNotMatchingItsID(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := testInit(t, be, InitOptions{})
	rnd := rand.New(rand.NewSource(20))
	var wrong backend.ID
	for i := range 30 {
		data := randomBlob(rnd, 2048+rnd.Intn(4096), i%2 == 0)
		id := backend.Hash(data)
		if i == 17 {
			id[0] ^= 1
			wrong = id
		}
		if _, err := r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pb, _ := r.Lookup(pack.DataBlob, wrong)
	wantProblems(t, checkRepo(t, be, CheckOptions{}).Problems)
	res := checkRepo(t, be, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems, "pack_damaged "+packFile(pb.PackID))
	if msg := res.Problems[0].Message; !strings.Contains(msg, "1 of 30 blob(s)") || !strings.Contains(msg, wrong.Str()) {
		t.Errorf("message %q does not name the one bad blob", msg)
	}
}

// TestCheckFindsHeaderIndexMismatch replaces an index file by one that
// lists a blob of a pack under another ID: the pack's size still fits, so
// only reading its header tells.
func TestCheckFindsHeaderIndexMismatch(t *testing.T) {
	ctx := context.Background()
	fx := buildFixture(t, 21, 20)
	r := testOpen(t, fx.be, Options{})
	victim := filesOf(fx.be, backend.IndexFile)[0]
	vid, _ := backend.ParseID(victim.Name)
	f, err := r.loadIndexFile(ctx, vid)
	if err != nil {
		t.Fatal(err)
	}
	p := &f.Packs[0]
	p.Blobs[len(p.Blobs)/2].ID[5] ^= 0x40
	if _, err := r.saveIndexFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	fx.be.DeleteRaw(victim)
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{}).Problems)
	wantProblems(t, checkRepo(t, fx.be, CheckOptions{ReadData: true}).Problems, "pack_index_mismatch "+packFile(p.ID))
}

// TestCheckBrokenReads: a stream that breaks off is damage unless a retry
// reads it again, and then it is counted once; a stream that ends early
// without an error is a short pack.
func TestCheckBrokenReads(t *testing.T) {
	fx := buildFixture(t, 22, 20, 20)
	packs := packIDs(fx.be)

	f := faulty.New(fx.be)
	f.AddFault(faulty.Get).Match(backend.PackFile, packs[1].String()).Times(2).FailAfter(3000, nil)
	rb, err := retry.New(f, retry.Options{MaxAttempts: 5, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := checkRepo(t, rb, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems)
	if res.PacksRead != len(packs) {
		t.Errorf("read %d packs, want %d", res.PacksRead, len(packs))
	}

	f = faulty.New(fx.be)
	f.AddFault(faulty.Get).Match(backend.PackFile, packs[1].String()).Times(1<<20).FailAfter(3000, nil)
	wantProblems(t, checkRepo(t, f, CheckOptions{ReadData: true}).Problems, "pack_damaged "+packFile(packs[1]))

	f = faulty.New(fx.be)
	f.AddFault(faulty.Get).Match(backend.PackFile, packs[2].String()).Times(1 << 20).ShortRead(5000)
	res = checkRepo(t, f, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems, "pack_damaged "+packFile(packs[2]))
	if msg := res.Problems[0].Message; !strings.Contains(msg, "read 5000 bytes") {
		t.Errorf("message %q does not say how much was read", msg)
	}
}
