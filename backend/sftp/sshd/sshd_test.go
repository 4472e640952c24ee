package sshd

import (
	"os"
	"path/filepath"
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

// TestLaunch checks that the server answers, that its files are in place
// and that Close stops it; the SFTP backend's tests use it in earnest.
func TestLaunch(t *testing.T) {
	if _, err := FindSSHD(); err != nil {
		if Required() {
			t.Fatalf("CAIRN_TEST_REQUIRE names sftp, but: %v", err)
		}
		t.Skip(err)
	}
	s, err := Launch(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := banner(s.Addr()); err != nil {
		t.Fatalf("no SSH banner: %v", err)
	}
	for _, f := range []string{s.KnownHostsFile, s.ClientKeyFile, filepath.Join(s.Home, ".ssh", "id_ed25519"), filepath.Join(s.Home, ".ssh", "known_hosts")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if len(s.HostKeys) != 2 {
		t.Errorf("%d host keys, want 2", len(s.HostKeys))
	}
	if err := s.WaitSessionsEnded(0); err != nil {
		t.Errorf("sessions of an idle server: %v", err)
	}
	s.Close()
	if err := banner(s.Addr()); err == nil {
		t.Errorf("sshd still answers on %s after Close", s.Addr())
	}
	s.Close() // a second Close is harmless
}
