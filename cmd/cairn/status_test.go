package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rivo/uniseg"
)

func TestFitWidth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		cols int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 4, "hell"},
		{"hello", 0, ""},
		// Wide characters take two columns and are not split.
		{"日本語のファイル", 5, "日本"},
		{"日本語のファイル", 6, "日本語"},
		// A combining mark stays with its letter and takes no column.
		{"cafe\u0301 au lait", 4, "cafe\u0301"},
		// An emoji with a skin tone is one cluster of two columns.
		{"ab\U0001F44D\U0001F3FDcd", 3, "ab"},
		{"ab\U0001F44D\U0001F3FDcd", 4, "ab\U0001F44D\U0001F3FD"},
	} {
		got := fitWidth(tc.in, tc.cols)
		if got != tc.want {
			t.Errorf("fitWidth(%q, %d) = %q, want %q", tc.in, tc.cols, got, tc.want)
		}
		if w := uniseg.StringWidth(got); w > tc.cols {
			t.Errorf("fitWidth(%q, %d) is %d columns wide", tc.in, tc.cols, w)
		}
	}
}

// TestStatusFitsTheTerminal: a status line longer than the terminal is
// cut one column short of its width, wide names included, drawn from
// the start of the row with the rest of the row erased, and erased
// before any other output; off a terminal nothing is drawn.
func TestStatusFitsTheTerminal(t *testing.T) {
	var out bytes.Buffer
	width := 40
	p := &printer{out: &out, errw: &out, tty: true, width: func() int { return width }}
	long := "[0:01] 50.0% ETA 0:01  3 / 6 files  /home/日本語/" + strings.Repeat("x", 100)
	p.Status(long)
	drawn := out.String()
	if !strings.HasPrefix(drawn, "\r") || !strings.HasSuffix(drawn, "\x1b[K") {
		t.Fatalf("status drawn as %q", drawn)
	}
	line := strings.TrimSuffix(strings.TrimPrefix(drawn, "\r"), "\x1b[K")
	if w := uniseg.StringWidth(line); w != width-1 {
		t.Errorf("status line %q is %d columns, want %d", line, w, width-1)
	}
	// The window shrinks: the next line follows.
	out.Reset()
	width = 20
	p.Status(long)
	if line := strings.TrimSuffix(strings.TrimPrefix(out.String(), "\r"), "\x1b[K"); uniseg.StringWidth(line) != 19 {
		t.Errorf("after a resize: %q", line)
	}
	out.Reset()
	p.Printf("done")
	if got := out.String(); got != "\r\x1b[Kdone\n" {
		t.Errorf("a line after the status: %q, want the status erased first", got)
	}
	out.Reset()
	p.Printf("again")
	if got := out.String(); got != "again\n" {
		t.Errorf("a line with no status on screen: %q", got)
	}
	// Unknown width: 80 columns.
	out.Reset()
	p.width = func() int { return 0 }
	p.Status(long)
	if line := strings.TrimSuffix(strings.TrimPrefix(out.String(), "\r"), "\x1b[K"); uniseg.StringWidth(line) != defaultWidth-1 {
		t.Errorf("unknown width: %d columns", uniseg.StringWidth(line))
	}
	var off bytes.Buffer
	(&printer{out: &off, errw: &off}).Status(long)
	if off.Len() != 0 {
		t.Errorf("status drawn off a terminal: %q", off.String())
	}
}

// TestRateMeter: the rate looks back at most rateWindow, keeps one
// sample a second, and is unknown for the first second.
func TestRateMeter(t *testing.T) {
	var m rateMeter
	if r := m.rate(0, 0); r >= 0 {
		t.Errorf("rate with no sample: %v", r)
	}
	m.add(0, 0)
	if r := m.rate(500*time.Millisecond, 1000); r >= 0 {
		t.Errorf("rate after half a second: %v", r)
	}
	// 100 units a second for a minute, sampled ten times a second.
	for i := 1; i <= 600; i++ {
		m.add(time.Duration(i)*100*time.Millisecond, uint64(i*10))
	}
	if r := m.rate(60*time.Second, 6000); r < 99 || r > 101 {
		t.Errorf("steady rate %v, want 100", r)
	}
	// Then 1000 a second: after a window the old pace is forgotten.
	for i := 1; i <= 300; i++ {
		m.add(60*time.Second+time.Duration(i)*100*time.Millisecond, uint64(6000+i*100))
	}
	if r := m.rate(90*time.Second, 36000); r < 990 || r > 1010 {
		t.Errorf("rate after the change %v, want 1000", r)
	}
	if d := eta(36000, 46000, 1000); d != 10*time.Second {
		t.Errorf("eta %v, want 10s", d)
	}
	if d := eta(1, 2, -1); d >= 0 {
		t.Errorf("eta with no rate: %v", d)
	}
}

func TestStatusText(t *testing.T) {
	s := statusText{elapsed: 75 * time.Second, percent: 42.25, eta: 3 * time.Minute, rate: 2 << 20,
		counts: []string{"3 / 7 files", "1.000 MiB / 2.000 MiB"}, errors: 2, item: "/a/b"}
	want := "[1:15] 42.2% ETA 3:00  3 / 7 files, 1.000 MiB / 2.000 MiB, 2.000 MiB/s, 2 errors  /a/b"
	if got := s.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	s = statusText{elapsed: time.Second, phase: "repack", percent: -1, eta: -1, rate: -1, counts: []string{"1 / 4 packs"}}
	if got := s.String(); got != "[0:01] repack:  1 / 4 packs" {
		t.Errorf("got %q", got)
	}
}
