package peer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypt"
)

// Reload reads the peers file again and serves its friends from now on,
// with Allow's: new connections are checked against the new list, and
// the mode and quota of connected friends change at their next request.
// On an error (the file does not parse) the old list stays and the error
// is logged and returned. why names the trigger for the log line.
func (s *Server) Reload(why string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.reload(why)
}

// reloadIfChanged reloads when the peers file's content differs from the
// last load and is the same as at the previous call: a change is applied
// once the file has stayed put for one poll, so a file caught half
// written (an editor saving in place) is not loaded. reloadMu must not be
// held.
func (s *Server) reloadIfChanged() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	sum := peersFileSum(s.cfg.PeersFile)
	prev := s.peersPending
	s.peersPending = sum
	if sum == s.peersSum || sum != prev {
		return
	}
	_ = s.reload("on change") // logged inside
}

// peersFileSum is the hash of the peers file's content (of nothing when
// it is missing; zero when it cannot be read).
func peersFileSum(path string) [32]byte {
	data, err := readCapped(path, maxPeersFile)
	if errors.Is(err, fs.ErrNotExist) {
		return sha256.Sum256(nil)
	}
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(data)
}

// reload does Reload's work with reloadMu held.
func (s *Server) reload(why string) error {
	friends := make(map[crypt.PeerID]friendPolicy, len(s.cfg.Allow))
	for id, m := range s.cfg.Allow {
		friends[id] = friendPolicy{mode: m, quota: s.cfg.Quota}
	}
	if s.cfg.PeersFile != "" {
		list, sum, err := readPeersFile(s.cfg.PeersFile)
		s.peersSum, s.peersPending = sum, sum
		if err != nil {
			err = fmt.Errorf("peer server: peers file: %w", err)
			if s.friends.Load() != nil {
				s.cfg.Logf("%v (kept the previous list)", err)
			}
			return err
		}
		for _, f := range list {
			p := friendPolicy{mode: f.Mode, quota: s.cfg.Quota}
			if f.HasQuota {
				p.quota = f.Quota
			}
			friends[f.ID] = p
		}
		if s.friends.Load() != nil { // the first load is part of the start, which cmd reports
			s.cfg.Logf("peer server: peers file %s loaded (%s): %d friends, %d served in all", s.cfg.PeersFile, why, len(list), len(friends))
		}
	}
	s.friends.Store(&friends)
	s.store.update(friends)
	return nil
}

// WatchPeersFile reloads the peers file whenever its content changes,
// checking every interval until ctx ends; a change is applied at the
// first check that finds the file as the one before did. It reads the file (at most
// 1 MiB, a few KiB in practice) and compares its hash rather than its
// time stamp, so an edit within the file system's time resolution, or a
// replace by rename (as editors save), is seen too; a poll also works on
// every file system, where change notification does not (NFS, FUSE).
func (s *Server) WatchPeersFile(ctx context.Context, interval time.Duration) {
	if s.cfg.PeersFile == "" || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.reloadIfChanged()
		case <-ctx.Done():
			return
		}
	}
}

// joinLimit bounds failed joins over the whole server: at most
// maxJoinFailures per joinWindow, so nobody can try codes fast, whatever
// invitation IDs they guess.
type joinLimit struct {
	start    time.Time
	failures int
}

const (
	maxJoinFailures = 20
	joinWindow      = time.Minute
)

func (l *joinLimit) blocked(now time.Time) bool {
	if now.Sub(l.start) >= joinWindow {
		l.start, l.failures = now, 0
	}
	return l.failures >= maxJoinFailures
}

// serveJoin runs the join exchange on a connection that negotiated
// joinALPN: one request, one result.
func (s *Server) serveJoin(conn net.Conn, id crypt.PeerID, who string) {
	p, err := readFrame(conn, maxJoinFrame)
	if err != nil {
		s.cfg.Logf("peer server: %s: join: %v", who, err)
		if errors.Is(err, ErrProtocol) {
			_ = writeFrame(conn, joinResult{Status: joinBadRequest, Message: "malformed join request"}.encode()) // closing next
		}
		return
	}
	req, err := decodeJoinRequest(p)
	if err != nil {
		s.cfg.Logf("peer server: %s: %v", who, err)
		_ = writeFrame(conn, joinResult{Status: joinBadRequest, Message: "malformed join request"}.encode()) // closing next
		return
	}
	res := s.join(id, req)
	if res.Status == joinOK {
		s.cfg.Logf("peer server: %s: joined with invitation %s as %q (%s, quota %s)", who, req.ID, sanitize(req.Name), res.Mode, FormatQuota(res.Quota))
	} else {
		s.cfg.Logf("peer server: %s: join with invitation %s refused: %s", who, req.ID, res.Message)
	}
	res.Message = sanitize(res.Message)
	_ = writeFrame(conn, res.encode()) // the connection closes next either way
}

// join checks an invitation and, if it holds, adds id to the peers file
// and serves it from now on.
func (s *Server) join(id crypt.PeerID, req joinRequest) joinResult {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	now := s.cfg.Now()
	refuse := func(st joinStatus, format string, args ...any) joinResult {
		if st != joinAlready && st != joinInternal {
			s.joins.failures++
		}
		return joinResult{Status: st, Message: fmt.Sprintf(format, args...)}
	}
	if s.joins.blocked(now) {
		return refuse(joinTooMany, "too many failed joins on this server in the last minute; try again later")
	}
	rec, path, err := readInvite(InviteDir(s.cfg.Root), req.ID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return refuse(joinUnknown, "no invitation %s on this server: check the code, or ask for a new one", req.ID)
	case err != nil:
		s.cfg.Logf("peer server: join: %v", err)
		return refuse(joinInternal, "%s", internalMessage)
	case rec.UsedBy != "":
		return refuse(joinUsed, "invitation %s was used already (at %s); ask for a new one", req.ID, rec.UsedAt.Format(time.RFC3339))
	case rec.Revoked != "":
		return refuse(joinRevoked, "invitation %s was revoked (%s); ask for a new one", req.ID, rec.Revoked)
	case !now.Before(rec.Expires):
		return refuse(joinExpired, "invitation %s expired at %s; ask for a new one", req.ID, rec.Expires.Format(time.RFC3339))
	}
	if subtle.ConstantTimeCompare([]byte(secretHash(req.Secret)), []byte(rec.SecretSHA256)) != 1 {
		rec.Attempts++
		left := maxInviteAttempts - rec.Attempts
		if left <= 0 {
			rec.Revoked = "too many wrong codes"
		}
		if err := writeInvite(path, rec, false); err != nil {
			s.cfg.Logf("peer server: join: %v", err)
			return refuse(joinInternal, "%s", internalMessage)
		}
		if left <= 0 {
			return refuse(joinRevoked, "wrong code; invitation %s is now revoked after %d wrong codes", req.ID, maxInviteAttempts)
		}
		return refuse(joinWrong, "wrong code for invitation %s (%d more tries before it is revoked)", req.ID, left)
	}
	if _, ok := s.friend(id); ok {
		return refuse(joinAlready, "this device (%s) is already allowed on this server; the invitation was not used", id.Short())
	}
	f, err := rec.grant(id, req.Name)
	if err == nil {
		err = addFriend(s.cfg.PeersFile, f)
	}
	if errors.Is(err, errAlreadyFriend) {
		return refuse(joinAlready, "this device (%s) is already in the server's peers file; the invitation was not used", id.Short())
	}
	if err != nil {
		s.cfg.Logf("peer server: join: %v", err)
		return refuse(joinInternal, "%s", internalMessage)
	}
	rec.UsedBy, rec.UsedAt = id.String(), now.UTC().Truncate(time.Second)
	if err := writeInvite(path, rec, false); err != nil {
		// The friend is in; the invitation stays open, but a second
		// use is refused as "already a friend" for this device only.
		s.cfg.Logf("peer server: join: mark invitation %s used: %v", req.ID, err)
	}
	if err := s.reload("join"); err != nil {
		return refuse(joinInternal, "%s", internalMessage)
	}
	p, _ := s.friend(id)
	return joinResult{Status: joinOK, Mode: p.mode, Quota: p.quota}
}

// ErrJoin: the server refused a join; the message says why.
var ErrJoin = errors.New("join refused")

// Joined is what a device was granted by joining.
type Joined struct {
	Mode  Mode
	Quota int64 // 0: none
}

// Join pairs the device id with the server of inv: it dials inv.Addr,
// pins inv.Server, sends the invitation's ID and secret (inside TLS 1.3,
// to the server the code pins, so nobody else ever sees the secret) with
// name as the device's label, and returns what the server granted.
func (d Dialer) Join(ctx context.Context, inv Invite, id *crypt.Identity, name string) (Joined, error) {
	if len(name) > maxFriendName || !printable(name) {
		return Joined{}, fmt.Errorf("join: the label must be at most %d printable characters", maxFriendName)
	}
	conf, err := newTLSConfig(id, func(got crypt.PeerID) error {
		if got != inv.Server {
			return fmt.Errorf("%w: the server at %s presented peer ID %s, the invitation pins %s", ErrPeerMismatch, inv.Addr, got, inv.Server)
		}
		return nil
	})
	if err != nil {
		return Joined{}, err
	}
	conf.NextProtos = []string{joinALPN}
	timeout := d.connectTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", inv.Addr)
	if err != nil {
		return Joined{}, fmt.Errorf("join %s: %w", inv.Addr, err)
	}
	defer raw.Close() // one exchange, then done
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline) // fails only on a closed conn, which the handshake reports
	tc := tls.Client(raw, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return Joined{}, joinError(inv, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != joinALPN {
		return Joined{}, fmt.Errorf("join %s: %w: server negotiated protocol %q, want %q", inv.Addr, ErrProtocol, p, joinALPN)
	}
	if err := writeFrame(tc, joinRequest{ID: inv.ID, Secret: inv.Secret, Name: name}.encode()); err != nil {
		return Joined{}, joinError(inv, err)
	}
	p, err := readFrame(tc, maxJoinFrame)
	if err != nil {
		return Joined{}, joinError(inv, err)
	}
	res, err := decodeJoinResult(p)
	if err != nil {
		return Joined{}, fmt.Errorf("join %s: %w", inv.Addr, err)
	}
	if res.Status != joinOK {
		return Joined{}, fmt.Errorf("%w by %s (%s): %s", ErrJoin, inv.Addr, res.Status, res.Message)
	}
	return Joined{Mode: res.Mode, Quota: res.Quota}, nil
}

// joinError explains a failed handshake or exchange of a join.
func joinError(inv Invite, err error) error {
	if errors.Is(err, ErrPeerMismatch) {
		return fmt.Errorf("join: %w", err)
	}
	// A server without pairing (an older cairn, or one run without a
	// peers file) has no protocol in common with the join: TLS says so.
	if strings.Contains(err.Error(), "no application protocol") {
		return fmt.Errorf("join %s: %w: it does not speak %s (update cairn there, and run 'peer serve' with pairing on)",
			inv.Addr, ErrServerTooOld, joinALPN)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("join %s: %w: no answer in time", inv.Addr, ErrNoAnswer)
	}
	return fmt.Errorf("join %s: %w", inv.Addr, backend.Permanent(err))
}
