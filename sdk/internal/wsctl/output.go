package wsctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// Output formats (-o).
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// emit writes m as JSON or YAML per -o, or calls table for the human form.
// JSON and YAML go through policyfile so that what wsctl prints is what
// `wsctl policy apply -f` reads.
func (a *app) emit(m proto.Message, table func(w io.Writer) error) error {
	var (
		out []byte
		err error
	)
	switch a.output {
	case formatJSON:
		out, err = output.JSON(m)
	case formatYAML:
		out, err = output.YAML(m)
	default:
		return table(a.stdout)
	}
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(out)
	return err
}

// output is how -o json|yaml write messages: as policy files do, except
// that an error class is written by its short name, the one spelling of
// api/errclass, the tables, logs and metric labels ("conn_reset", not
// "ERROR_CLASS_CONN_RESET"), followed by what the client saw (signal) and
// what to do (what_to_do), as the tables show them.
var output = policyfile.Encoder{Field: explainClass}

var errorClassEnum = wsfleetv1.ErrorClass(0).Descriptor().FullName()

func explainClass(fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]policyfile.Member, bool) {
	if fd.Enum() == nil || fd.Enum().FullName() != errorClassEnum {
		return nil, false
	}
	name := string(fd.Name())
	if fd.IsList() {
		list := v.List()
		names := make([]any, list.Len())
		for i := range names {
			names[i] = errclass.Name(wsfleetv1.ErrorClass(list.Get(i).Enum()))
		}
		return []policyfile.Member{{Key: name, Value: names}}, true
	}
	info := errclass.Lookup(wsfleetv1.ErrorClass(v.Enum()))
	return []policyfile.Member{
		{Key: name, Value: info.Name},
		{Key: "signal", Value: info.Signal},
		{Key: "what_to_do", Value: info.Action},
	}, true
}

// newTable aligns columns with two spaces between them.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// changeLine renders one FieldChange the way diff tools do:
// `~ heartbeat.interval: "25s" -> "30s"`, `+ origins.allow: "https://a"`,
// `- origins.allow: "https://b"`. Values are already in policy-file form.
func changeLine(c *wsfleetv1.FieldChange) string {
	switch c.GetKind() {
	case wsfleetv1.FieldChange_KIND_ADDED:
		return "+ " + c.GetField() + ": " + c.GetNewValue()
	case wsfleetv1.FieldChange_KIND_REMOVED:
		return "- " + c.GetField() + ": " + c.GetOldValue()
	default:
		return "~ " + c.GetField() + ": " + c.GetOldValue() + " -> " + c.GetNewValue()
	}
}

// outcome is what an apply or a rollback did, for the table form.
type outcome struct {
	pool       string
	dryRun     bool
	revision   int64
	previous   int64
	unchanged  bool
	rollbackOf int64
	changes    []*wsfleetv1.FieldChange
}

// appliedOutcome is what an ApplyPolicy answer reports (apply and set).
func appliedOutcome(resp *wsfleetv1.ApplyPolicyResponse, pool string, dryRun bool) outcome {
	return outcome{
		pool:      poolOf(resp.GetRevision(), pool),
		dryRun:    dryRun,
		revision:  resp.GetRevision().GetRevision(),
		previous:  resp.GetPreviousRevision(),
		unchanged: resp.GetUnchanged(),
		changes:   resp.GetChanges(),
	}
}

func (o outcome) write(w io.Writer) error {
	var head string
	switch {
	case o.unchanged && o.dryRun:
		head = fmt.Sprintf("dry run: pool %s would stay unchanged at revision %d", o.pool, o.revision)
	case o.unchanged:
		head = fmt.Sprintf("pool %s: unchanged at revision %d", o.pool, o.revision)
	case o.dryRun && o.previous == 0:
		head = fmt.Sprintf("dry run: pool %s would be created at revision %d", o.pool, o.revision)
	case o.dryRun:
		head = fmt.Sprintf("dry run: pool %s would go from revision %d to %d", o.pool, o.previous, o.revision)
	case o.previous == 0:
		head = fmt.Sprintf("pool %s: created at revision %d", o.pool, o.revision)
	default:
		head = fmt.Sprintf("pool %s: revision %d -> %d", o.pool, o.previous, o.revision)
	}
	if o.rollbackOf != 0 && !o.unchanged {
		head += fmt.Sprintf(" (content of revision %d)", o.rollbackOf)
	}
	var b strings.Builder
	b.WriteString(head + "\n")
	for _, c := range o.changes {
		b.WriteString("  " + changeLine(c) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatTime shows timestamps in UTC so output compares across machines.
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// oneLine keeps a free-text message on its table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
