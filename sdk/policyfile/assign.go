package policyfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Assignment is one PATH=VALUE: a field of a Policy, named as validation
// errors and diffs name it ("heartbeat.interval"), and its new value as it
// would be written in a policy file.
type Assignment struct {
	Path  string
	Value string
}

// ParseAssignment splits "PATH=VALUE" at the first "=" (a value may hold
// more).
func ParseAssignment(s string) (Assignment, error) {
	path, value, ok := strings.Cut(s, "=")
	path = strings.TrimSpace(path)
	if !ok || path == "" {
		return Assignment{}, &FieldError{Detail: fmt.Sprintf("want PATH=VALUE, got %q", s), Err: ErrSyntax}
	}
	return Assignment{Path: path, Value: value}, nil
}

// Paths returns every field of a Policy an Assignment can set, in proto
// order: the scalars, lists and durations, not the groups holding them.
func Paths() []string {
	var out []string
	var walk func(prefix string, md protoreflect.MessageDescriptor)
	walk = func(prefix string, md protoreflect.MessageDescriptor) {
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			path := join(prefix, string(fd.Name()))
			if isGroup(fd) {
				walk(path, fd.Message())
				continue
			}
			out = append(out, path)
		}
	}
	walk("", policyDescriptor)
	return out
}

var policyDescriptor = (&wsfleetv1.Policy{}).ProtoReflect().Descriptor()

// isGroup reports whether fd holds further fields an assignment can reach:
// a singular message other than a well-known type (a Duration is a value).
func isGroup(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && !fd.IsList() && !fd.IsMap() &&
		fd.Message().ParentFile().Package() != "google.protobuf"
}

// Assign returns a copy of p with every assignment made, in order; p is not
// changed. A value is read as Decode reads the same field in a file:
// durations as "10s", numbers and booleans as YAML writes them, strings as
// they are. A list is given as "a,b" or as a YAML or JSON list
// (`["a","b"]`, `[]` for an empty one). Problems are *FieldError values
// naming the path, joined: ErrUnknownField for a path that is not in Paths
// (the error lists them), ErrInvalidValue for an empty value, and Decode's
// errors for a value the field cannot take.
func Assign(p *wsfleetv1.Policy, assignments []Assignment) (*wsfleetv1.Policy, error) {
	base, err := EncodeJSON(p)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(base))
	dec.UseNumber()
	var tree map[string]any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}

	var errs []error
	for _, a := range assignments {
		names, fd, err := resolve(a.Path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v, err := assignedValue(a, fd)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		node := tree
		for _, name := range names[:len(names)-1] {
			next, ok := node[name].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[name] = next
			}
			node = next
		}
		node[names[len(names)-1]] = v
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	// The tree started complete, so no default fills in anything here.
	// Decode judges the values even after a bad path, so that one run
	// names every problem.
	doc, err := Decode(b)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return doc.Policy, nil
}

// resolve finds the field a path names, accepting proto and JSON names, and
// returns the proto names along the way.
func resolve(path string) ([]string, protoreflect.FieldDescriptor, error) {
	unknown := func() error {
		return &FieldError{Path: path, Err: ErrUnknownField,
			Detail: "unknown field (want one of " + strings.Join(Paths(), ", ") + ")"}
	}
	md := policyDescriptor
	var (
		names []string
		fd    protoreflect.FieldDescriptor
	)
	for _, seg := range strings.Split(path, ".") {
		if md == nil {
			return nil, nil, unknown()
		}
		fd = md.Fields().ByName(protoreflect.Name(seg))
		if fd == nil {
			fd = md.Fields().ByJSONName(seg)
		}
		if fd == nil {
			return nil, nil, unknown()
		}
		names = append(names, string(fd.Name()))
		md = nil
		if isGroup(fd) {
			md = fd.Message()
		}
	}
	if isGroup(fd) {
		return nil, nil, &FieldError{Path: path, Err: ErrUnknownField,
			Detail: "is a group of fields; set them one by one (want one of " + strings.Join(Paths(), ", ") + ")"}
	}
	return names, fd, nil
}

// assignedValue turns a's text into the JSON value a policy file would hold
// for fd, leaving Decode to judge it.
func assignedValue(a Assignment, fd protoreflect.FieldDescriptor) (any, error) {
	text := strings.TrimSpace(a.Value)
	if text == "" {
		detail := "empty value"
		if fd.IsList() {
			detail += " (write [] for an empty list)"
		}
		return nil, &FieldError{Path: a.Path, Detail: detail, Err: ErrInvalidValue}
	}
	if !fd.IsList() {
		return scalarValue(a.Path, fd, text)
	}
	if strings.HasPrefix(text, "[") {
		return yamlValue(a.Path, text)
	}
	parts := strings.Split(text, ",")
	out := make([]any, 0, len(parts))
	for _, part := range parts {
		v, err := scalarValue(a.Path, fd, strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// scalarValue reads one value. Strings and durations are taken as written:
// YAML would turn `*` into an alias and `yes` into true, neither of which
// anyone typing an origin means.
func scalarValue(path string, fd protoreflect.FieldDescriptor, text string) (any, error) {
	if fd.Kind() == protoreflect.StringKind || fd.Message() != nil {
		return text, nil
	}
	return yamlValue(path, text)
}

func yamlValue(path, text string) (any, error) {
	js, err := yaml.YAMLToJSON([]byte(text))
	if err != nil {
		return nil, &FieldError{Path: path, Detail: fmt.Sprintf("cannot read %q: %v", text, err), Err: ErrSyntax}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &FieldError{Path: path, Detail: fmt.Sprintf("cannot read %q: %v", text, err), Err: ErrSyntax}
	}
	if v == nil {
		// In a file null means "not given", hence the default; a set
		// that silently reset a field would surprise.
		return nil, &FieldError{Path: path, Detail: fmt.Sprintf("%q is not a value", text), Err: ErrInvalidValue}
	}
	return v, nil
}
