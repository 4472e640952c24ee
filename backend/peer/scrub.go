package peer

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
)

// The scrub: the server re-hashes the files it stores at a bounded rate,
// cycling through every allowed client's repositories, and moves a file
// whose content no longer hashes to its name out of the repository, into
// the client's quarantine folder (".quarantine/NAME/TYPE-FILENAME" under
// the client's folder; a name starting with a dot is no repository's).
// A file moved aside is absent for every request, so the owner's next
// mirror puts it again, append-only or not; the put removes the damaged
// copy. The scrub's state (ROOT/.scrub/PEERID/NAME) and the quarantined
// files are the scrub report a client asks for (opScrubReport), so the
// report survives a restart of the server.

// DefaultScrubRate is the rate of the scrub and of the verifications
// clients ask for when the server's ScrubRate is 0: 8 MiB/s, a pass over
// 1 TB in about 35 hours, a small part of a disk's bandwidth.
const DefaultScrubRate = 8 << 20

// MinScrubRate is the lowest scrub rate: below it, one 64 KiB read
// would take over a second.
const MinScrubRate = 64 << 10

// DefaultScrubInterval is the least time between the starts of two
// passes of the scrub.
const DefaultScrubInterval = 24 * time.Hour

const (
	quarantineDir = ".quarantine"
	// scrubStateDir, under the root, holds the scrub's state of each
	// client's repositories: .scrub/PEERID/NAME (JSON).
	scrubStateDir = ".scrub"
	// scrubIdle is how long the scrub waits when there was nothing to
	// check.
	scrubIdle = time.Minute
	// verifyProgressEvery is how often a verify tells the client it is
	// still under way, far within the client's stream timeout.
	verifyProgressEvery = 5 * time.Second
	scrubChunk          = 64 << 10
)

// pacer keeps reads to rate bytes per second on average since it began.
type pacer struct {
	rate  int64
	start time.Time
	n     int64
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func newPacer(rate int64) *pacer {
	return &pacer{rate: rate, start: time.Now(), now: time.Now, sleep: sleepCtx}
}

// wait books n bytes read and sleeps until the rate allows them.
func (p *pacer) wait(ctx context.Context, n int) error {
	p.n += int64(n)
	due := p.start.Add(time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second)))
	if d := due.Sub(p.now()); d > 0 {
		return p.sleep(ctx, d)
	}
	return ctx.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scrubRun checks files of one repository: every file, or a sample.
type scrubRun struct {
	pace *pacer
	// sample is the chance, in parts per million, that a file is checked.
	sample int64
	rnd    *rand.Rand
	// tick is called after each chunk read; an error stops the run.
	tick func(files, bytes int64) error

	files, bytes, damaged int64
	buf                   []byte // one chunk, reused from file to file
}

// scrubTypes are the file types a scrub checks, in mirror's order.
func scrubTypes() []backend.FileType {
	var ts []backend.FileType
	for _, t := range backend.AllTypes {
		if scrubbable(t) {
			ts = append(ts, t)
		}
	}
	return ts
}

// repo checks the files of r.
func (run *scrubRun) repo(ctx context.Context, r *repoStore, logf func(string, ...any)) error {
	for _, t := range scrubTypes() {
		err := r.be.List(ctx, t, func(fi backend.FileInfo) error {
			if run.sample < ppm && run.rnd.Int64N(ppm) >= run.sample {
				return nil
			}
			return run.file(ctx, r, backend.Handle{Type: t, Name: fi.Name}, logf)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// file hashes h at the run's pace and moves it aside if it is damaged.
func (run *scrubRun) file(ctx context.Context, r *repoStore, h backend.Handle, logf func(string, ...any)) error {
	hw := sha256.New()
	if run.buf == nil {
		run.buf = make([]byte, scrubChunk)
	}
	buf := run.buf
	err := r.be.Get(ctx, h, 0, 0, func(rd io.Reader) error {
		for {
			n, err := io.ReadFull(rd, buf)
			hw.Write(buf[:n])
			run.bytes += int64(n)
			if perr := run.pace.wait(ctx, n); perr != nil {
				return perr
			}
			if run.tick != nil {
				if terr := run.tick(run.files, run.bytes); terr != nil {
					return terr
				}
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	if backend.IsNotExist(err) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	run.files++
	if backend.ID(hw.Sum(nil)).String() == h.Name {
		return nil
	}
	moved, err := r.quarantine(ctx, h, logf)
	if moved {
		run.damaged++
	}
	return err
}

// filePath is where backend/local keeps h under r.
func (r *repoStore) filePath(h backend.Handle) string {
	dirs := r.dirsOf(h)
	return filepath.Join(dirs[len(dirs)-1], h.Name)
}

// quarantineDir is the folder of r's files moved aside.
func (r *repoStore) quarantineDir() string {
	return filepath.Join(r.c.dir, quarantineDir, r.name)
}

func quarantineName(h backend.Handle) string { return h.Type.Dir() + "-" + h.Name }

// quarantine checks h again, holding it against puts and deletes, and
// if it is still damaged moves it aside and books it in the scrub state.
func (r *repoStore) quarantine(ctx context.Context, h backend.Handle, logf func(string, ...any)) (bool, error) {
	unlock, err := r.lock(ctx, h)
	if err != nil {
		return false, err
	}
	defer unlock()
	fi, err := r.be.Stat(ctx, h)
	if backend.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	detail, err := r.damage(ctx, h, fi.Size, fi.Size)
	if err != nil || detail == "" {
		return false, err
	}
	if err := r.moveAside(h); err != nil {
		return false, fmt.Errorf("move damaged %s aside: %w", h, err)
	}
	r.c.scrubMu.Lock()
	st := r.loadState()
	st.Damaged++
	serr := r.saveState(st)
	r.c.scrubMu.Unlock()
	logf("peer server: peer %s: scrub: repository %q: %s is damaged (%s); moved it to the quarantine, the owner's next mirror puts it again",
		r.c.id.Short(), r.name, h, detail)
	if serr != nil {
		logf("peer server: peer %s: scrub: repository %q: save the scrub state: %v", r.c.id.Short(), r.name, serr)
	}
	return true, nil
}

// moveAside renames h into the quarantine, where it keeps its cost (it
// stays in the client's folder); r.lock(h) is held.
func (r *repoStore) moveAside(h backend.Handle) error {
	c := r.c
	c.change.RLock()
	defer c.change.RUnlock()
	qdir := r.quarantineDir()
	for _, d := range []string{filepath.Dir(qdir), qdir} {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			c.booked(InodeCost)
		}
	}
	dst := filepath.Join(qdir, quarantineName(h))
	if old, err := os.Stat(dst); err == nil {
		c.freed(old.Size() + InodeCost) // an older damaged copy, replaced
	}
	if err := os.Rename(r.filePath(h), dst); err != nil {
		return err
	}
	now := time.Now()
	_ = os.Chtimes(dst, now, now) // the time it was found; on failure the report shows the file's own time
	return nil
}

// unquarantine removes the damaged copy of h after a put stored a good
// one; h is locked.
func (r *repoStore) unquarantine(h backend.Handle) {
	c := r.c
	p := filepath.Join(r.quarantineDir(), quarantineName(h))
	fi, err := os.Stat(p)
	if err != nil {
		return // none: the common case
	}
	c.change.RLock()
	defer c.change.RUnlock()
	if err := os.Remove(p); err != nil {
		c.logf("peer %s: remove the damaged copy of %s in repository %q: %v", c.id.Short(), h, r.name, err)
		return
	}
	c.freed(fi.Size() + InodeCost)
	c.logf("peer %s: healed %s in repository %q: the owner put a good copy; the damaged one is removed", c.id.Short(), h, r.name)
}

// scrubStateFile is what the scrub keeps about a repository.
type scrubStateFile struct {
	LastPass int64 `json:"last_pass"`
	Files    int64 `json:"files"`
	Bytes    int64 `json:"bytes"`
	Damaged  int64 `json:"damaged"`
}

// loadState reads r's scrub state; c.scrubMu is held. A missing or
// unreadable file is a fresh state.
func (r *repoStore) loadState() scrubStateFile {
	var st scrubStateFile
	b, err := os.ReadFile(r.statePath())
	if err == nil && len(b) < 4096 {
		if json.Unmarshal(b, &st) != nil || st.LastPass < 0 || st.Files < 0 || st.Bytes < 0 || st.Damaged < 0 {
			st = scrubStateFile{}
		}
	}
	return st
}

// statePath is where r's scrub state is kept: outside the client's
// folder, so it costs the client nothing against its quota and a count
// of the folder sees only what the client stored.
func (r *repoStore) statePath() string {
	return filepath.Join(filepath.Dir(r.c.dir), scrubStateDir, r.c.id.String(), r.name)
}

// saveState writes r's scrub state; c.scrubMu is held.
func (r *repoStore) saveState(st scrubStateFile) error {
	path := r.statePath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), tempPrefix+r.name) // no repository name starts with a dot
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp) // the rename's error is the one to report
		return err
	}
	return nil
}

// report is r's scrub report: its state and its quarantined files.
func (r *repoStore) report() (scrubReport, error) {
	r.c.scrubMu.Lock()
	st := r.loadState()
	r.c.scrubMu.Unlock()
	rep := scrubReport{LastPass: st.LastPass, Files: st.Files, Bytes: st.Bytes, Damaged: st.Damaged}
	entries, err := os.ReadDir(r.quarantineDir())
	if errors.Is(err, fs.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("scrub report: %w", err)
	}
	for _, e := range entries {
		h, ok := parseQuarantineName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		rep.Quarantined++
		if len(rep.Entries) == maxScrubEntries {
			continue
		}
		found := int64(0)
		if fi, err := e.Info(); err == nil {
			found = max(fi.ModTime().Unix(), 0)
		}
		rep.Entries = append(rep.Entries, scrubEntry{Type: h.Type, Name: h.Name, Found: found})
	}
	return rep, nil
}

// parseQuarantineName turns a quarantined file's name back into its handle.
func parseQuarantineName(name string) (backend.Handle, bool) {
	dir, file, ok := strings.Cut(name, "-")
	if !ok {
		return backend.Handle{}, false
	}
	for _, t := range scrubTypes() {
		if t.Dir() == dir {
			h := backend.Handle{Type: t, Name: file}
			return h, h.Valid() == nil
		}
	}
	return backend.Handle{}, false
}

// booked adds cost the server itself spent in the client's folder (the
// quarantine's folders and state), outside any quota check: the client
// did not ask for it.
func (c *clientStore) booked(cost int64) {
	c.mu.Lock()
	c.used += cost
	c.mu.Unlock()
}

// repoNames lists the repository folders of c, sorted.
func (c *clientStore) repoNames() ([]string, error) {
	entries, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && ValidName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
