package admin

import (
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// The ErrorInfo values the control plane attaches to a stale write and to a
// store failure; the strings are defined once, in the API contract
// (api/policy).
const (
	ErrorDomain            = policy.ErrorDomain
	ReasonRevisionConflict = policy.ReasonRevisionConflict
	ReasonStoreUnavailable = policy.ReasonStoreUnavailable
	// ReasonStoreOutcomeUnknown: the server's store could not tell whether
	// a write was stored.
	ReasonStoreOutcomeUnknown = policy.ReasonStoreOutcomeUnknown
	// StoreOperationKey: what the server was doing when its store failed.
	StoreOperationKey = policy.StoreOperationKey
	// Metadata keys of the conflict ErrorInfo.
	ConflictPoolKey     = policy.ConflictPoolKey
	ConflictCurrentKey  = policy.ConflictCurrentKey
	ConflictExpectedKey = policy.ConflictExpectedKey
)

// FieldViolations returns the field violations of a google.rpc.BadRequest
// detail on err (the control plane sends one with every InvalidArgument for
// a policy), in the order the server listed them; nil when there is none.
func FieldViolations(err error) []*wsfleetv1.FieldViolation {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return nil
	}
	var out []*wsfleetv1.FieldViolation
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, fv := range br.GetFieldViolations() {
			out = append(out, &wsfleetv1.FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
		}
	}
	return out
}

// Conflict reports whether err is a stale-revision refusal
// (FailedPrecondition with the REVISION_CONFLICT ErrorInfo) and, if so, the
// pool's current revision, so a caller can re-read and retry.
func Conflict(err error) (current int64, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || err == nil || st.Code() != codes.FailedPrecondition {
		return 0, false
	}
	for _, d := range st.Details() {
		info, isInfo := d.(*errdetails.ErrorInfo)
		if !isInfo || info.GetReason() != ReasonRevisionConflict || info.GetDomain() != ErrorDomain {
			continue
		}
		n, err := strconv.ParseInt(info.GetMetadata()[ConflictCurrentKey], 10, 64)
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// StoreUnavailable reports whether err is the control plane saying its
// policy store failed (Unavailable with the STORE_UNAVAILABLE ErrorInfo),
// so nothing was stored, and if so what it was doing ("append",
// "read head"...).
func StoreUnavailable(err error) (operation string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || err == nil || st.Code() != codes.Unavailable {
		return "", false
	}
	for _, d := range st.Details() {
		info, isInfo := d.(*errdetails.ErrorInfo)
		if isInfo && info.GetReason() == ReasonStoreUnavailable && info.GetDomain() == ErrorDomain {
			return info.GetMetadata()[StoreOperationKey], true
		}
	}
	return "", false
}

// StoreOutcomeUnknown reports whether err is the control plane saying its
// store lost the answer to a write and cannot tell whether it was stored
// (Unavailable with the STORE_OUTCOME_UNKNOWN ErrorInfo).
func StoreOutcomeUnknown(err error) bool {
	st, isStatus := status.FromError(err)
	if !isStatus || err == nil || st.Code() != codes.Unavailable {
		return false
	}
	for _, d := range st.Details() {
		info, isInfo := d.(*errdetails.ErrorInfo)
		if isInfo && info.GetReason() == ReasonStoreOutcomeUnknown && info.GetDomain() == ErrorDomain {
			return true
		}
	}
	return false
}
