package sftptest

import (
	"net"
	"testing"
)

// TestStart checks that Start gives a server that answers.
func TestStart(t *testing.T) {
	s := Start(t)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if s.ClientKeyFile == "" || len(s.HostKeys) == 0 {
		t.Errorf("server without keys: %+v", s.Server)
	}
}
