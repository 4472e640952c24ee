package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/snapshot"
)

func (e *appEnv) deviceCommand() *cli.Command {
	return &cli.Command{
		Name:  "device",
		Usage: "list and revoke the devices that write to the snapshot log",
		Description: "Every device signs the log entries it writes with its identity (its peer\n" +
			"ID is the one \"cairn peer id\" shows). A device registers itself in the\n" +
			"log the first time it writes.",
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list the devices the log knows", ArgsUsage: " ",
				Description: "Lists each device the snapshot log knows: its peer ID, the host name of\n" +
					"its newest snapshot, when it last wrote (its newest valid log entry),\n" +
					"how many valid entries it has, and whether it was revoked. This device\n" +
					"is marked \"*\".",
				Action: e.runDeviceList,
			},
			{
				Name: "revoke", Usage: "revoke a device (a stolen laptop)", ArgsUsage: "PEERID",
				Description: "Writes a log entry, signed by this device, revoking the device whose peer\n" +
					"ID starts with PEERID (dashes and case do not matter; a unique prefix).\n" +
					"From then on every entry that device signs is rejected, except the ones\n" +
					"this device had already seen when it revoked it: entries made after the\n" +
					"revocation, or forged on a branch and backdated, are left out of the log\n" +
					"and reported by every command, and by check as damage (exit 1); mirror\n" +
					"--prune names them (a plain mirror copies without the password and cannot\n" +
					"tell). A revoked device cannot register again, and cairn refuses to write\n" +
					"with it. A device cannot revoke itself.\n\n" +
					"Revocation stops the identity, not the password: whoever holds the\n" +
					"password can still read, and can write under a new identity. After a\n" +
					"theft also change the password and rotate the key (cairn key passwd,\n" +
					"cairn key rotate --revoke-old-passwords), and remove the device's peer ID\n" +
					"from your friends' --allow lists.",
				Action: e.runDeviceRevoke,
			},
		},
	}
}

type deviceJSON struct {
	PeerID   string `json:"peer_id"`
	Current  bool   `json:"current"`
	Hostname string `json:"hostname"`
	Added    string `json:"added,omitempty"`
	LastSeen string `json:"last_seen,omitempty"`
	Entries  int    `json:"entries"`
	Revoked  bool   `json:"revoked"`
	// RevokedBy says which entry revoked it.
	RevokedBy string `json:"revoked_by,omitempty"`
}

func (e *appEnv) runDeviceList(c *cli.Context) error {
	if err := wantArgs(c, 0, 0); err != nil {
		return err
	}
	return e.withRepo(c, sharedLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		var self []byte
		if ident, err := s.device.Identity(); err == nil {
			self = ident.Public()
		}
		stamp := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Local().Format("2006-01-02 15:04:05")
		}
		var out []deviceJSON
		for _, d := range l.KnownDevices() {
			out = append(out, deviceJSON{PeerID: crypt.PeerIDFromKey(d.Key).String(), Current: bytes.Equal(d.Key, self),
				Hostname: d.Hostname, Added: stamp(d.Added), LastSeen: stamp(d.LastSeen), Entries: d.Entries,
				Revoked: d.Revoked, RevokedBy: d.RevokedBy})
		}
		if s.g.JSON {
			s.p.JSON(out)
			return nil
		}
		s.p.Printf(" %-63s %-20s %-19s %7s  %s", "Peer ID", "Host", "Last activity", "Entries", "Status")
		for _, d := range out {
			mark, status, last, host := " ", "active", d.LastSeen, d.Hostname
			if d.Current {
				mark = "*"
			}
			if d.Revoked {
				status = d.RevokedBy
			}
			if last == "" {
				last = "-"
			}
			if host == "" {
				host = "-"
			}
			s.p.Printf("%s%-63s %-20s %-19s %7d  %s", mark, d.PeerID, host, last, d.Entries, status)
		}
		return nil
	})
}

func (e *appEnv) runDeviceRevoke(c *cli.Context) error {
	if err := wantArgs(c, 1, 1); err != nil {
		return err
	}
	prefix := normalizePeerPrefix(c.Args().First())
	if prefix == "" {
		return fmt.Errorf("device revoke: %q is no peer ID prefix", c.Args().First())
	}
	return e.withRepo(c, appendLock, func(ctx context.Context, s *session) error {
		l, err := loadLog(ctx, s)
		if err != nil {
			return err
		}
		var match []snapshot.DeviceInfo
		for _, d := range l.KnownDevices() {
			if strings.HasPrefix(normalizePeerPrefix(crypt.PeerIDFromKey(d.Key).String()), prefix) {
				match = append(match, d)
			}
		}
		switch len(match) {
		case 0:
			return fmt.Errorf("device revoke: no device of this repository's log has a peer ID starting with %q (see cairn device list)", c.Args().First())
		case 1:
		default:
			return fmt.Errorf("device revoke: %q matches %d devices: give more of the peer ID", c.Args().First(), len(match))
		}
		ident, err := s.device.Identity()
		if err != nil {
			return err
		}
		id, err := l.Revoke(ctx, s.repo, ident, match[0].Key, s.now())
		if err != nil {
			return err
		}
		rememberLog(s, l)
		peer := crypt.PeerIDFromKey(match[0].Key).String()
		s.p.Printf("revoked device %s (log entry %s)", peer, id.Str())
		if s.g.JSON {
			s.p.JSON(map[string]string{"message_type": "device_revoked", "peer_id": peer, "entry": id.String()})
		}
		return nil
	})
}

// normalizePeerPrefix is a peer ID or prefix without dashes, upper case;
// "" if it holds anything else.
func normalizePeerPrefix(s string) string {
	s = strings.ToUpper(strings.ReplaceAll(s, "-", ""))
	if strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		return ""
	}
	return s
}
