// Package local stores a repository in a folder of the local file system.
//
// # Layout
//
//	config            the repository config
//	keys/<id>         key files
//	data/<xx>/<id>    packs, in 256 subfolders named by the first two hex
//	                  digits of the ID, so no folder grows past a few
//	                  thousand entries even in a large repository
//	index/<id>        index files
//	log/<id>          snapshot log entries
//	locks/<id>        lock files
//
// # Writes
//
// Put writes the content to a temporary file in the destination folder
// whose name starts with ".tmp-" (never a valid file name, so List and Get
// cannot mistake it for a stored file), flushes it to stable storage with
// fsync, closes it, renames it over the final name and then fsyncs the
// folder so the rename itself survives a power cut. A failure at any step
// removes the temporary file. A writer killed mid-way leaves at most a
// stale ".tmp-" file behind, never a partial file under a real name;
// RemoveStaleTemp (backend.TempCleaner) removes such files once they are
// old enough.
//
// Stored files are made read-only (mode 0400) and folders are 0700: the
// repository is private to its owner, and a read-only file guards against
// a stray editor or shell redirect changing a file that must be immutable.
// On Unix, deleting a file needs write permission on its folder, not on the
// file, so prune can still delete. Where the file system ignores or refuses
// permission changes (FAT or exFAT on a USB disk), the files simply stay
// writable.
package local
