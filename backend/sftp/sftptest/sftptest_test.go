package sftptest

import (
	"os"
	"testing"
)

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want bool
	}{
		{"", false},
		{"sftp", true},
		{"peer,sftp", true},
		{"peer sftp", true},
		{" sftp ,peer", true},
		{"sftpx", false},
		{"nosftp", false},
		{"peer", false},
	} {
		t.Setenv("CAIRN_TEST_REQUIRE", tc.env)
		if got := Required(); got != tc.want {
			t.Errorf("CAIRN_TEST_REQUIRE=%q: Required() = %v, want %v", tc.env, got, tc.want)
		}
	}
}

// TestStart checks that the server answers and that its files are in
// place; the SFTP backend's tests use it in earnest.
func TestStart(t *testing.T) {
	s := Start(t)
	if err := banner(s.Addr()); err != nil {
		t.Fatalf("no SSH banner: %v", err)
	}
	for _, f := range []string{s.KnownHostsFile, s.ClientKeyFile, s.Home + "/.ssh/id_ed25519", s.Home + "/.ssh/known_hosts"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if len(s.HostKeys) != 2 {
		t.Errorf("%d host keys, want 2", len(s.HostKeys))
	}
}
