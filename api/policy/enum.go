package policy

import (
	"strings"
	"unicode"

	"google.golang.org/protobuf/reflect/protoreflect"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// EnumText is how a policy file and a diff write an enum value: its name
// without the enum's prefix, in lower case (REJECT_MODE_CLOSE is "close"),
// which is what an operator types. A number the enum does not name is
// written as the number.
func EnumText(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) (string, bool) {
	ev := ed.Values().ByNumber(n)
	if ev == nil {
		return "", false
	}
	return strings.ToLower(strings.TrimPrefix(string(ev.Name()), enumValuePrefix(ed))), true
}

// ParseEnumText reads an enum value as a policy file may write it: EnumText's
// short form or the proto value name, in any case. ok is false for anything
// else.
func ParseEnumText(ed protoreflect.EnumDescriptor, s string) (protoreflect.EnumNumber, bool) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if ev := ed.Values().ByName(protoreflect.Name(name)); ev != nil {
		return ev.Number(), true
	}
	if ev := ed.Values().ByName(protoreflect.Name(enumValuePrefix(ed) + name)); ev != nil {
		return ev.Number(), true
	}
	return 0, false
}

// EnumTexts lists an enum's values in EnumText's form, in declaration order.
func EnumTexts(ed protoreflect.EnumDescriptor) []string {
	values := ed.Values()
	out := make([]string, 0, values.Len())
	for i := 0; i < values.Len(); i++ {
		text, _ := EnumText(ed, values.Get(i).Number())
		out = append(out, text)
	}
	return out
}

// enumValuePrefix is the prefix buf's lint rule (ENUM_VALUE_PREFIX) puts in
// front of every value: the enum's name in UPPER_SNAKE_CASE and "_"
// (RejectMode: "REJECT_MODE_").
func enumValuePrefix(ed protoreflect.EnumDescriptor) string {
	var b strings.Builder
	for i, r := range string(ed.Name()) {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	b.WriteByte('_')
	return b.String()
}

// RejectWith is the reject mode a policy asks for, with an unset
// handshake group or an unspecified mode read as REJECT_MODE_HTTP, so
// that a policy written before the field existed keeps its meaning.
func RejectWith(p *wsfleetv1.Policy) wsfleetv1.RejectMode {
	if m := p.GetHandshake().GetRejectWith(); m == wsfleetv1.RejectMode_REJECT_MODE_CLOSE {
		return m
	}
	return wsfleetv1.RejectMode_REJECT_MODE_HTTP
}
