// Package jobconf reads cairn's configuration file (cairn.toml): named
// job profiles for "cairn run" and the [serve] section for "cairn peer
// serve".
//
// The file is TOML. Decoding is strict: a key the file may not hold is
// an error naming its line, so a typo never silently drops a setting.
// A profile may inherit another ("inherit = NAME"); Resolve follows the
// chain, refuses cycles, and merges: a key the child sets wins, a table
// (env, hooks) is merged key by key. Validate checks a resolved profile
// without touching the repository. The package knows nothing of the
// command line: cmd/cairn turns a Profile into the flags of each step.
package jobconf
