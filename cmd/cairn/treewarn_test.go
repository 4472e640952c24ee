package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestWarnTreeDecoderMisses: nothing when the fast tree decoder took every
// tree in cairn's own format, one warning line naming the count when not.
func TestWarnTreeDecoderMisses(t *testing.T) {
	var b bytes.Buffer
	warnTreeDecoderMisses(&b, 0)
	if b.Len() != 0 {
		t.Fatalf("warned with no misses: %q", b.String())
	}
	warnTreeDecoderMisses(&b, 3)
	out := b.String()
	if !strings.HasPrefix(out, "cairn: warning: 3 tree blob(s) ") || !strings.HasSuffix(out, "please report it\n") ||
		strings.Count(out, "\n") != 1 {
		t.Fatalf("warning is %q", out)
	}
}
