#!/usr/bin/env bash
# make demo: a short tour of cairn on a throw-away local repository.
# Makes a sample folder (text files, a subfolder, a symlink, a hardlink, a
# larger random file), backs it up, lists snapshots, backs it up again to
# show deduplication, restores it into another folder and compares content
# and metadata. Exits non-zero on any mismatch.
# Usage: scripts/demo.sh path/to/cairn
set -euo pipefail

bin="${1:-bin/cairn}"
if [ ! -x "$bin" ]; then
	echo "demo: $bin is not an executable (run make build)" >&2
	exit 1
fi
cairn="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Everything cairn needs comes from the environment, as in a cron job.
unset CAIRN_PASSWORD CAIRN_PASSWORD_COMMAND
export CAIRN_REPOSITORY="$work/repo"
export CAIRN_PASSWORD_FILE="$work/password"
export CAIRN_CACHE_DIR="$work/cache"
export CAIRN_CONFIG_DIR="$work/config"
head -c 24 /dev/urandom | base64 >"$CAIRN_PASSWORD_FILE"
chmod 600 "$CAIRN_PASSWORD_FILE"

step() { printf '\n==> %s\n' "$*"; }
run() {
	printf '$ cairn %s\n' "$*"
	"$cairn" "$@"
}

sample="$work/sample"
step "making a sample folder in $sample"
mkdir -p "$sample/docs/notes"
printf 'cairn demo\n' >"$sample/README.txt"
printf 'first note\n' >"$sample/docs/notes/one.txt"
printf 'second note\n' >"$sample/docs/notes/two.txt"
seq 1 20000 >"$sample/docs/numbers.txt"
printf '#!/bin/sh\necho hello\n' >"$sample/hello.sh"
chmod 755 "$sample/hello.sh"
ln -s docs/notes/one.txt "$sample/link-to-one"
ln "$sample/docs/notes/two.txt" "$sample/hardlink-to-two"
head -c $((6 * 1024 * 1024)) /dev/urandom >"$sample/random.bin"
touch -d '2020-02-02 20:20:20.123456789' "$sample/docs/notes/one.txt"
(cd "$sample" && find . | sort | sed 's/^/   /')

step "creating a repository"
run init

step "first backup"
run backup "$sample"

step "listing snapshots"
run snapshots

step "second backup of the unchanged folder: nothing new is stored"
run backup "$sample"

step "a copy of the folder under another path deduplicates too"
cp -a "$sample" "$work/copy"
run backup "$work/copy"

step "the repository"
run stats

restored="$work/restored"
step "restoring the latest snapshot of the sample into $restored"
run restore "latest:$sample" --path "$sample" --target "$restored" --verify

step "comparing content (diff -r)"
diff -r --no-dereference "$sample" "$restored"
echo "   content identical"

step "comparing metadata (type, mode, size, mtime, link target, link count)"
meta() {
	(cd "$1" && {
		find . -mindepth 1 ! -type d -printf '%P %y %m %s %T@ %l %n\n'
		find . -mindepth 1 -type d -printf '%P %y %m %T@\n'
	} | sort)
}
if ! diff <(meta "$sample") <(meta "$restored"); then
	echo "demo: metadata differs after restore" >&2
	exit 1
fi
echo "   metadata identical"

step "demo passed: backed up, deduplicated, restored and verified"
