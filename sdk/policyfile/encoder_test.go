package policyfile_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

func TestEncoderFieldHookWritesMembersInPlace(t *testing.T) {
	enc := policyfile.Encoder{Field: func(fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]policyfile.Member, bool) {
		if fd.Name() != "kind" {
			return nil, false
		}
		return []policyfile.Member{
			{Key: "kind", Value: "added"},
			{Key: "note", Value: "a <new> & shiny value"},
			{Key: "tags", Value: []any{"x", 1, true}},
		}, true
	}}
	m := &wsfleetv1.DiffPolicyResponse{Changes: []*wsfleetv1.FieldChange{{
		Field: "origins.allow", Kind: wsfleetv1.FieldChange_KIND_ADDED, NewValue: `"https://a.example.com"`,
	}}}
	tests := []struct {
		name string
		enc  func() ([]byte, error)
		want string
	}{
		{"json keeps the field's place and does not escape HTML", func() ([]byte, error) { return enc.JSON(m) }, `{
  "changes": [
    {
      "field": "origins.allow",
      "kind": "added",
      "note": "a <new> & shiny value",
      "tags": [
        "x",
        1,
        true
      ],
      "new_value": "\"https://a.example.com\""
    }
  ]
}
`},
		{"yaml keeps the field's place", func() ([]byte, error) { return enc.YAML(m) }, `changes:
- field: origins.allow
  kind: added
  note: a <new> & shiny value
  tags:
  - x
  - 1
  - true
  new_value: '"https://a.example.com"'
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.enc()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestTheZeroEncoderIsEncodeJSON(t *testing.T) {
	a, err := policyfile.Encoder{}.JSON(richRevision())
	if err != nil {
		t.Fatal(err)
	}
	b, err := policyfile.EncodeJSON(richRevision())
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("Encoder{}.JSON:\n%s\nEncodeJSON:\n%s", a, b)
	}
}
