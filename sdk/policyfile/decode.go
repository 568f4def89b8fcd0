package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Document is a decoded policy file.
type Document struct {
	// Policy is never nil after a successful Decode.
	Policy *wsfleetv1.Policy
	// Pool from a PolicyRevision document; "" for a bare policy.
	Pool string
	// Revision from a PolicyRevision document; 0 for a bare policy. It says
	// where the file came from; callers must not take it as an expected
	// revision on their own (a file applied twice would then conflict).
	Revision int64
}

// revisionKey marks a PolicyRevision document. Policy has no field of that
// name, so the test cannot misread a bare policy.
const revisionKey = "policy"

// Decode parses YAML or JSON (JSON is YAML) holding either a bare Policy or a
// PolicyRevision document (detected by a top-level "policy" key). A field the
// document leaves out (or sets to null) takes its documented default
// (api/policy.Default); one it sets, even to an empty list or false, keeps
// that value. Field names
// may be proto (snake_case) or JSON (lowerCamelCase) names. Durations take Go
// syntax (time.ParseDuration: "10s", "1m30s", "500ms") or protojson's
// ("1.500s"). Every unknown field, wrong type and bad value is reported as a
// *FieldError naming its path; several are joined with errors.Join.
//
// The document is first turned into JSON, checked and normalised against the
// message descriptor (durations and timestamps into protojson's canonical
// form), and only then handed to protojson, which stays the authority on the
// data model. The walk exists so every error names where it is in the file,
// which protojson's own errors do not.
func Decode(data []byte) (*Document, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrEmpty
	}
	// Strict: a key given twice is almost always an editing mistake, and
	// the non-strict conversion would silently keep one of them.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	// Numbers stay text so int64 values above 2^53 survive and range checks
	// see what was written.
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	if root == nil {
		return nil, ErrEmpty
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, &FieldError{Detail: "want a mapping at the top level, got " + describe(root), Err: ErrWrongType}
	}

	_, isRevision := top[revisionKey]
	var msg proto.Message
	rev := &wsfleetv1.PolicyRevision{}
	pol := &wsfleetv1.Policy{}
	if isRevision {
		msg = rev
	} else {
		msg = pol
	}

	var w walker
	normal := w.message("", msg.ProtoReflect().Descriptor(), top)
	if isRevision && top[revisionKey] == nil {
		w.fail(revisionKey, ErrWrongType, "want a mapping, got null")
	}
	if len(w.errs) > 0 {
		return nil, errors.Join(w.errs...)
	}
	b, err := json.Marshal(normal)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(b, msg); err != nil {
		// The walk checks everything this package knows how to name; what
		// is left (invalid UTF-8, bad base64) is reported as protojson says.
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	// The walk returns a mapping whenever it reports no error.
	tree, _ := normal.(map[string]any)
	if !isRevision {
		fillDefaults(pol.ProtoReflect(), policy.Default().ProtoReflect(), tree)
		return &Document{Policy: pol}, nil
	}
	if rev.Policy == nil {
		rev.Policy = &wsfleetv1.Policy{}
	}
	polTree, _ := tree[revisionKey].(map[string]any)
	fillDefaults(rev.Policy.ProtoReflect(), policy.Default().ProtoReflect(), polTree)
	return &Document{Policy: rev.GetPolicy(), Pool: rev.GetPool(), Revision: rev.GetRevision()}, nil
}

// fillDefaults sets every field of m that the document does not mention to
// def's value, recursing into the groups it does mention: a file that sets
// only origins.allow gets every other field at its documented default, not
// at zero. What the document says wins, an explicit empty list or false
// included; a null counts as not said. tree is the normalised document for
// m (nil: nothing said). A duration is one value, never merged field by
// field.
func fillDefaults(m, def protoreflect.Message, tree map[string]any) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		v, said := tree[string(fd.Name())]
		if !said {
			if def.Has(fd) {
				m.Set(fd, def.Get(fd))
			}
			continue
		}
		sub, isGroup := v.(map[string]any)
		if isGroup && fd.Message() != nil && !fd.IsList() && !fd.IsMap() && def.Has(fd) {
			fillDefaults(m.Mutable(fd).Message(), def.Get(fd).Message(), sub)
		}
	}
}

// walker checks a generic JSON tree against a message descriptor and builds
// the protojson-ready tree, collecting every problem it finds.
type walker struct {
	errs []error
}

func (w *walker) fail(path string, sentinel error, format string, args ...any) {
	w.errs = append(w.errs, &FieldError{Path: path, Detail: fmt.Sprintf(format, args...), Err: sentinel})
}

// message returns the normalised value of a message field, or nil after
// recording a problem.
func (w *walker) message(path string, md protoreflect.MessageDescriptor, v any) any {
	switch md.FullName() {
	case "google.protobuf.Duration":
		return w.duration(path, v)
	case "google.protobuf.Timestamp":
		return w.timestamp(path, v)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		w.fail(path, ErrWrongType, "want a mapping, got %s", describe(v))
		return nil
	}

	// Walk known fields in declaration order, then unknown keys sorted, so
	// errors come out in the order a reader of the proto expects and the
	// same every time (map iteration order is random).
	type entry struct {
		key string
		fd  protoreflect.FieldDescriptor
	}
	var known []entry
	var unknown []string
	for key := range obj {
		fd := md.Fields().ByName(protoreflect.Name(key))
		if fd == nil {
			fd = md.Fields().ByJSONName(key)
		}
		if fd == nil {
			unknown = append(unknown, key)
			continue
		}
		known = append(known, entry{key, fd})
	}
	slices.SortFunc(known, func(a, b entry) int {
		if c := a.fd.Index() - b.fd.Index(); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	slices.Sort(unknown)

	out := make(map[string]any, len(obj))
	seenOneof := map[protoreflect.FullName]string{}
	for i, e := range known {
		name := string(e.fd.Name())
		fpath := join(path, name)
		if i > 0 && known[i-1].fd == e.fd {
			w.fail(fpath, ErrInvalidValue, "given twice, as %s and %s", known[i-1].key, e.key)
			continue
		}
		val := obj[e.key]
		if val == nil {
			// protojson reads null as "not set"; dropping it here keeps
			// the oneof check below honest.
			continue
		}
		if od := e.fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, ok := seenOneof[od.FullName()]; ok {
				w.fail(fpath, ErrInvalidValue, "only one of %s and %s may be set", other, name)
				continue
			}
			seenOneof[od.FullName()] = name
		}
		if nv := w.field(fpath, e.fd, val); nv != nil {
			out[name] = nv
		}
	}
	for _, key := range unknown {
		w.fail(join(path, key), ErrUnknownField, "unknown field (want one of %s)", fieldNames(md))
	}
	return out
}

func (w *walker) field(path string, fd protoreflect.FieldDescriptor, v any) any {
	switch {
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			w.fail(path, ErrWrongType, "want a list, got %s", describe(v))
			return nil
		}
		out := make([]any, 0, len(list))
		for i, el := range list {
			if nv := w.single(fmt.Sprintf("%s[%d]", path, i), fd, el); nv != nil {
				out = append(out, nv)
			}
		}
		return out
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			w.fail(path, ErrWrongType, "want a mapping, got %s", describe(v))
			return nil
		}
		out := make(map[string]any, len(obj))
		for _, key := range sortedKeys(obj) {
			if nv := w.single(fmt.Sprintf("%s[%q]", path, key), fd.MapValue(), obj[key]); nv != nil {
				out[key] = nv
			}
		}
		return out
	default:
		return w.single(path, fd, v)
	}
}

// single normalises one value of fd's kind (a list element, a map value or a
// singular field).
func (w *walker) single(path string, fd protoreflect.FieldDescriptor, v any) any {
	if v == nil {
		w.fail(path, ErrWrongType, "want %s, got null", kindName(fd))
		return nil
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.message(path, fd.Message(), v)
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			w.fail(path, ErrWrongType, "want true or false, got %s", describe(v))
			return nil
		}
		return v
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			w.fail(path, ErrWrongType, "want a string, got %s (quote it)", describe(v))
			return nil
		}
		return v
	case protoreflect.EnumKind:
		return w.enum(path, fd.Enum(), v)
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return w.float(path, fd.Kind(), v)
	default:
		return w.integer(path, fd.Kind(), v)
	}
}

func (w *walker) duration(path string, v any) any {
	s, ok := v.(string)
	if !ok {
		w.fail(path, ErrInvalidDuration, `invalid duration %s (want a string such as "10s", "1m30s", "500ms")`, plain(v))
		return nil
	}
	var d *durationpb.Duration
	if gd, err := time.ParseDuration(s); err == nil {
		d = durationpb.New(gd)
	} else {
		// protojson's form also covers durations beyond time.Duration's
		// ±292 years, up to the ±10000 years a Duration may hold.
		d = &durationpb.Duration{}
		q, _ := json.Marshal(s)
		if protojson.Unmarshal(q, d) != nil {
			w.fail(path, ErrInvalidDuration, `invalid duration %q (want e.g. "10s", "1m30s", "500ms")`, s)
			return nil
		}
	}
	out, err := protojson.Marshal(d)
	if err != nil {
		w.fail(path, ErrInvalidDuration, "invalid duration %q: out of range", s)
		return nil
	}
	return json.RawMessage(out)
}

func (w *walker) timestamp(path string, v any) any {
	s, ok := v.(string)
	if !ok {
		w.fail(path, ErrInvalidTimestamp, "invalid timestamp %s (want RFC 3339, e.g. 2026-01-02T15:04:05Z)", plain(v))
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		w.fail(path, ErrInvalidTimestamp, "invalid timestamp %q (want RFC 3339, e.g. 2026-01-02T15:04:05Z)", s)
		return nil
	}
	ts := timestamppb.New(t)
	if err := ts.CheckValid(); err != nil {
		w.fail(path, ErrInvalidTimestamp, "invalid timestamp %q: outside years 0001-9999", s)
		return nil
	}
	out, err := protojson.Marshal(ts)
	if err != nil {
		w.fail(path, ErrInvalidTimestamp, "invalid timestamp %q: %v", s, err)
		return nil
	}
	return json.RawMessage(out)
}

func (w *walker) enum(path string, ed protoreflect.EnumDescriptor, v any) any {
	switch x := v.(type) {
	case string:
		// The short lower-case form a policy file writes ("close") or
		// the proto name ("REJECT_MODE_CLOSE"), in any case.
		n, ok := policy.ParseEnumText(ed, x)
		if !ok {
			w.fail(path, ErrInvalidValue, "unknown value %q (want one of %s)", x, enumNames(ed))
			return nil
		}
		return string(ed.Values().ByNumber(n).Name())
	case json.Number:
		// Proto3 enums are open: any int32 is a legal value.
		n, err := strconv.ParseInt(x.String(), 10, 32)
		if err != nil {
			w.fail(path, ErrInvalidValue, "invalid value %s (want one of %s)", x, enumNames(ed))
			return nil
		}
		return json.Number(strconv.FormatInt(n, 10))
	default:
		w.fail(path, ErrWrongType, "want one of %s, got %s", enumNames(ed), describe(v))
		return nil
	}
}

func (w *walker) integer(path string, kind protoreflect.Kind, v any) any {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		// protojson writes 64-bit integers as strings; accept them from
		// any tool that speaks protojson.
		s = x
	default:
		w.fail(path, ErrWrongType, "want an integer, got %s", describe(v))
		return nil
	}
	signed, bits := intKind(kind)
	if signed {
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			n, err = integral[int64](s, bits, true)
		}
		if err != nil {
			w.intError(path, v, s, err)
			return nil
		}
		return json.Number(strconv.FormatInt(n, 10))
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		n, err = integral[uint64](s, bits, false)
	}
	if err != nil {
		w.intError(path, v, s, err)
		return nil
	}
	return json.Number(strconv.FormatUint(n, 10))
}

func (w *walker) intError(path string, v any, s string, err error) {
	if errors.Is(err, strconv.ErrRange) {
		w.fail(path, ErrInvalidValue, "%s is out of range", s)
		return
	}
	w.fail(path, ErrWrongType, "want an integer, got %s", describe(v))
}

// integral accepts what YAML and JSON write for whole numbers in float form
// ("1e3", "100.0"), as protojson does.
func integral[T int64 | uint64](s string, bits int, signed bool) (T, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) {
		return 0, strconv.ErrSyntax
	}
	var lo, hi float64
	if signed {
		lo, hi = -math.Ldexp(1, bits-1), math.Ldexp(1, bits-1)
	} else {
		lo, hi = 0, math.Ldexp(1, bits)
	}
	// hi is exclusive: 2^63 as a float64 does not fit an int64.
	if f < lo || f >= hi {
		return 0, strconv.ErrRange
	}
	return T(f), nil
}

func intKind(k protoreflect.Kind) (signed bool, bits int) {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return true, 32
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return false, 32
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return false, 64
	default:
		return true, 64
	}
}

func (w *walker) float(path string, kind protoreflect.Kind, v any) any {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		switch x {
		case "NaN", "Infinity", "-Infinity":
			return x
		}
		s = x
	default:
		w.fail(path, ErrWrongType, "want a number, got %s", describe(v))
		return nil
	}
	bits := 64
	if kind == protoreflect.FloatKind {
		bits = 32
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			w.fail(path, ErrInvalidValue, "%s is out of range", s)
		} else {
			w.fail(path, ErrWrongType, "want a number, got %s", describe(v))
		}
		return nil
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, bits))
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func fieldNames(md protoreflect.MessageDescriptor) string {
	names := make([]string, md.Fields().Len())
	for i := range names {
		names[i] = string(md.Fields().Get(i).Name())
	}
	return strings.Join(names, ", ")
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	return strings.Join(policy.EnumTexts(ed), ", ")
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Duration":
			return "a duration"
		case "google.protobuf.Timestamp":
			return "a timestamp"
		}
		return "a mapping"
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.StringKind, protoreflect.BytesKind:
		return "a string"
	case protoreflect.EnumKind:
		return "one of " + enumNames(fd.Enum())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	default:
		return "an integer"
	}
}

// describe names a decoded JSON value for an error message.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(x)
	case json.Number:
		return "number " + x.String()
	case bool:
		return "bool " + strconv.FormatBool(x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// plain renders a non-string value as written, for messages that already
// say what was expected.
func plain(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		return "(a list)"
	case map[string]any:
		return "(a mapping)"
	default:
		return fmt.Sprint(v)
	}
}
