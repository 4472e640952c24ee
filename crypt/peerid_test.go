package crypt

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func randomPeerID(t *testing.T) PeerID {
	var p PeerID
	if _, err := rand.Read(p[:]); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPeerIDRoundTrip(t *testing.T) {
	ids := []PeerID{{}, {0xff, 0xff}}
	for i := range ids[1] {
		ids[1][i] = 0xff
	}
	for range 200 {
		ids = append(ids, randomPeerID(t))
	}
	for _, p := range ids {
		s := p.String()
		if len(s) != 63 || strings.Count(s, "-") != 7 {
			t.Fatalf("%q: want 8 groups of 7", s)
		}
		for i, g := range strings.Split(s, "-") {
			if len(g) != 7 || strings.Trim(g, peerIDAlphabet) != "" {
				t.Fatalf("%q: group %d is %q", s, i, g)
			}
		}
		for _, form := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", ""), strings.ToLower(strings.ReplaceAll(s, "-", ""))} {
			got, err := ParsePeerID(form)
			if err != nil {
				t.Fatalf("%q: %v", form, err)
			}
			if got != p {
				t.Fatalf("%q parsed to another ID", form)
			}
		}
		if p.Short() != s[:7] {
			t.Fatalf("Short = %q, want %q", p.Short(), s[:7])
		}
	}
}

func TestParsePeerIDRejects(t *testing.T) {
	s := randomPeerID(t).String()
	bare := strings.ReplaceAll(s, "-", "")
	for name, bad := range map[string]string{
		"empty":          "",
		"short":          s[:62],
		"long":           s + "A",
		"bare short":     bare[:55],
		"bare long":      bare + "A",
		"dash moved":     s[:6] + "-" + s[6:7] + s[8:],
		"some dashes":    s[:8] + strings.ReplaceAll(s[8:], "-", "") + "AAAAAA",
		"space":          strings.Replace(s, "-", " ", 1),
		"digit 0":        "0" + s[1:],
		"digit 1":        "1" + s[1:],
		"digit 8":        "8" + s[1:],
		"padding":        "=" + s[1:],
		"non-ascii":      "\xc3\x84" + s[2:],
		"trailing space": s[:62] + " ",
	} {
		if _, err := ParsePeerID(bad); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func TestParsePeerIDCatchesTypos(t *testing.T) {
	for range 20 {
		p := randomPeerID(t)
		s := []byte(strings.ReplaceAll(p.String(), "-", ""))
		// Every single substitution.
		for i := range s {
			for _, c := range []byte(peerIDAlphabet) {
				if c == s[i] {
					continue
				}
				bad := append([]byte(nil), s...)
				bad[i] = c
				if _, err := ParsePeerID(string(bad)); err == nil {
					t.Fatalf("%s: substitution at %d not caught", bad, i)
				}
			}
		}
		// Every transposition of two different characters in a block of
		// 14, and every swap of neighbours across the whole ID.
		for i := range s {
			for j := i + 1; j < len(s); j++ {
				sameBlock := i/(peerIDBlockChars+1) == j/(peerIDBlockChars+1)
				if s[i] == s[j] || !(sameBlock || j == i+1) {
					continue
				}
				bad := append([]byte(nil), s...)
				bad[i], bad[j] = bad[j], bad[i]
				if _, err := ParsePeerID(string(bad)); err == nil {
					t.Fatalf("%s: swap of %d and %d not caught", bad, i, j)
				}
			}
		}
		// Blocks moved to other places.
		const n = peerIDBlockChars + 1
		for a := range peerIDBlocks {
			for b := a + 1; b < peerIDBlocks; b++ {
				bad := append([]byte(nil), s...)
				copy(bad[a*n:], s[b*n:(b+1)*n])
				copy(bad[b*n:], s[a*n:(a+1)*n])
				if _, err := ParsePeerID(string(bad)); err == nil {
					t.Fatalf("%s: swap of blocks %d and %d not caught", bad, a, b)
				}
			}
		}
	}
}

func TestParsePeerIDRejectsUnusedBits(t *testing.T) {
	s := []byte(strings.ReplaceAll(PeerID{}.String(), "-", ""))
	// The 52nd data character is the last of block 4, just before its
	// check character. Set one of its four unused bits and fix the check.
	const last = 3*(peerIDBlockChars+1) + peerIDBlockChars - 1
	s[last] = 'B'
	block := string(s[3*(peerIDBlockChars+1) : last+1])
	s[last+1] = peerIDAlphabet[peerIDCheck(3, block)]
	_, err := ParsePeerID(string(s))
	wantErr(t, err, ErrFormat)
	if err == nil || !strings.Contains(err.Error(), "unused bits") {
		t.Errorf("got %v, want an unused-bits error", err)
	}
}

func TestPeerIDText(t *testing.T) {
	p := randomPeerID(t)
	b, err := json.Marshal(map[string]PeerID{"peer": p})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"peer":"` + p.String() + `"}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var got map[string]PeerID
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["peer"] != p {
		t.Fatal("JSON round trip changed the ID")
	}
	if err := json.Unmarshal([]byte(`{"peer":"AAAA"}`), &got); err == nil {
		t.Fatal("unmarshalled a bad ID")
	}
}

func TestGF32(t *testing.T) {
	// α = x generates the multiplicative group: its order is 31, which is
	// what makes the 14 weights of a block distinct.
	w := byte(1)
	for i := 1; i <= 31; i++ {
		w = gf32Mul(w, 2)
		if w == 1 && i != 31 {
			t.Fatalf("α has order %d, want 31", i)
		}
	}
	if w != 1 {
		t.Fatal("α^31 != 1")
	}
	// Multiplication is a field's: every non-zero element has an inverse.
	for a := byte(1); a < 32; a++ {
		found := false
		for b := byte(1); b < 32; b++ {
			found = found || gf32Mul(a, b) == 1
		}
		if !found {
			t.Fatalf("%d has no inverse", a)
		}
	}
}
