package peer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInviteCodeVector pins the code of sampleInvite in
// testdata/invite-code.txt (docs/peer-protocol.md quotes it).
func TestInviteCodeVector(t *testing.T) {
	inv := sampleInvite()
	path := filepath.Join("testdata", "invite-code.txt")
	if *update {
		if err := os.WriteFile(path, []byte(inv.Code()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got := inv.Code(); got != strings.TrimSpace(string(want)) {
		t.Fatalf("code\n%s\nwant\n%s", got, want)
	}
	back, err := ParseInvite("  " + string(want) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if back != inv {
		t.Fatalf("parsed %#v, want %#v", back, inv)
	}
}

func TestParseInviteRejects(t *testing.T) {
	good := sampleInvite().Code()
	flip := func(i int) string {
		b := []byte(good)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	badAddr := sampleInvite()
	badAddr.Addr = "host-without-port"
	for name, s := range map[string]string{
		"empty":          "",
		"no prefix":      good[len(invitePrefix):],
		"other prefix":   "CAIRN2" + good[len(invitePrefix):],
		"lower case":     strings.ToLower(good),
		"typo":           flip(20),
		"typo in sum":    flip(len(good) - 1),
		"cut":            good[:len(good)-3],
		"one lost":       good[:30] + good[31:],
		"space inside":   good[:30] + " " + good[30:],
		"not base32":     good[:30] + "1" + good[31:],
		"too long":       good + strings.Repeat("A", maxInviteCode),
		"bad address":    badAddr.codeUnchecked(),
		"location given": "peer://" + sampleInvite().Server.String() + "@h:1/x",
	} {
		if _, err := ParseInvite(s); !errors.Is(err, ErrInvite) {
			t.Errorf("%s: got %v, want ErrInvite", name, err)
		}
	}
}

// codeUnchecked encodes i even when its address is not valid.
func (i Invite) codeUnchecked() string {
	return invitePrefix + inviteEncoding.EncodeToString(i.payload())
}

// TestInviteKeepsSecret: no text form but Code shows the secret.
func TestInviteKeepsSecret(t *testing.T) {
	inv := sampleInvite()
	secret := inviteEncoding.EncodeToString(inv.Secret[:])[:20]
	for _, s := range []string{inv.String(), inv.GoString(), fmtAll(inv)} {
		if strings.Contains(s, inv.Code()) || strings.Contains(s, secret) || strings.Contains(strings.ToLower(s), "a0a1a2") {
			t.Errorf("text form shows the secret: %s", s)
		}
	}
}

// FuzzParseInvite: no panic; a failure wraps ErrInvite; a code that
// parses encodes back to itself (white space trimmed).
func FuzzParseInvite(f *testing.F) {
	f.Add(sampleInvite().Code())
	f.Add("CAIRN1")
	f.Add(" " + sampleInvite().Code() + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInvite(s)
		if err != nil {
			if !errors.Is(err, ErrInvite) {
				t.Fatalf("error not wrapping ErrInvite: %v", err)
			}
			return
		}
		if got := inv.Code(); got != strings.TrimSpace(s) {
			t.Fatalf("re-encoding gives %q, not the input %q", got, s)
		}
	})
}

func fmtAll(v any) string {
	var b strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		b.WriteString(fmt.Sprintf(verb, v))
	}
	return b.String()
}
