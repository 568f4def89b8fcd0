package errclass_test

import (
	"errors"
	"fmt"
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
		name       string
		class      wsfleetv1.ErrorClass
		status     int
		retryAfter bool
		seen, sent uint16
		error      bool
	}{
		{"origin rejected answers 403", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, 403, false, 0, 0, true},
		{"unauthorized answers 401", wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED, 401, false, 0, 0, true},
		{"bad handshake answers 400", wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE, 400, false, 0, 0, true},
		{"rate limited answers 429 with Retry-After", wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, 429, true, 0, 0, true},
		{"capacity answers 503 with Retry-After", wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, 503, true, 0, 0, true},
		{"breaker open answers 503 with Retry-After", wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN, 503, true, 0, 0, true},
		{"a draining node answers 503 with Retry-After and it is expected", wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING, 503, true, 0, 0, false},
		{"heartbeat timeout sends no close frame and is seen as 1006", wsfleetv1.ErrorClass_ERROR_CLASS_HEARTBEAT_TIMEOUT, 0, false, 1006, 0, true},
		{"connection reset is seen as 1006", wsfleetv1.ErrorClass_ERROR_CLASS_CONN_RESET, 0, false, 1006, 0, true},
		{"message too big closes 1009", wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG, 0, false, 1009, 1009, true},
		{"policy violation closes 1008", wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION, 0, false, 1008, 1008, true},
		{"slow consumer closes 1008", wsfleetv1.ErrorClass_ERROR_CLASS_SLOW_CONSUMER, 0, false, 1008, 1008, true},
		{"protocol error closes 1002", wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR, 0, false, 1002, 1002, true},
		{"internal error closes 1011", wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR, 0, false, 1011, 1011, true},
		{"server shutdown closes 1001 and is expected", wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN, 0, false, 1001, 1001, false},
		{"client going away is the client's 1001 and is expected", wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY, 0, false, 1001, 0, false},
		{"normal is the client's 1000 and is expected", wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL, 0, false, 1000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := errclass.Lookup(tt.class)
			if info.HTTPStatus != tt.status || info.RetryAfter != tt.retryAfter || info.CloseCode != tt.seen ||
				info.SentCloseCode != tt.sent || info.Error != tt.error {
				t.Errorf("Lookup(%v) = status %d, Retry-After %t, seen %d, sent %d, error %t; want %d, %t, %d, %d, %t",
					tt.class, info.HTTPStatus, info.RetryAfter, info.CloseCode, info.SentCloseCode, info.Error,
					tt.status, tt.retryAfter, tt.seen, tt.sent, tt.error)
			}
		})
	}
}

// TestSignalAgreesWithTheWireFields keeps the text wsctl prints from
// drifting away from what the node puts on the wire: the signal is spelled
// from the status, close code and Retry-After fields.
func TestSignalAgreesWithTheWireFields(t *testing.T) {
	for _, info := range errclass.All() {
		t.Run(info.Name, func(t *testing.T) {
			switch {
			case info.Kind == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED:
				want := fmt.Sprintf("HTTP %d", info.HTTPStatus)
				if info.AltHTTPStatus != 0 {
					want += fmt.Sprintf("/%d", info.AltHTTPStatus)
				}
				if info.RetryAfter {
					want += " + Retry-After"
				}
				if info.Signal != want {
					t.Errorf("Signal %q, want %q", info.Signal, want)
				}
			case info.SentCloseCode != 0:
				want := fmt.Sprintf("close %d", info.SentCloseCode)
				if info.AltCloseCode != 0 {
					want += fmt.Sprintf("/%d", info.AltCloseCode)
				}
				if info.Signal != want {
					t.Errorf("Signal %q, want %q", info.Signal, want)
				}
			case info.CloseCode == 1006:
				// No close frame reaches the client: the signal names the
				// code the client reports instead.
				if !strings.Contains(info.Signal, "1006") {
					t.Errorf("Signal %q does not name 1006", info.Signal)
				}
			default:
				// A code only the client sends.
				if want := fmt.Sprintf("close %d", info.CloseCode); !strings.HasPrefix(info.Signal, want) {
					t.Errorf("Signal %q does not start with %q", info.Signal, want)
				}
			}
		})
	}
}

func TestWireFieldsFitTheKind(t *testing.T) {
	for _, info := range errclass.All() {
		t.Run(info.Name, func(t *testing.T) {
			if info.Kind == wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
				if info.CloseCode != 0 || info.AltCloseCode != 0 || info.SentCloseCode != 0 {
					t.Errorf("a handshake class carries close codes: %+v", info)
				}
				return
			}
			if info.HTTPStatus != 0 || info.AltHTTPStatus != 0 || info.RetryAfter {
				t.Errorf("a close class carries HTTP fields: %+v", info)
			}
			// What the node sends is what the client sees; 1006 is never
			// sent.
			if info.SentCloseCode != 0 && info.SentCloseCode != info.CloseCode {
				t.Errorf("sends %d but the client is said to see %d", info.SentCloseCode, info.CloseCode)
			}
			if info.SentCloseCode == 1006 || info.AltCloseCode == 1006 {
				t.Errorf("1006 is on the wire: %+v", info)
			}
		})
	}
}

func TestFromCloseCode(t *testing.T) {
	tests := []struct {
		name     string
		code     uint16
		byClient bool
		want     wsfleetv1.ErrorClass
	}{
		{"a client's 1000 is normal", 1000, true, wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL},
		{"a client's 1001 is the page going away", 1001, true, wsfleetv1.ErrorClass_ERROR_CLASS_CLIENT_GOING_AWAY},
		{"the node's 1001 is its shutdown", 1001, false, wsfleetv1.ErrorClass_ERROR_CLASS_SERVER_SHUTDOWN},
		{"a client's 1002 is a protocol error", 1002, true, wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR},
		{"a client's 1003 is a protocol error", 1003, true, wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR},
		{"the node's 1007 is a protocol error", 1007, false, wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR},
		{"a client's 1008 is a policy violation", 1008, true, wsfleetv1.ErrorClass_ERROR_CLASS_POLICY_VIOLATION},
		{"the node's 1009 is a message too big", 1009, false, wsfleetv1.ErrorClass_ERROR_CLASS_MESSAGE_TOO_BIG},
		{"a client's 1011 is an internal error", 1011, true, wsfleetv1.ErrorClass_ERROR_CLASS_INTERNAL_ERROR},
		{"a client's 1005 (no status) is normal", 1005, true, wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL},
		{"a client's application code is normal", 4000, true, wsfleetv1.ErrorClass_ERROR_CLASS_NORMAL},
		{"an unknown code from the node's side is a protocol error", 1015, false, wsfleetv1.ErrorClass_ERROR_CLASS_PROTOCOL_ERROR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errclass.FromCloseCode(tt.code, tt.byClient); got != tt.want {
				t.Errorf("FromCloseCode(%d, %t) = %v, want %v", tt.code, tt.byClient, got, tt.want)
			}
		})
	}
}

// TestFromCloseCodeRoundTrips: every code the table says the node sends
// reads back as a class sending that code, and every code only a client
// sends reads back as its class.
func TestFromCloseCodeRoundTrips(t *testing.T) {
	for _, info := range errclass.All() {
		if info.SentCloseCode != 0 {
			if got := errclass.Lookup(errclass.FromCloseCode(info.SentCloseCode, false)); got.SentCloseCode != info.SentCloseCode {
				t.Errorf("%s sends %d, which reads back as %s sending %d", info.Name, info.SentCloseCode, got.Name, got.SentCloseCode)
			}
		}
		if info.Kind == wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED && info.SentCloseCode == 0 && info.CloseCode != 1006 {
			if got := errclass.FromCloseCode(info.CloseCode, true); got != info.Class {
				t.Errorf("a client's %d reads back as %v, want %s", info.CloseCode, got, info.Name)
			}
		}
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
			if info.HTTPStatus != 0 || info.CloseCode != 0 || info.SentCloseCode != 0 || info.RetryAfter {
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
