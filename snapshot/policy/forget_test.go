package policy_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypt"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/snapshot"
	"github.com/cairn-backup/cairn/snapshot/policy"
)

// TestPlanForget: by policy, the plan holds each group's decision and
// forgets what no rule keeps; by name, live snapshots are forgotten and
// forgotten ones noted; a request naming nothing, or both, is refused.
// Executing the plan (one forget entry) leaves exactly Left.
func TestPlanForget(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, mem.New(), []byte("pw"), repo.InitOptions{KDF: crypt.FastKDFParamsForTests()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ident, _ := crypt.NewIdentity()
	l, err := snapshot.LoadLog(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, host := range []string{"a", "a", "a", "b", "b"} {
		at := now.Add(time.Duration(i-10) * time.Hour)
		if _, err := l.AddSnapshot(ctx, r, ident, &snapshot.Snapshot{Time: at, Hostname: host, Paths: []string{"/d"}}, at); err != nil {
			t.Fatal(err)
		}
	}
	live := slices.Clone(l.Snapshots()) // the log reuses its slice

	req := policy.ForgetRequest{Policy: policy.Policy{Last: 1}, GroupBy: policy.GroupBy{Host: true}}
	plan, err := policy.PlanForget(l, req, now)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.ByPolicy || len(plan.Groups) != 2 || len(plan.Remove()) != 3 {
		t.Fatalf("plan: %+v", plan)
	}
	for _, g := range plan.Groups {
		if len(g.Keep) != 1 || len(g.Reasons) != 1 || g.Reasons[0].Matches[0] != "last snapshot" {
			t.Errorf("group %v: keep %d, reasons %+v", g.Key, len(g.Keep), g.Reasons)
		}
	}
	// The filter narrows what the policy sees.
	only, err := policy.PlanForget(l, policy.ForgetRequest{Policy: req.Policy, Filter: snapshot.Filter{Hosts: []string{"b"}}}, now)
	if err != nil || len(only.Remove()) != 1 || only.Remove()[0] != live[3].ID {
		t.Fatalf("filtered plan: %v, %v", only.Remove(), err)
	}

	left := plan.Left(live)
	if _, err := l.Forget(ctx, r, ident, plan.Remove(), now); err != nil {
		t.Fatal(err)
	}
	ids := func(snaps []*snapshot.Snapshot) []backend.ID {
		var out []backend.ID
		for _, sn := range snaps {
			out = append(out, sn.ID)
		}
		return out
	}
	if !slices.Equal(ids(l.Snapshots()), ids(left)) {
		t.Fatalf("live after forget %v, plan left %v", ids(l.Snapshots()), ids(left))
	}

	// By name: a live snapshot, and one forgotten already.
	named, err := policy.PlanForget(l, policy.ForgetRequest{IDs: []string{live[4].ID.Str(), live[0].ID.String()}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if named.ByPolicy || len(named.Named) != 1 || named.Named[0] != l.Snapshots()[1] ||
		len(named.AlreadyForgotten) != 1 || named.AlreadyForgotten[0].ID != live[0].ID {
		t.Fatalf("named plan: %+v", named)
	}
	if _, err := policy.PlanForget(l, policy.ForgetRequest{IDs: []string{"0123abcd"}}, now); !errors.Is(err, snapshot.ErrNoSnapshot) {
		t.Fatalf("an unknown ID: %v", err)
	}
	if _, err := policy.PlanForget(l, policy.ForgetRequest{}, now); !errors.Is(err, policy.ErrNothingToForget) {
		t.Fatalf("no policy and no IDs: %v", err)
	}
	if _, err := policy.PlanForget(l, policy.ForgetRequest{IDs: []string{"latest"}, Policy: req.Policy}, now); !errors.Is(err, policy.ErrIDsAndPolicy) {
		t.Fatalf("IDs and a policy: %v", err)
	}
}
