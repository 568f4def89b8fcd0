package policy

// The google.rpc.ErrorInfo the control plane attaches to a write refused for
// a stale expected revision (FailedPrecondition). Part of the API contract:
// the server sets these and clients (sdk/admin) match on them.
const (
	ErrorDomain            = "wsfleet.v1"
	ReasonRevisionConflict = "REVISION_CONFLICT"
	// Metadata keys of the conflict ErrorInfo.
	ConflictPoolKey     = "pool"
	ConflictCurrentKey  = "current_revision"
	ConflictExpectedKey = "expected_revision"
)
