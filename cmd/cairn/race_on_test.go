//go:build race

package main

// raceBuild is true when the tests run under -race.
const raceBuild = true
