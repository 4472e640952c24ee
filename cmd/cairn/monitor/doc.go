// Package monitor reports the outcome of a scheduled job (`cairn run`) to
// the systems that watch it: a Prometheus textfile (WriteMetrics, read by
// node_exporter's textfile collector) and a healthchecks.io-style ping URL
// (Pinger).
//
// Neither reporter may fail the job it reports on: the caller logs their
// errors as warnings and keeps the job's own exit code. Errors name the
// ping URL's host only, never its path or query, which on healthchecks.io
// and similar services is the check's secret.
package monitor
