package errclass_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// enumClasses lists the classes from the generated descriptor, so a class
// added to the proto without a table entry fails these tests.
func enumClasses() []wsfleetv1.ErrorClass {
	values := wsfleetv1.ErrorClass(0).Descriptor().Values()
	out := make([]wsfleetv1.ErrorClass, 0, values.Len())
	for i := 0; i < values.Len(); i++ {
		if n := values.Get(i).Number(); n != protoreflect.EnumNumber(wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED) {
			out = append(out, wsfleetv1.ErrorClass(n))
		}
	}
	return out
}

func TestEveryEnumValueHasAnEntry(t *testing.T) {
	for _, c := range enumClasses() {
		t.Run(c.String(), func(t *testing.T) {
			info := errclass.Lookup(c)
			if info.Class != c {
				t.Errorf("Lookup(%v).Class = %v", c, info.Class)
			}
			if info.Name == "" || info.Name == "unspecified" {
				t.Errorf("Lookup(%v).Name = %q, want a name of its own", c, info.Name)
			}
			if info.Cause == "" || info.Action == "" || info.Signal == "" {
				t.Errorf("Lookup(%v) = %+v, want Signal, Cause and Action set", c, info)
			}
			// The short name is the enum name without its prefix, so that
			// the proto and the table cannot drift apart silently.
			if want := strings.ToLower(strings.TrimPrefix(c.String(), "ERROR_CLASS_")); info.Name != want {
				t.Errorf("Lookup(%v).Name = %q, want %q", c, info.Name, want)
			}
			handshake := info.Kind == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED
			switch {
			case handshake && (info.HTTPStatus == 0 || info.CloseCode != 0):
				t.Errorf("handshake class %v: HTTPStatus %d, CloseCode %d; want a status and no close code", c, info.HTTPStatus, info.CloseCode)
			case !handshake && (info.HTTPStatus != 0 || info.CloseCode == 0):
				t.Errorf("close class %v: HTTPStatus %d, CloseCode %d; want a close code and no status", c, info.HTTPStatus, info.CloseCode)
			}
		})
	}
}

func TestWireSignals(t *testing.T) {
	tests := []struct {
		name   string
		class  wsfleetv1.ErrorClass
		status int
		code   uint16
		error  bool
	}{
		{"origin rejected answers 403", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, 403, 0, true},
		{"unauthorized answers 401", wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED, 401, 0, true},
		{"bad handshake answers 400", wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, 400, 0, true},
		{"rate limited answers 429", wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, 429, 0, true},
		{"capacity answers 503", wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, 503, 0, true},
		{"breaker open answers 503", wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN, 503, 0, true},
		{"heartbeat timeout is seen as 1006", wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT, 0, 1006, true},
		{"connection reset is seen as 1006", wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, 0, 1006, true},
		{"message too big closes 1009", wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG, 0, 1009, true},
		{"policy violation closes 1008", wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION, 0, 1008, true},
		{"slow consumer closes 1008", wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER, 0, 1008, true},
		{"protocol error closes 1002", wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR, 0, 1002, true},
		{"internal error closes 1011", wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR, 0, 1011, true},
		{"server shutdown closes 1001 and is expected", wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN, 0, 1001, false},
		{"client going away closes 1001 and is expected", wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY, 0, 1001, false},
		{"normal closes 1000 and is expected", wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, 0, 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := errclass.Lookup(tt.class)
			if info.HTTPStatus != tt.status || info.CloseCode != tt.code || info.Error != tt.error {
				t.Errorf("Lookup(%v) = status %d, close %d, error %t; want %d, %d, %t",
					tt.class, info.HTTPStatus, info.CloseCode, info.Error, tt.status, tt.code, tt.error)
			}
		})
	}
}

func TestUnknownClassesAreUnspecified(t *testing.T) {
	tests := []struct {
		name  string
		class wsfleetv1.ErrorClass
	}{
		{"unspecified is unspecified", wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED},
		{"a number newer than this build is unspecified", wsfleetv1.ErrorClass(9999)},
		{"a negative number is unspecified", wsfleetv1.ErrorClass(-1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := errclass.Lookup(tt.class)
			if info.Name != "unspecified" || errclass.Name(tt.class) != "unspecified" {
				t.Errorf("Lookup(%d).Name = %q, Name = %q; want unspecified", tt.class, info.Name, errclass.Name(tt.class))
			}
			if info.Class != tt.class {
				t.Errorf("Lookup(%d).Class = %d, want the class asked for", tt.class, info.Class)
			}
			if info.HTTPStatus != 0 || info.CloseCode != 0 {
				t.Errorf("Lookup(%d) carries a wire signal: %+v", tt.class, info)
			}
		})
	}
}

func TestParseRoundTripsEveryName(t *testing.T) {
	for _, c := range enumClasses() {
		got, err := errclass.Parse(errclass.Name(c))
		if err != nil || got != c {
			t.Errorf("Parse(Name(%v)) = %v, %v; want %v", c, got, err, c)
		}
	}
}

func TestNamesAreUnique(t *testing.T) {
	seen := map[string]wsfleetv1.ErrorClass{}
	for _, info := range errclass.All() {
		if prev, dup := seen[info.Name]; dup {
			t.Errorf("name %q used by %v and %v", info.Name, prev, info.Class)
		}
		seen[info.Name] = info.Class
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  wsfleetv1.ErrorClass
		ok    bool
	}{
		{"the short name parses", "origin_rejected", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, true},
		{"the upper-case short name parses", "ORIGIN_REJECTED", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, true},
		{"the proto enum name parses", "ERROR_CLASS_ORIGIN_REJECTED", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, true},
		{"mixed case and spaces parse", "  Heartbeat_Timeout ", wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT, true},
		{"the empty string is refused", "", 0, false},
		{"unspecified is refused", "unspecified", 0, false},
		{"the unspecified enum name is refused", "ERROR_CLASS_UNSPECIFIED", 0, false},
		{"a misspelling is refused", "orgin_rejected", 0, false},
		{"the bare prefix is refused", "ERROR_CLASS_", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := errclass.Parse(tt.input)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("Parse(%q) = %v, %v; want %v", tt.input, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, errclass.ErrUnknownClass) {
				t.Fatalf("Parse(%q) error = %v, want ErrUnknownClass", tt.input, err)
			}
			if got != wsfleetv1.ErrorClass_ERROR_CLASS_UNSPECIFIED {
				t.Errorf("Parse(%q) = %v with an error, want UNSPECIFIED", tt.input, got)
			}
			for _, name := range errclass.Names() {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("Parse(%q) error %q does not list %q", tt.input, err, name)
				}
			}
		})
	}
}

func TestAllIsInEnumOrderAndACopy(t *testing.T) {
	all := errclass.All()
	want := enumClasses()
	if len(all) != len(want) {
		t.Fatalf("All() has %d entries, the enum %d", len(all), len(want))
	}
	for i, info := range all {
		if info.Class != want[i] {
			t.Errorf("All()[%d].Class = %v, want %v", i, info.Class, want[i])
		}
	}
	all[0].Name = "changed"
	if errclass.All()[0].Name == "changed" {
		t.Error("All() returned the table itself; a caller changed it")
	}
}

func TestNamesMatchAll(t *testing.T) {
	names := errclass.Names()
	all := errclass.All()
	if len(names) != len(all) {
		t.Fatalf("Names() has %d entries, All() %d", len(names), len(all))
	}
	for i := range all {
		if names[i] != all[i].Name {
			t.Errorf("Names()[%d] = %q, All()[%d].Name = %q", i, names[i], i, all[i].Name)
		}
	}
}
