package crypt

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"time"
)

// OpCheckpoint is the op byte of a checkpoint entry: it holds the whole
// live state, so the entries before it may be deleted and verification
// starts from it. Chain verification is the only place crypt interprets an
// op byte.
const OpCheckpoint byte = 'c'

// MaxClockSkew is how much older than a parent an entry may be dated
// before it counts as backdated.
const MaxClockSkew = 5 * time.Minute

// Chain is a verified view of a set of log entries, computed without keys:
// what a peer or `check` can establish from envelopes alone.
type Chain struct {
	// Entries are the entries given, by ID.
	Entries map[[32]byte]*Entry
	// Heads are the entries no other entry names as a parent, sorted.
	Heads [][32]byte
	// Checkpoint is the newest checkpoint (highest sequence, ties broken
	// by smaller ID); HasCheckpoint says whether there is one.
	Checkpoint    [32]byte
	HasCheckpoint bool
	// Covered holds the checkpoint and every present entry it descends
	// from: their state is summed up by the checkpoint. It also holds the
	// entries in CutOff.
	Covered map[[32]byte]bool
	// CutOff holds the entries older than the checkpoint (lower sequence)
	// that it does not reach because a covered entry between them was
	// deleted (by hand or rot; prune deletes oldest first and never
	// leaves such a gap): they were covered before the gap formed, so
	// the checkpoint sums them up, and counting them again would bring
	// back snapshots long forgotten. See findCutOff for how they are
	// told from entries a writer appended after the checkpoint.
	CutOff map[[32]byte]bool
	// Problems lists every rule broken, one line each, sorted.
	Problems []string
}

// MaxSeq is the largest sequence number in the chain (0 when empty).
func (c *Chain) MaxSeq() uint64 {
	var m uint64
	for _, e := range c.Entries {
		m = max(m, e.Seq)
	}
	return m
}

func shortID(id [32]byte) string { return hex.EncodeToString(id[:4]) }

// findCutOff adds to CutOff and Covered the uncovered entries with a
// lower sequence than the checkpoint that either descend from no covered
// entry or are dated more than MaxClockSkew before it.
//
// The one legitimate uncovered entry with a lower sequence is one a
// writer appended after the checkpoint on a view of the log that lacked
// entries (a read failed): it names present, older entries as parents
// (pruning keeps those while it is uncovered), so it descends from
// covered ones, and it was written after the checkpoint. An entry cut off
// by a gap was written before the checkpoint, and its line of parents
// either reaches a covered entry or, above a pruned part, nothing.
func (c *Chain) findCutOff() {
	children := make(map[[32]byte][][32]byte)
	var queue [][32]byte
	for id, e := range c.Entries {
		for _, p := range e.Parents {
			children[p] = append(children[p], id)
		}
		if c.Covered[id] {
			queue = append(queue, id)
		}
	}
	linked := make(map[[32]byte]bool)
	for len(queue) > 0 {
		id := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, ch := range children[id] {
			if !c.Covered[ch] && !linked[ch] {
				linked[ch] = true
				queue = append(queue, ch)
			}
		}
	}
	cp := c.Entries[c.Checkpoint]
	c.CutOff = make(map[[32]byte]bool)
	for id, e := range c.Entries {
		older := e.Seq < cp.Seq && (!linked[id] || e.Time < cp.Time-int64(MaxClockSkew))
		if !c.Covered[id] && older {
			c.CutOff[id] = true
		}
	}
	for id := range c.CutOff {
		c.Covered[id] = true
	}
}

// VerifyChain checks the links between decoded (hence signature-checked)
// entries:
//
//   - every parent named by an entry that the newest checkpoint does not
//     cover must be present (a missing one is a broken link); parents of
//     covered entries may have been pruned;
//   - an entry's sequence number is one more than the largest of its
//     parents' when all are present, and larger than any present parent's
//     otherwise;
//   - no entry is dated more than MaxClockSkew before a parent.
func VerifyChain(entries map[[32]byte]*Entry) *Chain {
	c := &Chain{Entries: entries, Covered: make(map[[32]byte]bool), CutOff: make(map[[32]byte]bool)}
	for id, e := range entries {
		if e.Op != OpCheckpoint {
			continue
		}
		if !c.HasCheckpoint {
			c.Checkpoint, c.HasCheckpoint = id, true
			continue
		}
		best := entries[c.Checkpoint]
		if e.Seq > best.Seq || e.Seq == best.Seq && bytes.Compare(id[:], c.Checkpoint[:]) < 0 {
			c.Checkpoint = id
		}
	}
	if c.HasCheckpoint {
		stack := [][32]byte{c.Checkpoint}
		for len(stack) > 0 {
			id := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if c.Covered[id] {
				continue
			}
			e, ok := entries[id]
			if !ok {
				continue
			}
			c.Covered[id] = true
			stack = append(stack, e.Parents...)
		}
		c.findCutOff()
	}
	named := make(map[[32]byte]bool)
	for id, e := range entries {
		var maxSeq uint64
		missing := false
		for _, p := range e.Parents {
			named[p] = true
			parent, ok := entries[p]
			if !ok {
				missing = true
				if !c.Covered[id] {
					c.Problems = append(c.Problems, fmt.Sprintf("log entry %s (seq %d): parent %s is missing (broken link)", shortID(id), e.Seq, shortID(p)))
				}
				continue
			}
			maxSeq = max(maxSeq, parent.Seq)
			if e.Time < parent.Time-int64(MaxClockSkew) {
				c.Problems = append(c.Problems, fmt.Sprintf("log entry %s (seq %d): dated %s, before its parent %s (backdated)",
					shortID(id), e.Seq, time.Unix(0, e.Time).UTC().Format(time.RFC3339), shortID(p)))
			}
		}
		switch {
		case !missing && e.Seq != maxSeq+1:
			c.Problems = append(c.Problems, fmt.Sprintf("log entry %s: sequence %d does not follow its parents' %d", shortID(id), e.Seq, maxSeq))
		case missing && e.Seq <= maxSeq:
			c.Problems = append(c.Problems, fmt.Sprintf("log entry %s: sequence %d is not after its parents' %d", shortID(id), e.Seq, maxSeq))
		}
	}
	for id := range entries {
		if !named[id] {
			c.Heads = append(c.Heads, id)
		}
	}
	sort.Slice(c.Heads, func(i, j int) bool { return bytes.Compare(c.Heads[i][:], c.Heads[j][:]) < 0 })
	sort.Strings(c.Problems)
	return c
}
