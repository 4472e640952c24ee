#!/usr/bin/env bash
# Installs what `make test` needs and a fresh machine lacks:
#   - openssh-server (the SFTP backend's tests run a real sshd on 127.0.0.1)
#   - time (GNU time: a CLI test measures a child's peak memory)
#   - fuse3 (fusermount3: the mount tests mount as a user other than root)
#   - zsh and fish (the generated completions are checked by the shells)
#   - tmux (a CLI test watches the progress line in an 80-column pane)
#   - systemd (systemd-analyze verify checks cairn schedule's units; no
#     running systemd is needed)
#   - staticcheck, at a pinned version
#   - restic 0.19.1, built from source with go install into GOPATH/bin (a
#     minute or two, once: it is kept there and in Go's caches), whose
#     --json output a CLI test compares cairn's with
# apt-get update runs once, and only when a Debian package is missing.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2
RESTIC_VERSION=v0.19.1

need=()
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
	need+=(openssh-server)
fi
if [ ! -x /usr/bin/time ]; then
	need+=(time) # GNU time: the CLI tests measure a child's peak memory with it
fi
if ! command -v fusermount3 >/dev/null 2>&1; then
	need+=(fuse3)
fi
if ! command -v zsh >/dev/null 2>&1; then
	need+=(zsh)
fi
if ! command -v fish >/dev/null 2>&1; then
	need+=(fish)
fi
if ! command -v tmux >/dev/null 2>&1; then
	need+=(tmux)
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
	need+=(systemd) # systemd-analyze verify checks the units of cairn schedule
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
if [ "${#need[@]}" -gt 0 ]; then
	echo "test-deps: installing ${need[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# udev makes /dev/fuse 0666 on a usual system (systemd's default rules),
# so that fusermount3 can open it for any user; a container without udev
# leaves it 0600, and only root could mount.
if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
	echo "test-deps: chmod 0666 /dev/fuse, as udev does"
	$sudo chmod 0666 /dev/fuse
fi

gobin="$(go env GOPATH)/bin"
want="(${STATICCHECK_VERSION#v})"
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -qF "$want"; then
	echo "test-deps: installing staticcheck $STATICCHECK_VERSION"
	GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
if ! "$gobin/restic" version 2>/dev/null | grep -qF "restic ${RESTIC_VERSION#v} "; then
	echo "test-deps: installing restic $RESTIC_VERSION (go install, a minute or two)"
	GOBIN="$gobin" go install "github.com/restic/restic/cmd/restic@$RESTIC_VERSION"
fi
