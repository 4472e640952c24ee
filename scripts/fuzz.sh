#!/usr/bin/env bash
# Runs every Fuzz target of the module for the given time each
# (go test -fuzz takes one target per run).
# Usage: scripts/fuzz.sh 4s
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime="${1:-10s}"
count=0
while read -r pkg dir; do
	for target in $(grep -ho '^func Fuzz[[:alnum:]_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $target ($fuzztime)"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg"
		count=$((count + 1))
	done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)
echo "fuzzed $count targets for $fuzztime each"
