package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
)

// metaClock is a clock that moves one second per call.
func metaClock() func() time.Time {
	t := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

func metaFiles(be *mem.Backend) []backend.Handle {
	var out []backend.Handle
	for h := range be.Files() {
		if h.Type == backend.MetaFile {
			out = append(out, h)
		}
	}
	return out
}

func TestMetaRoundTrip(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	testInit(t, be, InitOptions{})
	r := testOpen(t, be, Options{Now: metaClock()})
	for i, kind := range []string{"receipt:a", "destinations", "receipt:a"} {
		rec, err := r.SaveMeta(ctx, kind, []byte(fmt.Sprintf("payload %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if rec.ID.IsNull() {
			t.Fatal("saved record has no ID")
		}
	}
	recs, err := r.LoadMeta(ctx, "receipt:a")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Payload) != "payload 2" || recs[0].Seq != 2 ||
		string(recs[1].Payload) != "payload 0" || recs[1].Seq != 1 || !recs[0].Time.After(recs[1].Time) {
		t.Fatalf("receipt:a records: %+v", recs)
	}
	all, err := LoadMetaFrom(ctx, be, r.Keys(), "", nil)
	if err != nil || len(all) != 3 {
		t.Fatalf("all records: %d %v", len(all), err)
	}
	// The stored bytes are sealed: no payload in clear.
	for _, h := range metaFiles(be) {
		if bytes.Contains(be.Files()[h], []byte("payload")) || bytes.Contains(be.Files()[h], []byte("receipt")) {
			t.Fatalf("%s holds plaintext", h)
		}
	}
	// Another session with the password reads them.
	r2 := testOpen(t, be, Options{})
	if recs, err := r2.LoadMeta(ctx, "destinations"); err != nil || len(recs) != 1 || string(recs[0].Payload) != "payload 1" {
		t.Fatalf("destinations: %+v %v", recs, err)
	}
}

func TestMetaTamperedRefused(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	testInit(t, be, InitOptions{})
	r := testOpen(t, be, Options{Now: metaClock()})
	good, err := r.SaveMeta(ctx, "receipt:a", []byte("true head"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := r.SaveMeta(ctx, "receipt:a", []byte("will be flipped"))
	if err != nil {
		t.Fatal(err)
	}
	// 1. A flipped bit: the content no longer matches its name.
	h := backend.Handle{Type: backend.MetaFile, Name: bad.ID.String()}
	if err := be.Corrupt(h, 30); err != nil {
		t.Fatal(err)
	}
	// 2. A forged record stored under its own hash, sealed with another
	// repository's key: it does not open.
	other := mem.New()
	testInit(t, other, InitOptions{})
	ro := testOpen(t, other, Options{Now: metaClock()})
	forged, err := ro.SaveMeta(ctx, "receipt:a", []byte("forged head"))
	if err != nil {
		t.Fatal(err)
	}
	fh := backend.Handle{Type: backend.MetaFile, Name: forged.ID.String()}
	if err := be.SetFile(fh, other.Files()[fh]); err != nil {
		t.Fatal(err)
	}
	// 3. A lock file of this repository copied into meta/: sealed with
	// the right key but as another kind.
	for lh, data := range be.Files() {
		if lh.Type == backend.IndexFile {
			if err := be.SetFile(backend.Handle{Type: backend.MetaFile, Name: lh.Name}, data); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	var warnings []string
	r2 := testOpen(t, be, Options{Warn: func(m string) { warnings = append(warnings, m) }})
	recs, err := r2.LoadMeta(ctx, "receipt:a")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != good.ID {
		t.Fatalf("records: %+v", recs)
	}
	if len(warnings) < 2 {
		t.Fatalf("warnings: %q", warnings)
	}
	for _, w := range warnings {
		if !strings.Contains(w, "damaged") || !strings.Contains(w, "meta/") {
			t.Errorf("warning %q", w)
		}
	}
}

func TestMetaKeepsNewest(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	testInit(t, be, InitOptions{})
	r := testOpen(t, be, Options{Now: metaClock()})
	for i := range MetaKeep + 3 {
		if _, err := r.SaveMeta(ctx, "receipt:a", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.SaveMeta(ctx, "receipt:b", []byte("b")); err != nil {
		t.Fatal(err)
	}
	recs, err := r.LoadMeta(ctx, "receipt:a")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != MetaKeep || recs[0].Payload[0] != MetaKeep+2 || recs[len(recs)-1].Payload[0] != 3 {
		t.Fatalf("kept %d records, newest %v", len(recs), recs[0].Payload)
	}
	if n := len(metaFiles(be)); n != MetaKeep+1 {
		t.Fatalf("%d meta files", n)
	}
	// On a backend that refuses deletes, saving still works.
	ra := testOpen(t, appendOnly{be}, Options{Now: metaClock()})
	if _, err := ra.SaveMeta(ctx, "receipt:a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := len(metaFiles(be)); n != MetaKeep+2 {
		t.Fatalf("%d meta files on append-only", n)
	}
}

func TestMetaKindValidated(t *testing.T) {
	for _, k := range []string{"", "Receipt", "a b", "ä", strings.Repeat("a", maxMetaKind+1), "x\n"} {
		if err := ValidMetaKind(k); !errors.Is(err, ErrMetaFormat) {
			t.Errorf("kind %q: %v", k, err)
		}
	}
	for _, k := range []string{"receipt", "receipt:abc-def", "mirror-record:sftp/x.y_z"} {
		if err := ValidMetaKind(k); err != nil {
			t.Errorf("kind %q: %v", k, err)
		}
	}
	if _, err := EncodeMeta(MetaRecord{Kind: "a", Payload: make([]byte, MaxMetaPayload+1)}); !errors.Is(err, ErrMetaFormat) {
		t.Errorf("big payload: %v", err)
	}
}

// Mirror copies meta/ after the log; with --prune it removes the records
// the source replaced; an append-only copy keeps them.
func TestMirrorCopiesMeta(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 2)
	r := testOpen(t, src, Options{Now: metaClock()})
	for i := range MetaKeep {
		if _, err := r.SaveMeta(ctx, "receipt:a", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	dst := mem.New()
	plan, err := PlanMirror(ctx, src, dst, MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := plan.Copy[len(plan.Copy)-MetaKeep:]
	for _, c := range last {
		if c.Handle.Type != backend.MetaFile {
			t.Fatalf("copy order ends with %s, not the meta records", c.Handle)
		}
	}
	if _, err := ExecuteMirror(ctx, src, dst, plan, MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, src, dst)
	// The copy's records open with the password.
	rd := testOpen(t, dst, Options{})
	if recs, err := rd.LoadMeta(ctx, "receipt:a"); err != nil || len(recs) != MetaKeep {
		t.Fatalf("copy's records: %d %v", len(recs), err)
	}
	// One more record replaces the oldest at the source.
	if _, err := r.SaveMeta(ctx, "receipt:a", []byte("new")); err != nil {
		t.Fatal(err)
	}
	ao := appendOnly{dst}
	st, err := Mirror(ctx, src, ao, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	if err != nil || st.FilesCopied != 1 || st.FilesKept != 1 {
		t.Fatalf("append-only: %+v %v", st, err)
	}
	st, err = Mirror(ctx, src, dst, MirrorOptions{Prune: true, Refs: r.MirrorRefs()})
	if err != nil || st.FilesRemoved != 1 {
		t.Fatalf("read-write prune: %+v %v", st, err)
	}
	sameFiles(t, src, dst)
}

// check neither needs meta records nor complains about them.
func TestCheckIgnoresMeta(t *testing.T) {
	fx := buildFixture(t, 11, 20)
	r := testOpen(t, fx.be, Options{Now: metaClock()})
	if _, err := r.SaveMeta(context.Background(), "receipt:a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	res := checkRepo(t, fx.be, CheckOptions{ReadData: true})
	wantProblems(t, res.Problems)
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := EncodeMeta(MetaRecord{Kind: "receipt:x", Time: time.Unix(1, 5), Seq: 3, Payload: []byte("p")})
	f.Add(good)
	f.Add([]byte(`{"v":1,"kind":"a","time":"2026-01-01T00:00:00Z","seq":1,"payload":""}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrMetaFormat) {
				t.Fatalf("error not ErrMetaFormat: %v", err)
			}
			return
		}
		enc, err := EncodeMeta(rec)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := DecodeMeta(enc)
		if err != nil || back.Kind != rec.Kind || back.Seq != rec.Seq || !back.Time.Equal(rec.Time) || !bytes.Equal(back.Payload, rec.Payload) {
			t.Fatalf("round trip: %+v %+v %v", rec, back, err)
		}
	})
}

// oldPeer refuses meta files as a peer server older than them does.
type oldPeer struct{ backend.Backend }

func (o oldPeer) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if t == backend.MetaFile {
		return fmt.Errorf("list meta: %w", backend.ErrInvalidName)
	}
	return o.Backend.List(ctx, t, fn)
}

// A destination that knows no meta records still gets everything else,
// with a warning.
func TestMirrorToServerWithoutMeta(t *testing.T) {
	ctx := context.Background()
	ident, _ := crypt.NewIdentity()
	src, _ := mirrorSource(t, ident, 2)
	r := testOpen(t, src, Options{Now: metaClock()})
	if _, err := r.SaveMeta(ctx, "receipt:a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	dst := mem.New()
	var warnings []string
	_, err := Mirror(ctx, src, oldPeer{dst}, MirrorOptions{Warn: func(m string) { warnings = append(warnings, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(metaFiles(dst)) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "does not take meta records") {
		t.Fatalf("meta files %d, warnings %q", len(metaFiles(dst)), warnings)
	}
	testOpen(t, dst, Options{})
}
