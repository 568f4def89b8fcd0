package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wsfleet/wsfleet/api/policy"
)

func TestSelector(t *testing.T) {
	zoneA := map[string]string{"zone": "a"}
	zoneAEdge := map[string]string{"zone": "a", "tier": "edge"}
	zoneB := map[string]string{"zone": "b"}
	tests := []struct {
		name    string
		sel     string
		labels  map[string]string
		matches bool
		canon   string
	}{
		{"one equality term matches the node with that label", "zone=a", zoneA, true, "zone=a"},
		{"one equality term does not match another value", "zone=a", zoneB, false, "zone=a"},
		{"an equality term does not match a node without the key", "zone=a", nil, false, "zone=a"},
		{"an inequality term matches a node without the key", "tier!=edge", zoneA, true, "tier!=edge"},
		{"an inequality term does not match the value it excludes", "tier!=edge", zoneAEdge, false, "tier!=edge"},
		{"all terms must hold", "zone=a,tier!=edge", zoneAEdge, false, "zone=a,tier!=edge"},
		{"all terms holding matches", "zone=a,tier!=edge", zoneA, true, "zone=a,tier!=edge"},
		{"spaces around keys and values are trimmed", " zone = a , tier != edge ", zoneA, true, "zone=a,tier!=edge"},
		{"an empty value matches only a label set to empty", "tier=", map[string]string{"tier": ""}, true, "tier="},
		{"an empty value does not match an unset label", "tier=", zoneA, false, "tier="},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := policy.ParseSelector(tc.sel)
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", tc.sel, err)
			}
			if got := sel.Matches(tc.labels); got != tc.matches {
				t.Errorf("Matches(%v) = %v, want %v", tc.labels, got, tc.matches)
			}
			if got := sel.String(); got != tc.canon {
				t.Errorf("String() = %q, want %q", got, tc.canon)
			}
		})
	}
}

func TestParseSelectorRefuses(t *testing.T) {
	tests := []struct {
		name, sel, want string
	}{
		{"an empty selector is refused", "", "empty"},
		{"a blank selector is refused", "  ", "empty"},
		{"a term without an operator is refused", "zone", "want key=value"},
		{"an empty key is refused", "=a", "empty key"},
		{"an empty term is refused", "zone=a,", "want key=value"},
		{"a value with '=' is refused", "zone=a=b", "no ','"},
		{"a key with a space inside is refused", "my zone=a", "no ','"},
		{"a control character is refused", "zone=a\x01", "no ','"},
		{"invalid UTF-8 is refused", "zone=\xff", "UTF-8"},
		{"a long key is refused", strings.Repeat("k", 129) + "=a", "at most 128"},
		{"a long value is refused", "k=" + strings.Repeat("v", 257), "at most 256"},
		{"too many terms are refused", strings.Repeat("a=b,", 16) + "a=b", "at most 16"},
		{"a long selector is refused", strings.Repeat("a", 1100) + "=b", "at most 1024"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.ParseSelector(tc.sel)
			if err == nil {
				t.Fatalf("ParseSelector(%q) succeeded", tc.sel)
			}
			if !errors.Is(err, policy.ErrInvalidSelector) {
				t.Errorf("error %v does not wrap ErrInvalidSelector", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"zone=a", "zone=a,tier!=edge", " a = b ", "a!=", "=", "!=", "a=b=c", "a,b", "a=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := policy.ParseSelector(s)
		if err != nil {
			if !errors.Is(err, policy.ErrInvalidSelector) {
				t.Fatalf("ParseSelector(%q) error %v does not wrap ErrInvalidSelector", s, err)
			}
			return
		}
		again, err := policy.ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", sel.String(), s, err)
		}
		if again.String() != sel.String() {
			t.Fatalf("canonical form not stable: %q then %q", sel.String(), again.String())
		}
	})
}
