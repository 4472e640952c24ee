package snapshot

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/pack"
)

var _ RepairRepository = (*repo.Repository)(nil)

// maintRepo is a real repository in memory with a log, for the tests of
// UsedBlobs, CheckSnapshots and RepairSnapshots.
type maintRepo struct {
	t     *testing.T
	be    *mem.Backend
	r     *repo.Repository
	ident *crypt.Identity
	now   time.Time
	// content holds every data blob saved, by ID.
	content map[backend.ID][]byte
	n       int
}

func newMaintRepo(t *testing.T) *maintRepo {
	t.Helper()
	be := mem.New()
	r, err := repo.Init(context.Background(), be, []byte("pw"), repo.InitOptions{KDF: crypt.FastKDFParamsForTests(), PackSize: repo.MinPackSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ident, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return &maintRepo{t: t, be: be, r: r, ident: ident, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), content: map[backend.ID][]byte{}}
}

// dirSpec describes a folder: a string value is a file's content (split into
// chunks at "|"), a dirSpec value a subfolder.
type dirSpec map[string]any

// missingChunk, as a file's chunk, names a data blob that is never saved.
const missingChunk = "<missing>"

// saveTree stores the folder and returns its tree ID. A subfolder named
// with a "!" suffix gets a subtree ID that is never saved.
func (m *maintRepo) saveTree(dir dirSpec) backend.ID {
	m.t.Helper()
	ctx := context.Background()
	var tree Tree
	names := make([]string, 0, len(dir))
	for name := range dir {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch v := dir[name].(type) {
		case string:
			n := &Node{Name: name, Type: NodeFile, Mode: 0o644}
			for _, chunk := range strings.Split(v, "|") {
				if chunk == missingChunk {
					m.n++
					n.Content = append(n.Content, backend.Hash(fmt.Appendf(nil, "never saved %d", m.n)))
					continue
				}
				data := []byte(chunk)
				id := backend.Hash(data)
				if _, err := m.r.SaveBlob(ctx, pack.DataBlob, id, data); err != nil {
					m.t.Fatal(err)
				}
				m.content[id] = data
				n.Content = append(n.Content, id)
				n.Size += uint64(len(data))
			}
			if err := tree.Insert(n); err != nil {
				m.t.Fatal(err)
			}
		case dirSpec:
			var sub backend.ID
			if lost, ok := strings.CutSuffix(name, "!"); ok {
				name = lost
				sub = backend.Hash([]byte("lost tree " + name))
			} else {
				sub = m.saveTree(v)
			}
			if err := tree.Insert(&Node{Name: name, Type: NodeDir, Mode: 0o755 | 1<<31, Subtree: &sub}); err != nil {
				m.t.Fatal(err)
			}
		}
	}
	data, err := EncodeTree(&tree)
	if err != nil {
		m.t.Fatal(err)
	}
	id := backend.Hash(data)
	if _, err := m.r.SaveBlob(ctx, pack.TreeBlob, id, data); err != nil {
		m.t.Fatal(err)
	}
	return id
}

// snap stores the folder as a new snapshot and returns the log.
func (m *maintRepo) snap(l *Log, dir dirSpec) *Snapshot {
	m.t.Helper()
	ctx := context.Background()
	root := m.saveTree(dir)
	if err := m.r.Flush(ctx); err != nil {
		m.t.Fatal(err)
	}
	m.now = m.now.Add(time.Hour)
	sn := &Snapshot{Time: m.now, Tree: root, Paths: []string{"/home"}, Hostname: "h"}
	if _, err := l.AddSnapshot(ctx, m.r, m.ident, sn, m.now); err != nil {
		m.t.Fatal(err)
	}
	return sn
}

func (m *maintRepo) log() *Log {
	m.t.Helper()
	l, err := LoadLog(context.Background(), m.r)
	if err != nil {
		m.t.Fatal(err)
	}
	return l
}

// files walks the snapshot and returns "path=content" for every file,
// reading each file's data.
func (m *maintRepo) files(r TreeLoader, sn *Snapshot) []string {
	m.t.Helper()
	ctx := context.Background()
	var out []string
	err := Walk(ctx, r, sn.Tree, func(p string, n *Node, err error) error {
		if err != nil {
			return err
		}
		if n.Type != NodeFile {
			return nil
		}
		var content []byte
		for _, c := range n.Content {
			b, err := r.LoadBlob(ctx, pack.DataBlob, c, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			content = append(content, b...)
		}
		out = append(out, p+"="+string(content))
		return nil
	})
	if err != nil {
		m.t.Fatal(err)
	}
	return out
}

// countingLoader counts tree loads.
type countingLoader struct {
	TreeLoader
	mu    sync.Mutex
	loads map[backend.ID]int
}

func (c *countingLoader) LoadBlob(ctx context.Context, t pack.BlobType, id backend.ID, buf []byte) ([]byte, error) {
	c.mu.Lock()
	c.loads[id]++
	c.mu.Unlock()
	return c.TreeLoader.LoadBlob(ctx, t, id, buf)
}

func TestUsedBlobsReadsEachTreeOnce(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	shared := dirSpec{"x": "shared-1|shared-2", "deep": dirSpec{"y": "deep"}}
	s1 := m.snap(l, dirSpec{"home": dirSpec{"a": "a-1|a-2", "s": shared}})
	s2 := m.snap(l, dirSpec{"home": dirSpec{"b": "b-1", "s": shared, "t": shared}})
	c := &countingLoader{TreeLoader: m.r, loads: map[backend.ID]int{}}
	used, err := UsedBlobs(ctx, c, []*Snapshot{s1, s2})
	if err != nil {
		t.Fatal(err)
	}
	for id, n := range c.loads {
		if n != 1 {
			t.Errorf("tree %s loaded %d times", id.Str(), n)
		}
	}
	// Trees: two roots, two "home", shared and its "deep".
	if len(c.loads) != 6 {
		t.Errorf("%d trees loaded, want 6", len(c.loads))
	}
	var data []string
	used.Each(func(tp pack.BlobType, id backend.ID) bool {
		if tp == pack.DataBlob {
			data = append(data, string(m.content[id]))
		} else if c.loads[id] != 1 {
			t.Errorf("tree %s in the set was not loaded", id.Str())
		}
		return true
	})
	slices.Sort(data)
	if want := []string{"a-1", "a-2", "b-1", "deep", "shared-1", "shared-2"}; !slices.Equal(data, want) {
		t.Errorf("data blobs %q, want %q", data, want)
	}
	if used.Len() != 12 {
		t.Errorf("%d blobs, want 12", used.Len())
	}
}

func TestUsedBlobsRefusesDamagedSnapshot(t *testing.T) {
	m := newMaintRepo(t)
	l := m.log()
	sn := m.snap(l, dirSpec{"home": dirSpec{"ok": "fine", "gone!": dirSpec{}}})
	_, err := UsedBlobs(context.Background(), m.r, []*Snapshot{sn})
	if err == nil || !strings.Contains(err.Error(), "/home/gone") || !strings.Contains(err.Error(), sn.ID.Str()) || !strings.Contains(err.Error(), "refusing to prune") {
		t.Fatalf("got %v", err)
	}
}

// TestForgetAndPrune forgets one of two snapshots, prunes with the blobs
// the live one uses, and checks the live one restores and the rest is
// gone.
func TestForgetAndPrune(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	old := m.snap(l, dirSpec{"home": dirSpec{"keep": "k-1|k-2", "old": "o-1|o-2|o-3", "dir": dirSpec{"gone": "g"}}})
	live := m.snap(l, dirSpec{"home": dirSpec{"keep": "k-1|k-2", "new": "n-1"}})
	want := m.files(m.r, live)
	if _, err := l.Forget(ctx, m.r, m.ident, []backend.ID{old.ID}, m.now); err != nil {
		t.Fatal(err)
	}
	used, err := UsedBlobs(ctx, m.r, l.Snapshots())
	if err != nil {
		t.Fatal(err)
	}
	lock, err := m.r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := m.r.Prune(ctx, used, repo.PruneOptions{MaxUnused: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if st.UnusedBlobs != 7 { // o-1..3, g, the old root, its home and dir
		t.Errorf("unused blobs %d, want 7", st.UnusedBlobs)
	}
	r2, err := repo.Open(ctx, m.be, []byte("pw"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if got := m.files(r2, live); !slices.Equal(got, want) {
		t.Errorf("after prune: %q, want %q", got, want)
	}
	if r2.Index().Len() != used.Len() {
		t.Errorf("index holds %d blobs, want the %d used", r2.Index().Len(), used.Len())
	}
	l2, err := LoadLog(ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := CheckSnapshots(ctx, r2, l2)
	if err != nil || len(problems) != 0 {
		t.Errorf("check after prune: %v %v", problems, err)
	}
}

func problemLines(ps []repo.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s %s %s", p.Kind, p.Snapshot[:8], p.Path))
	}
	slices.Sort(out)
	return out
}

func TestCheckSnapshots(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	m.snap(l, dirSpec{"home": dirSpec{"a": "a", "d": dirSpec{"b": "b"}}})
	problems, err := CheckSnapshots(ctx, m.r, l)
	if err != nil || len(problems) != 0 {
		t.Fatalf("clean repository: %v %v", problems, err)
	}
	bad := m.snap(l, dirSpec{"home": dirSpec{
		"a":      "a",
		"broken": "x-1|" + missingChunk + "|x-2|" + missingChunk,
		"d":      dirSpec{"b": "b", "lost!": dirSpec{}},
	}})
	// A third snapshot sharing the damaged folder: reported once.
	m.snap(l, dirSpec{"home": dirSpec{"d": dirSpec{"b": "b", "lost!": dirSpec{}}}})
	problems, err = CheckSnapshots(ctx, m.r, l)
	if err != nil {
		t.Fatal(err)
	}
	got := problemLines(problems)
	want := []string{
		"blob_missing " + bad.ID.String()[:8] + " /home/broken",
		"tree_damaged " + bad.ID.String()[:8] + " /home/d/lost",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
	for _, p := range problems {
		if p.Kind == ProblemBlobMissing && !strings.HasPrefix(p.Message, "2 of 4 ") {
			t.Errorf("message %q", p.Message)
		}
		if p.Warning {
			t.Errorf("%s is a warning", p)
		}
	}

	// Log problems are reported too.
	l.Problems = append(l.Problems, "log entry 1234: parent missing")
	problems, _ = CheckSnapshots(ctx, m.r, l)
	if problems[0].Kind != ProblemLog || problems[0].Message != "log entry 1234: parent missing" {
		t.Errorf("first problem %v, want the log's", problems[0])
	}
}

func TestRepairSnapshots(t *testing.T) {
	ctx := context.Background()
	m := newMaintRepo(t)
	l := m.log()
	good := m.snap(l, dirSpec{"home": dirSpec{"a": "a"}})
	damaged := dirSpec{"home": dirSpec{
		"a":      "a",
		"broken": "x-1|" + missingChunk,
		"d":      dirSpec{"b": "b", "lost!": dirSpec{}, "e": dirSpec{"gone": missingChunk, "c": "c"}},
	}}
	bad := m.snap(l, damaged)
	bad2 := m.snap(l, damaged) // same trees: rewritten once
	lostRoot := m.snap(l, dirSpec{"x!": dirSpec{}})
	// Make the last one's root itself lost: a snapshot naming a tree no
	// pack holds.
	lostRoot2 := &Snapshot{Time: m.now.Add(time.Hour), Tree: backend.Hash([]byte("no such tree")), Paths: []string{"/x"}, Hostname: "h"}
	if _, err := l.AddSnapshot(ctx, m.r, m.ident, lostRoot2, m.now); err != nil {
		t.Fatal(err)
	}

	// A dry run reports and writes nothing.
	before := fileNames(m.be)
	dry, err := RepairSnapshots(ctx, m.r, l, m.ident, RepairOptions{DryRun: true, Forget: true})
	if err != nil {
		t.Fatal(err)
	}
	if after := fileNames(m.be); !slices.Equal(before, after) {
		t.Fatalf("dry run wrote files")
	}
	wantDropped := []string{"/home/broken", "/home/d/e/gone", "/home/d/lost/"}
	check := func(res RepairResult, dryRun bool) {
		t.Helper()
		if len(res.Snapshots) != 4 {
			t.Fatalf("%d snapshots repaired, want 4: %+v", len(res.Snapshots), res)
		}
		for i, want := range []*Snapshot{bad, bad2} {
			rs := res.Snapshots[i]
			d := slices.Clone(rs.Dropped)
			slices.Sort(d)
			if rs.Snapshot != want.ID || rs.Lost || !slices.Equal(d, wantDropped) {
				t.Errorf("snapshot %d: %+v", i, rs)
			}
			if dryRun != rs.New.IsNull() {
				t.Errorf("snapshot %d: new %s (dry run %v)", i, rs.New.Str(), dryRun)
			}
		}
		// lostRoot's root loads but its only folder is lost; lostRoot2
		// has no root at all.
		if rs := res.Snapshots[2]; rs.Snapshot != lostRoot.ID || rs.Lost || !slices.Equal(rs.Dropped, []string{"/x/"}) {
			t.Errorf("lost folder: %+v", rs)
		}
		if rs := res.Snapshots[3]; rs.Snapshot != lostRoot2.ID || !rs.Lost || !rs.New.IsNull() {
			t.Errorf("lost root: %+v", rs)
		}
	}
	check(dry, true)

	// Repair without forgetting first (as if the run after the adds had
	// been killed), then with: the second run makes no further copies.
	res, err := RepairSnapshots(ctx, m.r, l, m.ident, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(res, false)
	liveBefore := len(l.Snapshots())
	l = m.log() // a new process
	res2, err := RepairSnapshots(ctx, m.r, l, m.ident, RepairOptions{Forget: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Snapshots) != 4 {
		t.Fatalf("second run: %+v", res2)
	}
	for i := range 3 {
		if res2.Snapshots[i].New != res.Snapshots[i].New || !res2.Snapshots[i].Forgotten {
			t.Errorf("second run made another copy of %d or did not forget: %+v vs %+v", i, res2.Snapshots[i], res.Snapshots[i])
		}
	}
	if got := len(l.Snapshots()); got != liveBefore-4 {
		t.Errorf("%d live snapshots after forgetting, want %d", got, liveBefore-4)
	}

	// What is left checks clean, keeps what was readable, and nothing
	// that was lost.
	l = m.log()
	problems, err := CheckSnapshots(ctx, m.r, l)
	if err != nil || len(problems) != 0 {
		t.Fatalf("after repair: %v %v", problems, err)
	}
	for _, sn := range l.Snapshots() {
		files := m.files(m.r, sn)
		switch {
		case sn.ID == good.ID:
			if !slices.Equal(files, []string{"/home/a=a"}) {
				t.Errorf("good snapshot: %q", files)
			}
		case sn.ID == res.Snapshots[0].New || sn.ID == res.Snapshots[1].New:
			if want := []string{"/home/a=a", "/home/d/b=b", "/home/d/e/c=c"}; !slices.Equal(files, want) {
				t.Errorf("repaired snapshot: %q, want %q", files, want)
			}
			if !sn.Time.Equal(bad.Time) && !sn.Time.Equal(bad2.Time) {
				t.Errorf("repaired snapshot has time %v", sn.Time)
			}
		case sn.ID == res.Snapshots[2].New:
			if len(files) != 0 {
				t.Errorf("repaired lost folder snapshot: %q", files)
			}
		default:
			t.Errorf("unexpected live snapshot %s", sn.ID.Str())
		}
	}
}

func fileNames(be *mem.Backend) []string {
	var out []string
	for h, data := range be.Files() {
		out = append(out, fmt.Sprintf("%s %x", h, backend.Hash(data)))
	}
	slices.Sort(out)
	return out
}
