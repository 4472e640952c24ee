package repo

import (
	"errors"
	"fmt"
	"sync"
)

// ErrPlanNotHeld is wrapped by the error of ExecutePrune,
// ExecuteRepairIndex and ExecuteRepairPacks when the plan was not made
// under the exclusive lock the repository holds now: made without one
// (a dry run, --no-lock), before it was taken, under a lock since released
// or lost, by another Repository, or executed already. What a plan says
// is true only while no one else can change the repository, so it is
// made again under the lock that executes it.
var ErrPlanNotHeld = errors.New("the plan was not made under the exclusive lock held now")

// planGuard ties a maintenance plan to the Repository that made it and to
// the exclusive lock it held then. Copies of a plan share their guard, so
// a plan executes once.
type planGuard struct {
	r    *Repository
	lock *Lock // nil: made without the exclusive lock

	mu   sync.Mutex // guards used
	used bool
}

// newPlanGuard records the exclusive lock r holds now, if any.
func (r *Repository) newPlanGuard() *planGuard {
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	return &planGuard{r: r, lock: r.held}
}

// claim allows r to execute the plan g guards once, and only under the
// exclusive lock the plan was made under, still held and not lost.
func (g *planGuard) claim(r *Repository, what string) error {
	why := ""
	r.heldMu.Lock()
	held := r.held
	r.heldMu.Unlock()
	switch {
	case g == nil || g.r != r:
		why = "it was not made by this repository"
	case g.lock == nil:
		why = "it was made without the exclusive lock (a dry run)"
	case held != g.lock:
		why = "the lock it was made under is no longer held"
	case g.lock.lostErr() != nil:
		why = g.lock.lostErr().Error()
	}
	if why == "" {
		g.mu.Lock()
		if g.used {
			why = "it was executed already"
		}
		g.used = true
		g.mu.Unlock()
	}
	if why != "" {
		return fmt.Errorf("%s: %w: %s; make the plan again under the lock", what, ErrPlanNotHeld, why)
	}
	return nil
}
