package policy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// absent is how a diff shows a value that is not there: a field of a group
// that is not set, or an unset message field such as a duration. It is what
// JSON writes for a missing value, and unlike "" it cannot be mistaken for
// an empty string.
const absent = "null"

// Well-known types rendered as the scalars they read as in a policy file.
var (
	durationName  = (&durationpb.Duration{}).ProtoReflect().Descriptor().FullName()
	timestampName = (&timestamppb.Timestamp{}).ProtoReflect().Descriptor().FullName()
)

// Diff lists the differences from one policy to another, in field order;
// equal policies give nil.
//
// It walks the message with protoreflect, so a field added to the proto is
// diffed without touching this code. Field paths use proto field names
// ("heartbeat.interval"). Scalars, enums and well-known types (durations,
// timestamps) give one KIND_CHANGED with both values as they read in a
// policy file: strings quoted, durations quoted in FormatDuration's form
// ("1m30s"), enums quoted in EnumText's form ("close"), numbers plain, bools true/false, and "null" for a value that
// is not set. Repeated fields are compared as sets: one KIND_REMOVED per
// dropped element, then one KIND_ADDED per new one, each with the list's
// path ("origins.allow"). Map fields are compared by key, with the key in
// the path (`labels["zone"]`). A group that is set on one side only is
// reported leaf by leaf, so the operator sees every value that appears or
// disappears.
func Diff(from, to *wsfleetv1.Policy) []*wsfleetv1.FieldChange {
	var d differ
	d.message("", reflectOrNil(from), reflectOrNil(to))
	return d.out
}

// reflectOrNil maps a nil policy to an invalid (read-only, empty) message,
// which the differ treats like a group that is not set.
func reflectOrNil(p *wsfleetv1.Policy) protoreflect.Message {
	if p == nil {
		return (*wsfleetv1.Policy)(nil).ProtoReflect()
	}
	return p.ProtoReflect()
}

type differ struct {
	out []*wsfleetv1.FieldChange
}

func (d *differ) add(field string, kind wsfleetv1.FieldChange_Kind, oldValue, newValue string) {
	d.out = append(d.out, &wsfleetv1.FieldChange{Field: field, Kind: kind, OldValue: oldValue, NewValue: newValue})
}

// message diffs two messages of the same type; either may be invalid (not
// set), in which case all its fields read as absent.
func (d *differ) message(prefix string, from, to protoreflect.Message) {
	if !from.IsValid() && !to.IsValid() {
		return
	}
	fields := from.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		path := string(fd.Name())
		if prefix != "" {
			path = prefix + "." + path
		}
		switch {
		case fd.IsList():
			d.list(path, listOf(from, fd), listOf(to, fd))
		case fd.IsMap():
			d.mapField(path, fd, from, to)
		case fd.Message() != nil && !isScalarMessage(fd.Message()):
			d.message(path, subMessage(from, fd), subMessage(to, fd))
		default:
			oldValue, newValue := leaf(from, fd), leaf(to, fd)
			if oldValue != newValue {
				d.add(path, wsfleetv1.FieldChange_KIND_CHANGED, oldValue, newValue)
			}
		}
	}
}

// list reports set differences, each element once however often it repeats.
func (d *differ) list(path string, from, to []string) {
	for _, v := range dedupe(from) {
		if !slices.Contains(to, v) {
			d.add(path, wsfleetv1.FieldChange_KIND_REMOVED, v, "")
		}
	}
	for _, v := range dedupe(to) {
		if !slices.Contains(from, v) {
			d.add(path, wsfleetv1.FieldChange_KIND_ADDED, "", v)
		}
	}
}

func (d *differ) mapField(path string, fd protoreflect.FieldDescriptor, from, to protoreflect.Message) {
	oldMap, newMap := mapOf(from, fd), mapOf(to, fd)
	keys := make([]string, 0, len(oldMap)+len(newMap))
	for k := range oldMap {
		keys = append(keys, k)
	}
	for k := range newMap {
		if _, ok := oldMap[k]; !ok {
			keys = append(keys, k)
		}
	}
	// Maps have no field order; sorting keeps diffs stable across runs.
	slices.Sort(keys)
	for _, k := range keys {
		o, inOld := oldMap[k]
		n, inNew := newMap[k]
		p := path + "[" + k + "]"
		switch {
		case !inOld:
			d.add(p, wsfleetv1.FieldChange_KIND_ADDED, "", n)
		case !inNew:
			d.add(p, wsfleetv1.FieldChange_KIND_REMOVED, o, "")
		case o != n:
			d.add(p, wsfleetv1.FieldChange_KIND_CHANGED, o, n)
		}
	}
}

func listOf(m protoreflect.Message, fd protoreflect.FieldDescriptor) []string {
	if !m.IsValid() {
		return nil
	}
	l := m.Get(fd).List()
	out := make([]string, l.Len())
	for i := range out {
		out[i] = render(fd, l.Get(i))
	}
	return out
}

// mapOf renders a map field with its keys rendered as JSON strings, the
// way a policy file writes object keys.
func mapOf(m protoreflect.Message, fd protoreflect.FieldDescriptor) map[string]string {
	out := map[string]string{}
	if !m.IsValid() {
		return out
	}
	m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		out[jsonString(k.String())] = render(fd.MapValue(), v)
		return true
	})
	return out
}

// subMessage relies on Get returning an invalid message for an unset message
// field, or for any field of an invalid message: exactly "not set".
func subMessage(m protoreflect.Message, fd protoreflect.FieldDescriptor) protoreflect.Message {
	return m.Get(fd).Message()
}

// leaf renders a singular non-group field, or absent when the message is
// not set or the field has presence and is not set.
func leaf(m protoreflect.Message, fd protoreflect.FieldDescriptor) string {
	if !m.IsValid() || (fd.HasPresence() && !m.Has(fd)) {
		return absent
	}
	return render(fd, m.Get(fd))
}

func isScalarMessage(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case durationName, timestampName:
		return true
	}
	return false
}

func dedupe(vs []string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// render writes one value as it reads in a policy file.
func render(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	case protoreflect.FloatKind:
		return formatFloat32(float32(v.Float()))
	case protoreflect.DoubleKind:
		return formatFloat(v.Float())
	case protoreflect.StringKind:
		return jsonString(v.String())
	case protoreflect.BytesKind:
		return jsonString(base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.EnumKind:
		if text, ok := EnumText(fd.Enum(), v.Enum()); ok {
			return jsonString(text)
		}
		return strconv.FormatInt(int64(v.Enum()), 10)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return renderMessage(v.Message())
	}
	return jsonString(v.String())
}

func renderMessage(m protoreflect.Message) string {
	switch m.Descriptor().FullName() {
	case durationName:
		d := &durationpb.Duration{
			Seconds: m.Get(m.Descriptor().Fields().ByName("seconds")).Int(),
			Nanos:   int32(m.Get(m.Descriptor().Fields().ByName("nanos")).Int()),
		}
		return durationText(d)
	case timestampName:
		ts := &timestamppb.Timestamp{
			Seconds: m.Get(m.Descriptor().Fields().ByName("seconds")).Int(),
			Nanos:   int32(m.Get(m.Descriptor().Fields().ByName("nanos")).Int()),
		}
		return jsonString(ts.AsTime().Format(time.RFC3339Nano))
	}
	// Any other message (say, a future repeated message field) is written as
	// compact JSON; protojson's output is deliberately unstable in spacing,
	// so compact it to compare renderings.
	b, err := protojson.Marshal(m.Interface())
	if err != nil {
		return jsonString(err.Error())
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// formatFloat writes a double the way protojson does, so that NaN and the
// infinities, which JSON has no number for, read as the strings a policy
// file would hold.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return `"NaN"`
	case math.IsInf(f, 1):
		return `"Infinity"`
	case math.IsInf(f, -1):
		return `"-Infinity"`
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func formatFloat32(f float32) string {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return formatFloat(float64(f))
	}
	return strconv.FormatFloat(float64(f), 'g', -1, 32)
}

// jsonString quotes s as JSON does, without json.Marshal's HTML escaping
// (which would turn "&" in a query-looking origin into \u0026).
func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return strconv.Quote(s)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
