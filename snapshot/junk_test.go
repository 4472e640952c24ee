package snapshot

import (
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// TestLoadLogSkipsJunk: a file under log/ that matches its name but is not
// a log entry is skipped and named, and hides nothing: the chain and the
// snapshots are those of the valid entries, with no problem. A
// well-formed entry whose signature does not verify stays a problem.
func TestLoadLogSkipsJunk(t *testing.T) {
	r := newMemLog(t)
	ident, _ := crypt.NewIdentity()
	buildLog(t, r, ident, 3)
	junk := []byte("a file some client put under log/")
	junkID := backend.Hash(junk)
	r.files[junkID] = junk
	l := mustLoad(t, r)
	if len(l.Problems) != 0 || len(l.Snapshots()) != 3 {
		t.Fatalf("problems %q, %d snapshots", l.Problems, len(l.Snapshots()))
	}
	if len(l.Skipped) != 1 || !strings.Contains(l.Skipped[0], "log/"+junkID.String()+" is not a log entry") {
		t.Fatalf("skipped %q", l.Skipped)
	}

	// A valid envelope with a flipped signature bit is an edit: damage.
	for id, b := range r.files {
		if id != junkID {
			forged := append([]byte(nil), b...)
			forged[len(forged)-1] ^= 1
			r.files[backend.Hash(forged)] = forged
			break
		}
	}
	l = mustLoad(t, r)
	wantProblem(t, l.Problems, "bad signature")
}
