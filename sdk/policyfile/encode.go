package policyfile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// completeMessage is the message written with every scalar and list field,
// zero or not: a policy file is complete, so `allow_missing: false` and
// `allow: []` are spelled out rather than left for the reader to infer.
var completeMessage = (&wsfleetv1.Policy{}).ProtoReflect().Descriptor().FullName()

// EncodeYAML renders a wsfleet message as a policy-file style YAML document:
// proto (snake_case) names in proto field order, durations as "10s", int64 as
// numbers, timestamps in RFC 3339, enums by name (inside a Policy in the
// short form a policy file uses: reject_with: close), and every scalar of a
// Policy even when zero. Outside a Policy, zero scalars are left out as
// protojson does. For a Policy or a PolicyRevision, Decode reads the result
// back to an equal policy, pool and revision.
func EncodeYAML(m proto.Message) ([]byte, error) { return Encoder{}.YAML(m) }

// EncodeJSON renders m like EncodeYAML, as JSON with a two-space indent and a
// trailing newline. Unlike protojson the output is stable (no randomised
// spacing) and int64 values are numbers, so it diffs and greps well.
func EncodeJSON(m proto.Message) ([]byte, error) { return Encoder{}.JSON(m) }

// Encoder writes messages as EncodeYAML and EncodeJSON do, letting the
// caller write chosen fields its own way (wsctl writes error classes by
// their short names, each with what to do about it). The zero Encoder is
// EncodeYAML and EncodeJSON.
type Encoder struct {
	// Field, if set, is asked about every field written, message fields
	// included. When it answers ok, members are written in the field's
	// place, in order; each value is a string, bool, number, nil or a
	// []any of those. Decode does not read such output back unless the
	// members are the field itself in a form it accepts.
	Field func(fd protoreflect.FieldDescriptor, v protoreflect.Value) (members []Member, ok bool)
}

// Member is one key and value an Encoder.Field hook writes.
type Member struct {
	Key   string
	Value any
}

// YAML renders m like EncodeYAML.
func (e Encoder) YAML(m proto.Message) ([]byte, error) {
	tree, err := e.encodeTree(m)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(toYAML(tree))
}

// JSON renders m like EncodeJSON.
func (e Encoder) JSON(m proto.Message) ([]byte, error) {
	tree, err := e.encodeTree(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Origins are full of characters HTML escaping would mangle into \u0026.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tree); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// member and object keep fields in proto order; Go maps would sort them.
type member struct {
	key   string
	value any
}

type object []member

var (
	_ json.Marshaler = object(nil)
	_ json.Marshaler = text("")
)

// MarshalJSON writes members in order; the outer encoder only compacts and
// indents.
func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(quoteJSON(m.key))
		buf.WriteByte(':')
		if err := enc.Encode(m.value); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// text is a string value of the tree; it exists to control JSON quoting.
type text string

func (t text) MarshalJSON() ([]byte, error) { return quoteJSON(string(t)), nil }

// quoteJSON quotes s as JSON without HTML escaping, and also escapes what
// encoding/json leaves raw but a YAML parser (which is what Decode reads
// JSON with) refuses or folds: DEL, the C1 controls (U+0085 is a line break
// to YAML) and the non-characters U+FFFE and U+FFFF.
func quoteJSON(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !bytes.ContainsFunc(b, yamlUnsafe) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for _, r := range string(b) {
		if yamlUnsafe(r) {
			out = fmt.Appendf(out, "\\u%04x", r)
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

func yamlUnsafe(r rune) bool {
	return r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfffe || r == 0xffff
}

func toYAML(v any) any {
	switch x := v.(type) {
	case object:
		out := make(yaml.MapSlice, len(x))
		for i, m := range x {
			out[i] = yaml.MapItem{Key: m.key, Value: toYAML(m.value)}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = toYAML(el)
		}
		return out
	case text:
		return string(x)
	default:
		return v
	}
}

func (e Encoder) encodeTree(m proto.Message) (any, error) {
	if m == nil || !m.ProtoReflect().IsValid() {
		return object{}, nil
	}
	return e.encodeMessage(m.ProtoReflect(), false)
}

func (e Encoder) encodeMessage(m protoreflect.Message, complete bool) (any, error) {
	md := m.Descriptor()
	switch {
	case md.FullName() == "google.protobuf.Duration":
		return encodeDuration(m)
	case md.FullName() == "google.protobuf.Timestamp":
		return encodeTimestamp(m)
	case md.ParentFile().Package() == "google.protobuf":
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, md.FullName())
	}
	complete = complete || md.FullName() == completeMessage
	fields := md.Fields()
	out := object{}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		// Unset singular messages and unset optional scalars stay out even
		// in a complete message: writing them would turn "unset" into
		// "empty" on the way back.
		if !m.Has(fd) && (!complete || fd.HasPresence()) {
			continue
		}
		if e.Field != nil {
			if members, ok := e.Field(fd, m.Get(fd)); ok {
				for _, mb := range members {
					out = append(out, member{mb.Key, hookValue(mb.Value)})
				}
				continue
			}
		}
		v, err := e.encodeField(fd, m.Get(fd), complete)
		if err != nil {
			return nil, err
		}
		out = append(out, member{string(fd.Name()), v})
	}
	return out, nil
}

// hookValue makes a hook's strings JSON-quoted like every other string.
func hookValue(v any) any {
	switch x := v.(type) {
	case string:
		return text(x)
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			out[i] = hookValue(el)
		}
		return out
	default:
		return v
	}
}

func (e Encoder) encodeField(fd protoreflect.FieldDescriptor, v protoreflect.Value, complete bool) (any, error) {
	switch {
	case fd.IsList():
		list := v.List()
		out := make([]any, list.Len())
		for i := range out {
			el, err := e.encodeSingle(fd, list.Get(i), complete)
			if err != nil {
				return nil, err
			}
			out[i] = el
		}
		return out, nil
	case fd.IsMap():
		type kv struct {
			key string
			val protoreflect.Value
		}
		var entries []kv
		v.Map().Range(func(k protoreflect.MapKey, val protoreflect.Value) bool {
			entries = append(entries, kv{k.String(), val})
			return true
		})
		slices.SortFunc(entries, func(a, b kv) int { return strings.Compare(a.key, b.key) })
		out := make(object, 0, len(entries))
		for _, entry := range entries {
			val, err := e.encodeSingle(fd.MapValue(), entry.val, complete)
			if err != nil {
				return nil, err
			}
			out = append(out, member{entry.key, val})
		}
		return out, nil
	default:
		return e.encodeSingle(fd, v, complete)
	}
}

func (e Encoder) encodeSingle(fd protoreflect.FieldDescriptor, v protoreflect.Value, complete bool) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return e.encodeMessage(v.Message(), complete)
	case protoreflect.BoolKind:
		return v.Bool(), nil
	case protoreflect.StringKind:
		return text(v.String()), nil
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes()), nil
	case protoreflect.EnumKind:
		// In a policy, the short form an operator types ("close");
		// elsewhere the proto name, as protojson writes it.
		if text, ok := policy.EnumText(fd.Enum(), v.Enum()); ok && complete {
			return text, nil
		}
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name()), nil
		}
		return int64(v.Enum()), nil
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		// JSON has no NaN or infinities and YAML's .nan/.inf do not
		// survive the trip through JSON; protojson's strings do.
		switch {
		case math.IsNaN(f):
			return "NaN", nil
		case math.IsInf(f, 1):
			return "Infinity", nil
		case math.IsInf(f, -1):
			return "-Infinity", nil
		}
		return f, nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint(), nil
	default:
		return v.Int(), nil
	}
}

func encodeDuration(m protoreflect.Message) (any, error) {
	f := m.Descriptor().Fields()
	d := &durationpb.Duration{
		Seconds: m.Get(f.ByName("seconds")).Int(),
		Nanos:   int32(m.Get(f.ByName("nanos")).Int()),
	}
	if err := d.CheckValid(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	// AsDuration saturates beyond ±292 years; only a value that survives
	// the conversion may be written in Go syntax.
	if gd := d.AsDuration(); proto.Equal(durationpb.New(gd), d) {
		return policy.FormatDuration(gd), nil
	}
	b, err := protojson.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return s, nil
}

func encodeTimestamp(m protoreflect.Message) (any, error) {
	f := m.Descriptor().Fields()
	ts := &timestamppb.Timestamp{
		Seconds: m.Get(f.ByName("seconds")).Int(),
		Nanos:   int32(m.Get(f.ByName("nanos")).Int()),
	}
	if err := ts.CheckValid(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return ts.AsTime().UTC().Format(time.RFC3339Nano), nil
}
