//go:build !unix

package loadgen

// FileLimit is this process's descriptor limit; unknown off Unix.
type FileLimit struct {
	Soft   uint64 `json:"soft"`
	Hard   uint64 `json:"hard"`
	Needed uint64 `json:"needed"`
	Note   string `json:"note,omitempty"`
}

func raiseFileLimit(need uint64) (FileLimit, error) {
	return FileLimit{Needed: need, Note: "descriptor limits are not checked on this system"}, nil
}
