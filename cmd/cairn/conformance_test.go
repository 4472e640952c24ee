package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/peer"
	"github.com/cairn-backup/cairn/crypt"
)

// TestPeerServeConformance runs the backend conformance suite against a
// real "cairn peer serve" process, each test in a repository of its own:
// the suite's fourth backend, beside mem, local and sftp (a real sshd)
// in their packages, and the in-process server in backend/peer.
func TestPeerServeConformance(t *testing.T) {
	e := newTestEnv(t)
	client, err := crypt.LoadOrCreateIdentity(filepath.Join(e.dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	srv := startPeerServer(t, e, filepath.Join(e.dir, "server"), filepath.Join(e.dir, "root"),
		"--allow", client.PeerID().String()+":read-write")
	n := 0
	backendtest.RunTests(t, func(t *testing.T) backend.Backend {
		n++
		loc, err := peer.ParseLocation(srv.loc(fmt.Sprintf("suite-%d", n)))
		if err != nil {
			t.Fatal(err)
		}
		be, err := peer.Create(t.Context(), loc, client)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		return be
	})
}
