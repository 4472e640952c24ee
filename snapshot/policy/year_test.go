package policy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/archiver"
	"github.com/cairn-backup/cairn/snapshot/policy"
	"github.com/cairn-backup/cairn/snapshot/restorer"
)

// TestSimulatedYear runs a year of hourly backups of a small changing tree
// with a nightly forget --prune under a fake clock, then checks that
// exactly the snapshots the policy names are left and that each restores
// to the tree as it was when it was taken.
func TestSimulatedYear(t *testing.T) {
	if testing.Short() {
		t.Skip("a year of backups takes a while")
	}
	ctx := context.Background()
	be := mem.New()
	r, err := repo.Init(ctx, be, []byte("pw"), repo.InitOptions{KDF: crypt.FastKDFParamsForTests(), PackSize: repo.MinPackSize})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ident, err := crypt.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	// expected holds the tree's content at each snapshot's time.
	expected := map[time.Time]map[string][]byte{}
	state := map[string][]byte{}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		state[name] = data
	}
	for i := 0; i < 4; i++ {
		write(fmt.Sprintf("f%d", i), []byte(fmt.Sprintf("initial %d\n", i)))
	}

	pol := policy.Policy{Hourly: 24, Daily: 7, Weekly: 5, Monthly: 12}
	loc := time.UTC
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, loc)
	var now time.Time
	clock := func() time.Time { return now }
	hours := 365 * 24
	for h := 0; h < hours; h++ {
		now = start.Add(time.Duration(h) * time.Hour)
		// One file changes every hour, another is added or removed daily.
		write(fmt.Sprintf("f%d", h%4), []byte(fmt.Sprintf("hour %d\n", h)))
		if h%24 == 5 {
			name := fmt.Sprintf("day%d", (h/24)%3)
			if _, ok := state[name]; ok {
				if err := os.Remove(filepath.Join(src, name)); err != nil {
					t.Fatal(err)
				}
				delete(state, name)
			} else {
				write(name, bytes.Repeat([]byte{byte(h)}, 3000))
			}
		}
		sn, _, err := archiver.Backup(ctx, r, l, archiver.BackupOptions{
			Options:  archiver.Options{Now: clock},
			Paths:    []string{src},
			Hostname: "host",
			Identity: ident,
		})
		if err != nil {
			t.Fatalf("hour %d: backup: %v", h, err)
		}
		exp := map[string][]byte{}
		for k, v := range state {
			exp[k] = v
		}
		expected[sn.Time] = exp

		if now.Hour() == 3 {
			nightly(t, ctx, r, l, ident, pol, now)
		}
	}
	now = start.Add(time.Duration(hours) * time.Hour)
	nightly(t, ctx, r, l, ident, pol, now)

	// Exactly the snapshots the policy names over the whole year are left.
	all := make([]time.Time, 0, len(expected))
	for tm := range expected {
		all = append(all, tm)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
	want := keptByBuckets(all, pol)

	l2, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Problems) != 0 {
		t.Fatalf("log problems: %v", l2.Problems)
	}
	var got []time.Time
	for _, sn := range l2.Snapshots() {
		got = append(got, sn.Time)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kept %d snapshots, policy names %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	// The log stays small: checkpoints let prune drop old entries.
	if n := len(l2.Entries); n > 60 {
		t.Errorf("log holds %d entries after a year", n)
	}

	// Prune freed the space of the forgotten snapshots: without it the
	// year would leave two packs per backup.
	packs := 0
	for h := range be.Files() {
		if h.Type == backend.PackFile {
			packs++
		}
	}
	if packs > hours/4 {
		t.Errorf("%d packs left after a year of %d backups", packs, hours)
	}
	t.Logf("%d snapshots kept, %d packs, %d log entries", len(got), packs, len(l2.Entries))

	// Every kept snapshot restores exactly, from a fresh open.
	r2, err := repo.Open(ctx, be, []byte("pw"), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if res, err := r2.Check(ctx, repo.CheckOptions{ReadData: true}); err != nil || repo.HasDamage(res.Problems) {
		t.Fatalf("check --read-data: %v %v", err, res.Problems)
	}
	for _, sn := range l2.Snapshots() {
		dst := t.TempDir()
		rs, err := restorer.New(r2, sn.Tree, restorer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Restore(ctx, dst); err != nil {
			t.Fatalf("restore %s: %v", sn.ID.Str(), err)
		}
		exp := expected[sn.Time]
		dir := filepath.Join(dst, src)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(exp) {
			t.Fatalf("snapshot %s: %d files, want %d", sn.Time, len(entries), len(exp))
		}
		for name, data := range exp {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("snapshot %s: %s differs (%v)", sn.Time, name, err)
			}
		}
	}
}

// nightly is forget --keep-* --prune: forget what the policy drops, prune
// the data, checkpoint the log and drop the entries it covers.
func nightly(t *testing.T, ctx context.Context, r *repo.Repository, l *snapshot.Log, ident *crypt.Identity, pol policy.Policy, now time.Time) {
	t.Helper()
	_, remove, _ := policy.Apply(l.Snapshots(), pol, now)
	var ids []backend.ID
	for _, sn := range remove {
		ids = append(ids, sn.ID)
	}
	if _, err := l.Forget(ctx, r, ident, ids, now); err != nil {
		t.Fatal(err)
	}
	used, err := snapshot.UsedBlobs(ctx, r, l.Snapshots())
	if err != nil {
		t.Fatal(err)
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx)
	if _, _, err := r.Prune(ctx, used, repo.PruneOptions{}); err != nil {
		t.Fatalf("%s: prune: %v", now, err)
	}
	if _, err := l.WriteCheckpoint(ctx, r, ident, now); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PruneCovered(ctx, r); err != nil {
		t.Fatal(err)
	}
}

// keptByBuckets computes, independently of package policy, which of the
// hourly snapshot times a keep-hourly/daily/weekly/monthly policy applied
// nightly keeps by the end: for each bucket size, the newest snapshot of
// each of the newest N buckets that have one, plus the oldest snapshot
// while a rule has fewer buckets than its count (restic 0.16+).
func keptByBuckets(times []time.Time, p policy.Policy) []time.Time {
	keep := map[time.Time]bool{}
	rules := []struct {
		n   int
		key func(time.Time) string
	}{
		{p.Hourly, func(t time.Time) string { return t.Format("2006-01-02 15") }},
		{p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprint(y, w) }},
		{p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, rule := range rules {
		seen := map[string]bool{}
		for i := len(times) - 1; i >= 0 && len(seen) < rule.n; i-- {
			k := rule.key(times[i])
			if !seen[k] {
				seen[k] = true
				keep[times[i]] = true
			}
		}
		if len(seen) < rule.n {
			keep[times[0]] = true
		}
	}
	var out []time.Time
	for _, tm := range times {
		if keep[tm] {
			out = append(out, tm)
		}
	}
	return out
}
