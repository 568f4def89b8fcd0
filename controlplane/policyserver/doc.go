// Package policyserver implements wsfleet.v1.PolicyService: validated,
// revisioned, optimistic-concurrency policy changes over a store.Store.
//
// Every write is validated as a whole with api/policy before anything is
// stored, then appended with a compare-and-set on the pool's head revision,
// so two writers can never silently overwrite each other: with an
// expected_revision the loser gets FailedPrecondition naming the current
// revision; without one the server retries against the new head, so the
// reported changes are always relative to the revision actually replaced.
//
// A commit is written to the audit log and counted; it reaches the nodes
// through the store's watch of pool heads (store.Store.WatchHeads), which
// the fleet registry follows, never through a call from here: that way a
// revision committed through another control-plane replica sharing the
// store is pushed exactly like one committed here.
//
// Commit messages are bounded (policy.MaxCommitMessageBytes) and refused,
// never cut, above it.
//
// RecoverPolicy reads what the fleet runs through Config.Fleet (the fleet
// registry's view, called once per request, never blocking) and stores the
// newest policy a node reports for the pool as its next revision, numbered
// above every reported revision and above the head, so that nodes which
// refuse a revision older than theirs accept it. The write is the same
// compare-and-set append as every other, and reaches the nodes the same
// way.
//
// Proposals (proposals.go) are kept in the same store. ApproveProposal is
// an ordinary write whose append is the store's ApproveProposal: the
// revision and the proposal's approval commit in one transaction, guarded
// by the head still being the proposal's base revision, so of two admins
// approving at once one wins and the other is told who did. The approver
// must be another identity than the proposer (the names authorOf records).
// A pool whose head has approval.required refuses direct writes (apply,
// rollback, recover; change.direct): it changes only through approvals.
// ProposePolicy calls Config.Impact, when set, on the caller's goroutine.
//
// Canary rollouts (rollout.go): ApplyPolicy with canary stores the revision
// with a RolloutSpec whose base_revision is the head it replaced, after
// checking the spec (every bad field named at once), that the pool has a
// head, and that the selector matches at least one connected node of the
// pool (Config.Nodes) and leaves at least one out. While the head carries
// a rollout, write refuses every other write to the pool with
// FailedPrecondition naming the canary; EndRollout (PromoteRollout,
// AbortRollout, and the rollout evaluator) appends the ending revision —
// the canary's content or the base's, with a RolloutOutcome — with the
// canary revision as the expected head, so exactly one of several
// concurrent decisions is stored. GetRollout scans the history back from
// the head (at most MaxRolloutScan revisions) for the latest rollout, and
// remembers the answer per pool until the head changes (revisions are
// immutable), so polling it reads only the head; the nodes and the
// comparison are computed per call. The memory is one entry per pool
// under a mutex held for map operations only, never across a store read.
package policyserver
