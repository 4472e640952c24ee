package main

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/snapshot"
)

// nodeJSON is a node as "ls --json" and "find --json" print it, with
// restic's field names.
type nodeJSON struct {
	MessageType string    `json:"message_type"`
	StructType  string    `json:"struct_type"`
	Snapshot    string    `json:"snapshot,omitempty"` // find only
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Path        string    `json:"path"`
	UID         uint32    `json:"uid"`
	GID         uint32    `json:"gid"`
	User        string    `json:"user,omitempty"`
	Group       string    `json:"group,omitempty"`
	Size        uint64    `json:"size"`
	Mode        uint32    `json:"mode"`
	Permissions string    `json:"permissions"`
	ModTime     time.Time `json:"mtime"`
	AccessTime  time.Time `json:"atime"`
	ChangeTime  time.Time `json:"ctime"`
	Inode       uint64    `json:"inode"`
	Links       uint64    `json:"links,omitempty"`
	LinkTarget  string    `json:"linktarget,omitempty"`
}

func toNodeJSON(messageType, p string, n *snapshot.Node) nodeJSON {
	return nodeJSON{
		MessageType: messageType, StructType: "node",
		Name: n.Name, Type: string(n.Type), Path: p,
		UID: n.UID, GID: n.GID, User: n.User, Group: n.Group,
		Size: n.Size, Mode: uint32(n.Mode), Permissions: n.Mode.String(),
		ModTime: n.ModTime, AccessTime: n.AccessTime, ChangeTime: n.ChangeTime,
		Inode: n.Inode, Links: n.Links, LinkTarget: n.LinkTarget,
	}
}

// longLine formats a node as "ls --long" does: mode, owner, group, size,
// mtime, path, and a symlink's target.
func longLine(p string, n *snapshot.Node) string {
	user := n.User
	if user == "" {
		user = fmt.Sprint(n.UID)
	}
	group := n.Group
	if group == "" {
		group = fmt.Sprint(n.GID)
	}
	s := fmt.Sprintf("%-10s %-8s %-8s %12d %s %s", n.Mode.String(), user, group, n.Size, n.ModTime.Local().Format("2006-01-02 15:04:05"), p)
	if n.Type == snapshot.NodeSymlink {
		s += " -> " + n.LinkTarget
	}
	return s
}

// pathScope decides which paths of a snapshot a command looks at: those at
// or below one of its dirs (everything when dirs is empty).
type pathScope []string

func newPathScope(dirs []string) pathScope {
	var s pathScope
	for _, d := range dirs {
		s = append(s, path.Clean("/"+d))
	}
	return s
}

// isDir reports whether p is one of the scope's dirs itself (ls without
// --recursive lists what those hold directly and goes no deeper). With no
// dirs, every path is, so everything is listed.
func (s pathScope) isDir(p string) bool {
	return len(s) == 0 || slices.Contains(s, p)
}

// match reports whether p is in scope, and whether a directory at p must
// be descended into to reach something in scope.
func (s pathScope) match(p string) (in, descend bool) {
	if len(s) == 0 {
		return true, true
	}
	for _, d := range s {
		if d == "/" || p == d || strings.HasPrefix(p, d+"/") {
			return true, true
		}
		if p == "/" || strings.HasPrefix(d, p+"/") {
			descend = true
		}
	}
	return false, descend
}
