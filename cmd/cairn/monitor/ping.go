package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultPingTimeout bounds one ping when Pinger.Timeout is zero: a
// monitoring service that does not answer within it is reported, and the
// job goes on.
const DefaultPingTimeout = 10 * time.Second

// MaxLogTail is how many bytes of the log tail Fail sends at most (the
// last ones): healthchecks.io keeps 10 KB of a ping's body.
const MaxLogTail = 10 << 10

// maxPingAnswer caps how much of an answer is read (and discarded) so the
// connection can be reused.
const maxPingAnswer = 4 << 10

// Pinger reports a job's start and end to a healthchecks.io-style URL:
// URL/start when the job starts, URL on success, URL/fail on failure with
// the tail of the job's log as the body. A query string of URL is kept on
// every ping.
//
// A ping's error must not fail the job: the caller reports it as a warning.
// Errors name the URL's host only (the path is the check's secret).
type Pinger struct {
	// URL is the check's ping URL, http or https.
	URL string
	// Timeout bounds each ping; zero means DefaultPingTimeout.
	Timeout time.Duration
}

// Validate reports whether URL can be pinged: an absolute http or https URL
// with a host.
func (p Pinger) Validate() error {
	_, err := p.endpoint("")
	return err
}

// Start pings URL/start.
func (p Pinger) Start(ctx context.Context) error {
	return p.ping(ctx, "start", "/start", "")
}

// Success pings URL.
func (p Pinger) Success(ctx context.Context) error {
	return p.ping(ctx, "success", "", "")
}

// Fail pings URL/fail with the last MaxLogTail bytes of logTail as the
// body.
func (p Pinger) Fail(ctx context.Context, logTail string) error {
	return p.ping(ctx, "fail", "/fail", tail(logTail, MaxLogTail))
}

// tail is the last max bytes of s, starting at a character boundary.
func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	for i := 0; i < utf8.UTFMax && i < len(s); i++ {
		if utf8.RuneStart(s[i]) {
			return s[i:]
		}
	}
	if len(s) < utf8.UTFMax {
		return "" // only the end of a cut character
	}
	return s // not UTF-8: sent as it is
}

// endpoint is URL with suffix appended to its path.
func (p Pinger) endpoint(suffix string) (*url.URL, error) {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// url.Parse's error quotes the whole URL: say less.
		return nil, errors.New("ping URL: want an absolute http:// or https:// URL")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + suffix
	u.RawPath = ""
	u.Fragment = ""
	return u, nil
}

func (p Pinger) ping(ctx context.Context, what, suffix, body string) error {
	u, err := p.endpoint(suffix)
	if err != nil {
		return err
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultPingTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := http.MethodGet
	var rd io.Reader
	if what == "fail" {
		method = http.MethodPost
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("ping %s to %s: bad request", what, u.Host)
	}
	req.Header.Set("User-Agent", "cairn")
	if rd != nil {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	// The client follows redirects (an http:// URL answered with a
	// redirect to https://); the context bounds the whole exchange.
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return fmt.Errorf("ping %s to %s: %s", what, u.Host, hostOnly(ctx, err))
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxPingAnswer)
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("ping %s to %s: HTTP %s", what, u.Host, resp.Status)
	}
	return nil
}

// hostOnly describes a transport error without the request's URL, which
// *url.Error would print whole.
func hostOnly(ctx context.Context, err error) string {
	if ctx.Err() == context.DeadlineExceeded {
		return "no answer within the timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
