package policy

// The google.rpc.ErrorInfo values the control plane attaches to refusals
// clients must tell apart. Part of the API contract: the server sets these
// and clients (sdk/admin) match on them.
const (
	ErrorDomain            = "wsfleet.v1"
	ReasonRevisionConflict = "REVISION_CONFLICT"
	// Metadata keys of the conflict ErrorInfo.
	ConflictPoolKey     = "pool"
	ConflictCurrentKey  = "current_revision"
	ConflictExpectedKey = "expected_revision"

	// ReasonStoreUnavailable comes with Unavailable when the control plane's
	// policy store failed (disk full, I/O error, store closed): the server
	// answered, and nothing was stored. Retrying later is safe.
	ReasonStoreUnavailable = "STORE_UNAVAILABLE"
	// ReasonStoreOutcomeUnknown comes with Unavailable when the control
	// plane's store lost the answer to a write and could not tell
	// afterwards whether it was committed (a distributed store): read the
	// history before retrying.
	ReasonStoreOutcomeUnknown = "STORE_OUTCOME_UNKNOWN"
	// StoreOperationKey names, in the store ErrorInfo's metadata, what the
	// server was doing ("append", "read head"...).
	StoreOperationKey = "operation"
)

// ReasonApprovalRequired comes with FailedPrecondition when a direct write
// (apply, rollback, recovery) is refused because the pool's head requires
// approval: propose the change instead. Metadata: ConflictPoolKey.
const ReasonApprovalRequired = "APPROVAL_REQUIRED"
