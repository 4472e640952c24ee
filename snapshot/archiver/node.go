package archiver

import (
	"bytes"
	"slices"

	"github.com/cairn-backup/cairn/snapshot"
)

// nodeEqual reports whether two nodes record the same item: every field,
// times compared as instants.
func nodeEqual(a, b *snapshot.Node) bool {
	if a.Name != b.Name || a.Type != b.Type || a.Mode != b.Mode ||
		!a.ModTime.Equal(b.ModTime) || !a.AccessTime.Equal(b.AccessTime) || !a.ChangeTime.Equal(b.ChangeTime) ||
		a.UID != b.UID || a.GID != b.GID || a.User != b.User || a.Group != b.Group ||
		a.Inode != b.Inode || a.DeviceID != b.DeviceID || a.Size != b.Size || a.Links != b.Links ||
		a.LinkTarget != b.LinkTarget || a.Device != b.Device || !slices.Equal(a.Content, b.Content) {
		return false
	}
	if (a.Subtree == nil) != (b.Subtree == nil) || a.Subtree != nil && *a.Subtree != *b.Subtree {
		return false
	}
	return slices.EqualFunc(a.ExtendedAttributes, b.ExtendedAttributes, func(x, y snapshot.ExtendedAttribute) bool {
		return x.Name == y.Name && bytes.Equal(x.Value, y.Value)
	})
}
