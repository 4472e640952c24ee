// Package policy decides which snapshots `cairn forget` keeps: pure
// functions of (snapshots, policy, now), with the semantics of restic's
// `forget --keep-*` options.
//
// [PlanForget] is forget's whole decision: the snapshots named, or those a
// policy does not keep group by group, with the reasons, as a
// [ForgetPlan]; executing it is one forget entry in the log
// (snapshot.Log.Forget of [ForgetPlan.Remove]).
//
// # Grouping
//
// The command first splits the snapshots into groups with [Group] (by
// default by host and paths; see [ParseGroupBy]) and applies the policy to
// each group on its own, so one host's backups never push another's out.
//
// # Rules
//
// [Apply] walks a group newest first (ties broken by ID, newest ID first)
// and keeps a snapshot when any rule wants it; the rules are ORed, so one
// snapshot may be kept for several reasons, and every kept snapshot comes
// with a [Reason] listing them.
//
//   - Last n: the n newest snapshots.
//   - Hourly, Daily, Weekly, Monthly, Yearly n: walking newest first, each
//     calendar period (hour, day, ISO week from Monday, month, year) that has
//     snapshots gives up its newest one, until n periods have been used.
//     Periods without snapshots do not count.
//   - A count of -1 ([Unlimited], restic's "unlimited") never runs out; 0
//     turns the rule off.
//   - Oldest: when a count rule finds fewer periods than its count (or is
//     unlimited), the oldest snapshot of the group is kept too, with the
//     reason "oldest daily snapshot" and so on if it is not the newest of
//     its period; a young repository thus keeps as much history as the
//     policy allows (restic 0.16 and later).
//   - Within d: every snapshot newer than d before the latest snapshot.
//     "Latest" is the newest snapshot that is not in the future relative to
//     now; it is NOT now itself, so a host that stopped backing up does not
//     lose its last backups to a time-based rule. Snapshots in the future
//     are always within, so time-based rules never remove them. d is
//     subtracted in calendar terms: years, months and days with
//     [time.Time.AddDate] in the latest snapshot's zone, then hours. The
//     comparison is strict: a snapshot exactly d older than the latest is
//     not within.
//   - WithinHourly ... WithinYearly d: like the count rules without a
//     count, among the snapshots within d; the oldest snapshot is kept too
//     if it is within d.
//   - Tags: every snapshot carrying all tags of at least one entry. An entry
//     whose tags are all empty (restic's --keep-tag with an empty value)
//     matches the snapshots that have no tags at all; empty tags inside a
//     non-empty entry are ignored. restic's forget fails when a policy of
//     tags alone would remove a whole group; the command sees that as an
//     empty keep list.
//
// An empty policy ([Policy.Empty]) keeps every snapshot: restic refuses to
// forget by an empty policy, and the command must refuse too, but a policy
// that names nothing must never remove everything by accident.
//
// # Time zones
//
// Calendar periods are taken in the snapshot time's own [time.Location]:
// for snapshots decoded from the log that is the UTC offset recorded when
// the backup ran, as in restic. Two snapshots of one group made under
// different offsets are each put in the period of their own wall clock. A
// local hour that occurs twice (the end of daylight saving time) is one
// hourly period. Under mixed offsets a period's snapshots need not be
// adjacent in time; each period still gives up only its newest snapshot
// (restic compares with the previously kept period only, and there may
// keep two snapshots of one period).
package policy
