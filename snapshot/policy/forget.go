package policy

import (
	"errors"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/snapshot"
)

// ForgetRequest says which snapshots a forget retires: those IDs names
// (full IDs or unique prefixes), or those Policy does not keep within
// each group of GroupBy; either way only among the snapshots Filter
// passes.
type ForgetRequest struct {
	IDs     []string
	Policy  Policy
	GroupBy GroupBy
	Filter  snapshot.Filter
}

// GroupDecision is the policy's decision for one group of snapshots: keep
// and remove newest first, Reasons[i] explaining Keep[i] (see Apply).
type GroupDecision struct {
	Key     GroupKey
	Keep    []*snapshot.Snapshot
	Remove  []*snapshot.Snapshot
	Reasons []Reason
}

// ForgetPlan says which snapshots a forget retires and why: a value
// computed by PlanForget. Forgetting the snapshots of Remove (one entry
// in the log, snapshot.Log.Forget) is its execution.
type ForgetPlan struct {
	// ByPolicy says the snapshots were chosen by a policy: Groups holds
	// its decision for each group. Otherwise they were named: Named are
	// the live ones, AlreadyForgotten those the log records as
	// forgotten already (forgetting is idempotent, so that a run killed
	// before its prune finished can be run again).
	ByPolicy         bool
	Groups           []GroupDecision
	Named            []*snapshot.Snapshot
	AlreadyForgotten []*snapshot.Snapshot
}

// Remove returns the IDs of the snapshots the plan forgets.
func (p ForgetPlan) Remove() []backend.ID {
	var out []backend.ID
	for _, g := range p.Groups {
		for _, sn := range g.Remove {
			out = append(out, sn.ID)
		}
	}
	for _, sn := range p.Named {
		out = append(out, sn.ID)
	}
	return out
}

// Left returns the snapshots of live the plan does not forget: those
// live once it is executed.
func (p ForgetPlan) Left(live []*snapshot.Snapshot) []*snapshot.Snapshot {
	gone := make(map[backend.ID]bool)
	for _, id := range p.Remove() {
		gone[id] = true
	}
	var out []*snapshot.Snapshot
	for _, sn := range live {
		if !gone[sn.ID] {
			out = append(out, sn)
		}
	}
	return out
}

// Errors of PlanForget for a request that names nothing to forget, or
// both IDs and a policy.
var (
	ErrNothingToForget = errors.New("no policy and no snapshots given: nothing to forget (see 'cairn help forget')")
	ErrIDsAndPolicy    = errors.New("give either snapshot IDs or a policy, not both")
)

// Validate checks that req names snapshots or gives a valid policy, not
// both, so that a command can refuse it before it opens the repository.
func (req ForgetRequest) Validate() error {
	switch {
	case req.Policy.Empty() && len(req.IDs) == 0:
		return ErrNothingToForget
	case !req.Policy.Empty() && len(req.IDs) > 0:
		return ErrIDsAndPolicy
	}
	return req.Policy.Validate()
}

// PlanForget decides which live snapshots of l a forget retires at time
// now: the ones req names (a name matching no live snapshot but one the
// log records as forgotten goes to AlreadyForgotten; one matching neither
// is an error wrapping snapshot.ErrNoSnapshot), or the ones req.Policy
// does not keep, group by group. It changes nothing.
func PlanForget(l *snapshot.Log, req ForgetRequest, now time.Time) (ForgetPlan, error) {
	var plan ForgetPlan
	if err := req.Validate(); err != nil {
		return plan, err
	}
	if len(req.IDs) > 0 {
		return planNamed(l, req)
	}
	plan.ByPolicy = true
	for _, g := range Group(req.Filter.Apply(l.Snapshots()), req.GroupBy) {
		keep, remove, reasons := Apply(g.Snapshots, req.Policy, now)
		plan.Groups = append(plan.Groups, GroupDecision{Key: g.Key, Keep: keep, Remove: remove, Reasons: reasons})
	}
	return plan, nil
}

// planNamed resolves the snapshots req names.
func planNamed(l *snapshot.Log, req ForgetRequest) (ForgetPlan, error) {
	var plan ForgetPlan
	seen := make(map[backend.ID]bool)
	for _, sel := range req.IDs {
		sn, err := snapshot.Find(l.Snapshots(), sel, req.Filter)
		if errors.Is(err, snapshot.ErrNoSnapshot) {
			if old, ferr := snapshot.Find(l.Forgotten(), sel, req.Filter); ferr == nil {
				plan.AlreadyForgotten = append(plan.AlreadyForgotten, old)
				continue
			}
		}
		if err != nil {
			return plan, err
		}
		if !seen[sn.ID] {
			seen[sn.ID] = true
			plan.Named = append(plan.Named, sn)
		}
	}
	return plan, nil
}
