#!/usr/bin/env bash
# Runs cairn, restic and borg side by side on the same trees and writes the
# results into docs/performance.md (between its bench markers) and a raw
# CSV (docs/performance.csv). `make bench` runs it.
#
# Settings (environment):
#   SCALE=1        size of the generated trees: the mixed tree is 1.6 GB x
#                  SCALE, the small-file tree 100,000 x SCALE files; the copy
#                  of GOROOT is always whole. SCALE=0.1 makes a quick run.
#   RUNS=3         rounds; each figure is the median over the rounds.
#   TREES="mixed go small"   which trees.
#   TOOLS="cairn restic borg"
#   BENCH_DIR=/tmp/cairn-bench   data, repositories, logs (data is kept
#                  between invocations and reused when SCALE matches).
#   BENCH_GO=1     also run the Go stage and pipeline benchmarks.
#   BENCH_MIRROR=1 also time `cairn mirror` of the mixed tree's repository
#                  to a `cairn peer serve` on 127.0.0.1 against `rsync -a` of
#                  the same folder over ssh to 127.0.0.1 (a private sshd on
#                  SSH_PORT, default 22222), full and with nothing new.
#   BENCH_DOC, BENCH_CSV   where the report goes.
#
# Method: each round visits the trees in turn, and for each tree every tool
# in a rotating order (round 1: cairn restic borg, round 2: restic borg
# cairn, ...), so slow drifts of the shared machine's load fall on all
# tools alike. For one tool and tree the phases run back to back, each
# timed by GNU time (wall, user+sys CPU, peak RSS), after a sync, with a
# fresh repository and cache: init, initial backup, unchanged backup,
# snapshots (the fixed cost of a trivial command), restore into an empty folder, check with
# full data verification. The page cache is warm (the trees are read once
# before the first round). The first round compares every restored tree
# with its source (diff -r) outside the timing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCALE=${SCALE:-1}
RUNS=${RUNS:-3}
TREES=${TREES:-"mixed go small"}
TOOLS=${TOOLS:-"cairn restic borg"}
WORK=${BENCH_DIR:-/tmp/cairn-bench}
BENCH_GO=${BENCH_GO:-1}
BENCH_MIRROR=${BENCH_MIRROR:-1}
DOC=${BENCH_DOC:-$ROOT/docs/performance.md}
CSV=${BENCH_CSV:-$ROOT/docs/performance.csv}
GO=${GO:-go}

# Borg: zstd level 3 is the algorithm and about the level of restic's
# "auto" (zstd's default level), so repository sizes compare like with
# like; borg's default lz4 would be faster and larger.
BORG_COMPRESSION=zstd,3

log() { printf 'bench: %s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------
ensure_tools() {
	local need=()
	[ -x /usr/bin/time ] || need+=(time)
	command -v restic >/dev/null || need+=(restic)
	command -v borg >/dev/null || need+=(borgbackup)
	command -v rsync >/dev/null || need+=(rsync)
	[ -x /usr/sbin/sshd ] || need+=(openssh-server)
	command -v ssh >/dev/null || need+=(openssh-client)
	if ((${#need[@]})); then
		local sudo=()
		[ "$(id -u)" -eq 0 ] || sudo=(sudo)
		log "installing ${need[*]}"
		"${sudo[@]}" apt-get update -q
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${need[@]}"
	fi
}

# --- data ----------------------------------------------------------------
tree_dir() {
	case $1 in
	mixed | small) echo "$WORK/data/$1-$SCALE" ;;
	go) echo "$WORK/data/go" ;;
	*)
		log "unknown tree $1"
		exit 2
		;;
	esac
}

make_tree() {
	local name=$1 dir
	dir=$(tree_dir "$name")
	[ -d "$dir" ] && return 0
	local tmp="$dir.partial"
	rm -rf "$tmp"
	mkdir -p "$(dirname "$dir")"
	case $name in
	mixed | small) "$WORK/bin/gen" -kind "$name" -scale "$SCALE" -dir "$tmp" >&2 ;;
	go) cp -a "$("$GO" env GOROOT)" "$tmp" ;;
	esac
	mv "$tmp" "$dir"
}

tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}'; }
tree_files() { find "$1" -type f | wc -l; }

# --- measuring -------------------------------------------------------------
# measure PHASE DATA_BYTES CMD...: runs CMD under GNU time and appends a CSV
# row. A failing command is logged and recorded with its exit status.
measure() {
	local phase=$1 bytes=$2
	shift 2
	local tf="$WORK/time.out" rc=0
	local lf="$WORK/log/$RUN-$TREE-$TOOL-$phase.log"
	# Write back what earlier phases left dirty (a restored tree is
	# 25,000 files), so that its writeback is not timed as this phase.
	sync
	/usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
	local wall user sys rss
	read -r wall user sys rss < <(tail -n 1 "$tf")
	echo "$RUN,$TREE,$TOOL,$phase,$wall,$user,$sys,$rss,$bytes,,$rc" >>"$CSV.tmp"
	if [ "$rc" -ne 0 ]; then
		log "$TOOL $phase on $TREE (round $RUN) exited $rc; see $lf"
	fi
}

record_size() {
	local bytes
	bytes=$(du -sb "$1" | cut -f1)
	echo "$RUN,$TREE,$TOOL,repo-size,,,,,$DATA_BYTES,$bytes,0" >>"$CSV.tmp"
}

record_kdf() {
	echo "$RUN,$TREE,$TOOL,kdf,$1,,,,,,0" >>"$CSV.tmp"
}

# verify SRC RESTORED: compares the trees (first round only).
verify() {
	[ "$RUN" -eq 1 ] || return 0
	if ! diff -r -q "$1" "$2" >"$WORK/log/$RUN-$TREE-$TOOL-verify.log" 2>&1; then
		log "$TOOL restored $TREE differently from the source: $WORK/log/$RUN-$TREE-$TOOL-verify.log"
		echo "$RUN,$TREE,$TOOL,verify,,,,,,,1" >>"$CSV.tmp"
	fi
}

# --- one tool on one tree ----------------------------------------------------
run_cairn() {
	local repo=$1 cache=$2 target=$3
	export CAIRN_REPOSITORY=$repo CAIRN_PASSWORD_FILE=$PWFILE CAIRN_CACHE_DIR=$cache CAIRN_CONFIG_DIR=$WORK/cairn-config
	measure init 0 "$WORK/bin/cairn" init
	measure backup "$DATA_BYTES" "$WORK/bin/cairn" backup -q "$SRC"
	measure backup-unchanged "$DATA_BYTES" "$WORK/bin/cairn" backup -q "$SRC"
	record_size "$repo"
	measure snapshots 0 "$WORK/bin/cairn" snapshots
	measure restore "$DATA_BYTES" "$WORK/bin/cairn" restore latest --target "$target"
	verify "$SRC" "$target$SRC"
	measure check-read-data "$DATA_BYTES" "$WORK/bin/cairn" check --read-data
	[ "$RUN" -eq 1 ] && record_kdf "$("$WORK/bin/kdftime" cairn 2>/dev/null)"
	unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_CACHE_DIR CAIRN_CONFIG_DIR
}

run_restic() {
	local repo=$1 cache=$2 target=$3
	export RESTIC_REPOSITORY=$repo RESTIC_PASSWORD_FILE=$PWFILE RESTIC_CACHE_DIR=$cache
	measure init 0 restic init
	measure backup "$DATA_BYTES" restic backup -q --compression auto "$SRC"
	measure backup-unchanged "$DATA_BYTES" restic backup -q --compression auto "$SRC"
	record_size "$repo"
	measure snapshots 0 restic snapshots
	measure restore "$DATA_BYTES" restic restore latest --target "$target"
	verify "$SRC" "$target$SRC"
	measure check-read-data "$DATA_BYTES" restic check --read-data
	if [ "$RUN" -eq 1 ]; then
		# restic calibrates scrypt at init; its key file names N, r and p.
		local key n r p
		key=$(find "$repo/keys" -type f | head -n 1)
		n=$(grep -o '"N":[0-9]*' "$key" | cut -d: -f2)
		r=$(grep -o '"r":[0-9]*' "$key" | cut -d: -f2)
		p=$(grep -o '"p":[0-9]*' "$key" | cut -d: -f2)
		record_kdf "$("$WORK/bin/kdftime" scrypt "$n" "$r" "$p")"
	fi
	unset RESTIC_REPOSITORY RESTIC_PASSWORD_FILE RESTIC_CACHE_DIR
}

run_borg() {
	local repo=$1 cache=$2 target=$3
	export BORG_REPO=$repo BORG_PASSCOMMAND="cat $PWFILE" BORG_BASE_DIR=$cache BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
	measure init 0 borg init --encryption=repokey
	measure backup "$DATA_BYTES" borg create --compression "$BORG_COMPRESSION" ::b1 "$SRC"
	measure backup-unchanged "$DATA_BYTES" borg create --compression "$BORG_COMPRESSION" ::b2 "$SRC"
	record_size "$repo"
	measure snapshots 0 borg list
	mkdir -p "$target"
	(cd "$target" && measure restore "$DATA_BYTES" borg extract ::b2)
	verify "$SRC" "$target$SRC"
	measure check-read-data "$DATA_BYTES" borg check --verify-data
	# borg 1.2 derives the repokey key-encryption key with PBKDF2-SHA256,
	# 100,000 iterations.
	[ "$RUN" -eq 1 ] && record_kdf "$("$WORK/bin/kdftime" pbkdf2 100000)"
	unset BORG_REPO BORG_PASSCOMMAND BORG_BASE_DIR BORG_RELOCATED_REPO_ACCESS_IS_OK
}

# --- mirror: cairn mirror to cairn peer serve vs rsync -a over ssh --------------
MIRROR_PORT=${MIRROR_PORT:-27484}
SSH_PORT=${SSH_PORT:-22222}

# setup_mirror makes the source repository (cairn's backup of the mixed
# tree, not timed), the peer identities, a `cairn peer serve` and a private
# sshd, both on 127.0.0.1.
setup_mirror() {
	local m=$WORK/mirror
	mkdir -p "$m/ssh" "$m/peer-root" "$m/rsync-dst"
	MIRROR_SRC=$m/src-repo
	if [ ! -f "$MIRROR_SRC/config" ]; then
		rm -rf "$MIRROR_SRC" "$m/src-cache"
		CAIRN_PASSWORD_FILE=$PWFILE CAIRN_CONFIG_DIR=$WORK/cairn-config CAIRN_CACHE_DIR=$m/src-cache \
			"$WORK/bin/cairn" -r "$MIRROR_SRC" init >/dev/null
		CAIRN_PASSWORD_FILE=$PWFILE CAIRN_CONFIG_DIR=$WORK/cairn-config CAIRN_CACHE_DIR=$m/src-cache \
			"$WORK/bin/cairn" -r "$MIRROR_SRC" backup -q "$(tree_dir mixed)"
	fi
	MIRROR_BYTES=$(du -sb "$MIRROR_SRC" | cut -f1)
	MIRROR_PACKS=$(find "$MIRROR_SRC/data" -type f | wc -l)
	# The same repository with 10,000 more (tiny) packs, for a mirror with
	# nothing new at that size; mirrored once here, untimed.
	MIRROR_MANY=$m/src-many
	if [ ! -d "$MIRROR_MANY" ]; then
		cp -a "$MIRROR_SRC" "$MIRROR_MANY.partial"
		"$WORK/bin/gen" -kind packs -count 10000 -dir "$MIRROR_MANY.partial"
		mv "$MIRROR_MANY.partial" "$MIRROR_MANY"
	fi
	MIRROR_MANY_PACKS=$(find "$MIRROR_MANY/data" -type f | wc -l)
	SERVER_ID=$("$WORK/bin/cairn" --config-dir "$m/server-cfg" peer id)
	CLIENT_ID=$("$WORK/bin/cairn" --config-dir "$m/client-cfg" peer id)
	"$WORK/bin/cairn" --config-dir "$m/server-cfg" peer serve --listen "127.0.0.1:$MIRROR_PORT" \
		--root "$m/peer-root" --allow "$CLIENT_ID:read-write" >"$WORK/log/peer-serve.log" 2>&1 &
	PEER_PID=$!

	[ -f "$m/ssh/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$m/ssh/host_key"
	[ -f "$m/ssh/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$m/ssh/client_key"
	cp "$m/ssh/client_key.pub" "$m/ssh/authorized_keys"
	cat >"$m/ssh/sshd_config" <<-EOF
		Port $SSH_PORT
		ListenAddress 127.0.0.1
		HostKey $m/ssh/host_key
		AuthorizedKeysFile $m/ssh/authorized_keys
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin prohibit-password
		StrictModes no
		UsePAM no
		PidFile $m/ssh/sshd.pid
	EOF
	mkdir -p /run/sshd
	/usr/sbin/sshd -f "$m/ssh/sshd_config" -E "$WORK/log/sshd.log"
	RSYNC_SSH="ssh -p $SSH_PORT -i $m/ssh/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
	sleep 1
	MANY_DEST="peer://$SERVER_ID@127.0.0.1:$MIRROR_PORT/many"
	"$WORK/bin/cairn" --config-dir "$m/client-cfg" -r "$MIRROR_MANY" mirror "$MANY_DEST" >"$WORK/log/mirror-many-setup.log" 2>&1 ||
		log "mirror of the 10,000-pack repository failed; see $WORK/log/mirror-many-setup.log"
	echo "mirror=$MIRROR_BYTES bytes in $MIRROR_PACKS packs" >>"$WORK/meta.txt"
	echo "mirror_many=$MIRROR_MANY_PACKS" >>"$WORK/meta.txt"
}

teardown_mirror() {
	[ -n "${PEER_PID:-}" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null
	[ -f "$WORK/mirror/ssh/sshd.pid" ] && kill "$(cat "$WORK/mirror/ssh/sshd.pid")" 2>/dev/null
	rm -rf "$WORK/mirror/peer-root" "$WORK/mirror/rsync-dst"
	PEER_PID=
	return 0
}

run_mirror_cairn() {
	local dest="peer://$SERVER_ID@127.0.0.1:$MIRROR_PORT/round$RUN"
	measure mirror-full "$MIRROR_BYTES" "$WORK/bin/cairn" --config-dir "$WORK/mirror/client-cfg" -r "$MIRROR_SRC" mirror "$dest"
	measure mirror-unchanged "$MIRROR_BYTES" "$WORK/bin/cairn" --config-dir "$WORK/mirror/client-cfg" -r "$MIRROR_SRC" mirror "$dest"
	measure mirror-unchanged-many 0 "$WORK/bin/cairn" --config-dir "$WORK/mirror/client-cfg" -r "$MIRROR_MANY" mirror "$MANY_DEST"
}

run_mirror_rsync() {
	local dest="root@127.0.0.1:$WORK/mirror/rsync-dst/round$RUN/"
	measure mirror-full "$MIRROR_BYTES" rsync -a -e "$RSYNC_SSH" "$MIRROR_SRC/" "$dest"
	measure mirror-unchanged "$MIRROR_BYTES" rsync -a -e "$RSYNC_SSH" "$MIRROR_SRC/" "$dest"
}

# rotate N WORDS...: the words starting at the N-th (mod count), wrapped.
rotate() {
	local n=$1
	shift
	local words=("$@") out=() i
	for ((i = 0; i < ${#words[@]}; i++)); do
		out+=("${words[$(((n + i) % ${#words[@]}))]}")
	done
	echo "${out[@]}"
}

# keep_runs: a finished run's repository and restored tree are kept
# until the end of the benchmark instead of being deleted between runs.
# On ext4 without a journal (this kind of machine) the inode allocator
# skips inodes freed in the last minutes (see wait_for_forgotten_inodes),
# and a restore of the
# GOROOT copy right after deleting another one spent about 5 s of kernel
# time scanning past them, for restic and cairn alike: deleting between
# runs measured the filesystem, not the tools. Only when free space runs
# low (under 10 GiB) are the kept runs deleted early, and the log says so.
keep_runs() {
	local avail
	avail=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
	if [ "$avail" -lt $((10 << 20)) ]; then
		log "free space under 10 GiB: deleting the finished runs now (the next restore may pay for it)"
		rm -rf "$WORK/run"
		mkdir -p "$WORK/run"
	fi
}

# wait_for_forgotten_inodes: the rounds start at least FORGET_S seconds
# after the last deletion of kept runs (at the end of the previous
# benchmark, or at the start of this one). ext4 without a journal skips
# a freed inode for 60 s, or 360 s while its inode table block is dirty,
# and allocating new inodes in the same blocks keeps them dirty: in a
# benchmark started a minute after the last one deleted its runs, the
# first two rounds' restores spent 2 s of kernel time on 25,000 files,
# the third 0.6 s.
FORGET_S=${FORGET_S:-390}
wait_for_forgotten_inodes() {
	[ -f "$WORK/deleted-at" ] || return 0
	local left
	left=$(($(cat "$WORK/deleted-at") + FORGET_S - $(date +%s)))
	if [ "$left" -gt 0 ]; then
		log "waiting $left s for the file system to forget the runs deleted last"
		sleep "$left"
	fi
}

# --- main ----------------------------------------------------------------
main() {
	ensure_tools
	mkdir -p "$WORK/bin" "$WORK/log" "$WORK/data" "$WORK/cairn-config"
	rm -f "$WORK"/log/*
	# Runs an interrupted benchmark kept (see keep_runs) are deleted now;
	# the rounds wait for the file system to forget them.
	if [ -e "$WORK/run" ]; then
		rm -rf "$WORK/run"
		sync
		date +%s >"$WORK/deleted-at"
	fi
	log "building cairn and helpers"
	(cd "$ROOT" && "$GO" build -o "$WORK/bin/cairn" ./cmd/cairn &&
		"$GO" build -o "$WORK/bin/gen" ./scripts/bench/gen &&
		"$GO" build -o "$WORK/bin/kdftime" ./scripts/bench/kdftime &&
		"$GO" build -o "$WORK/bin/report" ./scripts/bench/report)
	PWFILE=$WORK/password
	echo "benchmark password $(date +%s%N)" >"$PWFILE"
	chmod 600 "$PWFILE"

	local meta="$WORK/meta.txt"
	{
		echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
		echo "nproc=$(nproc)"
		echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
		echo "kernel=$(uname -r)"
		echo "memory=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
		echo "scale=$SCALE"
		echo "runs=$RUNS"
		echo "cairn=$("$WORK/bin/cairn" version 2>/dev/null | head -n 1)"
		echo "restic=$(restic version | head -n 1)"
		echo "borg=$(borg --version)"
		echo "go=$("$GO" version)"
		echo "borg_compression=$BORG_COMPRESSION"
		echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	} >"$meta"

	log "generating data (SCALE=$SCALE)"
	local t
	for t in $TREES; do make_tree "$t"; done
	for t in $TREES; do
		local d
		d=$(tree_dir "$t")
		echo "tree_$t=$(tree_bytes "$d") $(tree_files "$d")" >>"$meta"
		# Warm the page cache.
		find "$d" -type f -print0 | xargs -0 cat >/dev/null
	done

	echo "round,tree,tool,phase,wall_s,user_s,sys_s,maxrss_kib,data_bytes,repo_bytes,exit" >"$CSV.tmp"
	local mirror=0
	if [ "$BENCH_MIRROR" = 1 ] && "$WORK/bin/cairn" mirror --help >/dev/null 2>&1 &&
		"$WORK/bin/cairn" peer serve --help >/dev/null 2>&1; then
		log "setting up the mirror benchmark"
		make_tree mixed
		setup_mirror
		trap teardown_mirror EXIT
		mirror=1
	fi
	wait_for_forgotten_inodes
	local run tool
	for ((run = 1; run <= RUNS; run++)); do
		RUN=$run
		for t in $TREES; do
			TREE=$t
			SRC=$(tree_dir "$t")
			DATA_BYTES=$(tree_bytes "$SRC")
			# shellcheck disable=SC2086 # word lists on purpose
			for tool in $(rotate $((run - 1)) $TOOLS); do
				TOOL=$tool
				log "round $run/$RUNS: $tool on $t"
				local base="$WORK/run/$run-$t-$tool"
				rm -rf "$base"
				mkdir -p "$base"
				"run_$tool" "$base/repo" "$base/cache" "$base/restore"
				keep_runs
			done
		done
		if [ "$mirror" = 1 ]; then
			TREE=mirror
			for tool in $(rotate $((run - 1)) cairn rsync); do
				TOOL=$tool
				log "round $run/$RUNS: mirror with $tool"
				"run_mirror_$tool"
			done
		fi
	done
	[ "$mirror" = 1 ] && teardown_mirror
	rm -rf "$WORK/run"
	sync
	date +%s >"$WORK/deleted-at"
	echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$meta"

	local gobench="$WORK/gobench.txt"
	: >"$gobench"
	if [ "$BENCH_GO" = 1 ]; then
		log "Go benchmarks"
		(cd "$ROOT" && "$GO" test -tags cairn_testonly -run '^$' -bench 'Stage|PipelineInMemory' -benchtime 2s ./repo/ &&
			"$GO" test -tags cairn_testonly -run '^$' -bench 'Index10M' -benchtime 1x ./repo/index/) >"$gobench" 2>&1 ||
			log "Go benchmarks failed; see $gobench"
	fi

	mv "$CSV.tmp" "$CSV"
	"$WORK/bin/report" -csv "$CSV" -meta "$meta" -gobench "$gobench" -doc "$DOC"
	log "wrote $DOC and $CSV"
}

main "$@"
