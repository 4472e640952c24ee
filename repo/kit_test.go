package repo

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleKit() Kit {
	return Kit{
		RepoID: strings.Repeat("ab", 32),
		Destinations: []Destination{
			{Name: "alice", Location: "peer://KZDVVJ2-UMNDUYK-AUF35O3-6K6KW4S-62MUJVR-A46TN3N-UQGZOVM-IHOCGAC@friend.example.org:7484/laptop"},
			{Name: "nas", Location: "sftp:alice@nas:/srv/cairn with space"},
		},
		Identity: "Q1NJMQ",
	}
}

func TestKitRoundTrip(t *testing.T) {
	k := sampleKit()
	body, err := k.Body()
	if err != nil {
		t.Fatal(err)
	}
	text := "# instructions\n# more\n\n" + strings.ReplaceAll(body, "\n", "\r\n") + "# trailing note\n"
	back, err := ParseKit(text)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, k) {
		t.Fatalf("parsed %+v, want %+v", back, k)
	}
}

func TestParseKitRejects(t *testing.T) {
	body, _ := sampleKit().Body()
	for name, s := range map[string]string{
		"empty":         "",
		"no header":     strings.Replace(body, kitHeader, "cairn-recovery-kit 2", 1),
		"typo":          strings.Replace(body, "friend.example", "friend.exanple", 1),
		"no check":      body[:strings.Index(body, "check ")],
		"line lost":     strings.Replace(body, "destination nas sftp:alice@nas:/srv/cairn with space\n", "", 1),
		"unknown line":  strings.Replace(body, "identity", "secret", 1),
		"bad repo":      strings.Replace(body, "repository ab", "repository xy", 1),
		"two identity":  strings.Replace(body, "identity Q1NJMQ\n", "identity Q1NJMQ\nidentity Q1NJMQ\n", 1),
		"dest after id": strings.Replace(body, "identity Q1NJMQ\n", "identity Q1NJMQ\ndestination x /y\n", 1),
		"huge":          strings.Repeat("#", maxKit+1),
	} {
		if _, err := ParseKit(s); !errors.Is(err, ErrKit) {
			t.Errorf("%s: %v, want ErrKit", name, err)
		}
	}
}

// FuzzParseKit: no panic; a failure wraps ErrKit; a kit that parses
// writes out a body that parses to the same kit.
func FuzzParseKit(f *testing.F) {
	body, _ := sampleKit().Body()
	f.Add(body)
	f.Add("# only a comment\n")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKit(s)
		if err != nil {
			if !errors.Is(err, ErrKit) {
				t.Fatalf("error not wrapping ErrKit: %v", err)
			}
			return
		}
		b, err := k.Body()
		if err != nil {
			t.Fatalf("parsed kit does not write: %v", err)
		}
		back, err := ParseKit(b)
		if err != nil || !reflect.DeepEqual(back, k) {
			t.Fatalf("round trip: %+v %v", back, err)
		}
	})
}
