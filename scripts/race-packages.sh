#!/usr/bin/env bash
# Prints the import paths of the packages whose Go files (tests included:
# a package built for concurrent callers is raced by its tests) start
# goroutines or use sync primitives: the ones `make test` runs under -race.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# With the tests' build tag (see the Makefile's TESTTAGS), so that the
# fault injector's package and files are listed too.
go list -tags "${TESTTAGS:-cairn_testonly}" -f '{{.ImportPath}} {{.Dir}} {{join .GoFiles " "}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./... | while read -r pkg dir files; do
	[ -n "$files" ] || continue
	for f in $files; do
		if grep -Eq '(^|[^[:alnum:]_.])go [[:alnum:]_]|\.Go\(|sync\.|errgroup' "$dir/$f"; then
			echo "$pkg"
			break
		fi
	done
done
