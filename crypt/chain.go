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
	// from: their state is summed up by the checkpoint.
	Covered map[[32]byte]bool
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

// Reach returns the present entries among from and every present entry
// they descend from.
func Reach(entries map[[32]byte]*Entry, from ...[32]byte) map[[32]byte]bool {
	return ReachFunc(func(id [32]byte) ([][32]byte, bool) {
		e, ok := entries[id]
		if !ok {
			return nil, false
		}
		return e.Parents, true
	}, from...)
}

// ReachFunc is Reach over any store of entries: parents returns the
// parents of the entry id, and false when the entry is not present.
func ReachFunc(parents func(id [32]byte) ([][32]byte, bool), from ...[32]byte) map[[32]byte]bool {
	seen := make(map[[32]byte]bool)
	stack := append([][32]byte(nil), from...)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[id] {
			continue
		}
		ps, ok := parents(id)
		if !ok {
			continue
		}
		seen[id] = true
		stack = append(stack, ps...)
	}
	return seen
}

// Orphans returns the entries with a lower sequence than the checkpoint
// cp that neither are in covered nor descend from an entry in it: left
// over from a compaction, or cut off from it when the entries linking
// them were removed. A writer's entry descends from what it saw, and
// prune keeps the parents of every uncovered entry, so no entry written
// in the normal course is an orphan; mirror uses this to tell, on a
// copy, what the source compacted from what someone else wrote.
func Orphans(entries map[[32]byte]*Entry, cp [32]byte, covered map[[32]byte]bool) map[[32]byte]bool {
	children := make(map[[32]byte][][32]byte)
	var queue [][32]byte
	for id, e := range entries {
		for _, p := range e.Parents {
			children[p] = append(children[p], id)
		}
		if covered[id] {
			queue = append(queue, id)
		}
	}
	linked := make(map[[32]byte]bool)
	for len(queue) > 0 {
		id := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, ch := range children[id] {
			if !covered[ch] && !linked[ch] {
				linked[ch] = true
				queue = append(queue, ch)
			}
		}
	}
	out := make(map[[32]byte]bool)
	cpe, ok := entries[cp]
	if !ok {
		return out
	}
	for id, e := range entries {
		if !covered[id] && !linked[id] && e.Seq < cpe.Seq {
			out[id] = true
		}
	}
	return out
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
	c := &Chain{Entries: entries, Covered: make(map[[32]byte]bool)}
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
		c.Covered = Reach(entries, c.Checkpoint)
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
