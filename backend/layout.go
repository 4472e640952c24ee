package backend

// Folder layout shared by the backends that store files in a tree of
// folders (local, sftp, the peer server's store): packs are spread over
// 256 subfolders of data/ named by the first two hex digits of their name,
// so no folder grows past a few thousand entries.

// PackDir is the subfolder of data/ that holds the pack with this name.
func PackDir(name string) string {
	if len(name) < 2 {
		return ""
	}
	return name[:2]
}

// IsPackDir reports whether s names one of the 256 pack subfolders: two
// lowercase hex digits.
func IsPackDir(s string) bool {
	if len(s) != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
