//go:build cairn_testonly

package faulty

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/cairn-backup/cairn/backend"
)

// The kinds of fault InjectRandomly draws, as its report names them.
const (
	KindError    = "error"     // the call fails without reaching the wrapped backend
	KindShortGet = "short-get" // Get's reader ends cleanly before the range's end
	KindBrokenIO = "broken-io" // Get's reader, Put's content or List's listing fails part-way
	KindLostAck  = "lost-ack"  // Put or Delete happened, but the caller is told it failed
)

// randomFaults draws faults for calls that no queued fault took.
type randomFaults struct {
	rng    *rand.Rand
	rate   float64
	report func(m Method, kind string, h backend.Handle)
}

// InjectRandomly makes the wrapper fail each call that no queued fault
// takes with probability rate (0 < rate ≤ 1), in a way drawn at random
// among those that suit the method: any call may fail before it runs
// (KindError); Get's reader may end early without an error (KindShortGet,
// which a retrying wrapper must notice) or fail part-way, as may Put's
// content and List's listing (KindBrokenIO); Put and Delete may take
// effect and still report a failure (KindLostAck). The draws follow from
// seed, so a run with the same calls in the same order injects the same
// faults. Reads that return wrong bytes are never drawn: that is damage,
// which the repository's checks must report, not a fault it must survive.
//
// report, if not nil, is called with each fault drawn before it takes
// effect, with the wrapper's lock held: it must not call the wrapper.
func (b *Backend) InjectRandomly(seed uint64, rate float64, report func(m Method, kind string, h backend.Handle)) {
	if !(rate > 0 && rate <= 1) {
		panic(fmt.Sprintf("faulty: InjectRandomly rate %v not in (0, 1] (caller bug)", rate))
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.random = &randomFaults{rng: rand.New(rand.NewChaCha8(key)), rate: rate, report: report}
}

// draw decides whether the call of m on h fails and how; b.mu must be
// held. A nil spec means no fault.
func (r *randomFaults) draw(m Method, h backend.Handle) *spec {
	if r.rng.Float64() >= r.rate {
		return nil
	}
	s := &spec{failAfter: -1, shortRead: -1, corruptAt: -1}
	var kinds []string
	switch m {
	case List:
		kinds = []string{KindError, KindBrokenIO}
	case Stat:
		kinds = []string{KindError}
	case Get:
		kinds = []string{KindError, KindShortGet, KindBrokenIO}
	case Put:
		kinds = []string{KindError, KindBrokenIO, KindLostAck}
	case Delete:
		kinds = []string{KindError, KindLostAck}
	}
	kind := kinds[r.rng.IntN(len(kinds))]
	switch kind {
	case KindError:
		s.errInstead = ErrInjected
	case KindShortGet:
		s.shortRead = r.rng.Int64N(1024)
	case KindBrokenIO:
		if m == List {
			s.failAfter = r.rng.Int64N(16)
		} else {
			s.failAfter = r.rng.Int64N(4096)
		}
		s.failErr = ErrInjected
	case KindLostAck:
		s.errAfter = ErrInjected
	}
	if r.report != nil {
		r.report(m, kind, h)
	}
	return s
}
