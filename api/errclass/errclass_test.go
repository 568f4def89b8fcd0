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
			if info.Cause == "" || info.Action == "" || info.Signal == "" || info.UserMessage == "" {
				t.Errorf("Lookup(%v) = %+v, want Signal, Cause, Action and UserMessage set", c, info)
			}
			// The short name is the enum name without its prefix, so that
			// the proto and the table cannot drift apart silently.
			if want := strings.ToLower(strings.TrimPrefix(c.String(), "ERROR_CLASS_")); info.Name != want {
				t.Errorf("Lookup(%v).Name = %q, want %q", c, info.Name, want)
			}
			switch info.Kind {
			case wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED:
				if info.HTTPStatus == 0 || info.CloseCode != 0 {
					t.Errorf("handshake class %v: HTTPStatus %d, CloseCode %d; want a status and no close code", c, info.HTTPStatus, info.CloseCode)
				}
			case wsfleetv1.EventKind_EVENT_KIND_CONNECTION_CLOSED:
				if info.HTTPStatus != 0 || info.CloseCode == 0 {
					t.Errorf("close class %v: HTTPStatus %d, CloseCode %d; want a close code and no status", c, info.HTTPStatus, info.CloseCode)
				}
			case wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT:
				// The node never answered: no status, no close frame sent;
				// at most the 1006 a client reports for a lost connection.
				if info.HTTPStatus != 0 || info.SentCloseCode != 0 || (info.CloseCode != 0 && info.CloseCode != 1006) {
					t.Errorf("client class %v: HTTPStatus %d, CloseCode %d, SentCloseCode %d; want no status and nothing sent", c, info.HTTPStatus, info.CloseCode, info.SentCloseCode)
				}
				if !strings.HasPrefix(info.Name, "client_") {
					t.Errorf("client class %v is named %q, want a client_ prefix", c, info.Name)
				}
			default:
				t.Errorf("class %v has kind %v", c, info.Kind)
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
			case info.Kind == wsfleetv1.EventKind_EVENT_KIND_CLIENT_REPORT:
				// Only the client saw it, and the signal says so.
				if !strings.Contains(info.Signal, "reported by the client") {
					t.Errorf("Signal %q does not say the client reported it", info.Signal)
				}
				if info.CloseCode == 1006 && !strings.Contains(info.Signal, "1006") {
					t.Errorf("Signal %q does not name 1006", info.Signal)
				}
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

// TestRetryableIsFalseExactlyForTheTerminalClasses: a client stops
// reconnecting on these three and only these; everything else is worth
// another attempt.
func TestRetryableIsFalseExactlyForTheTerminalClasses(t *testing.T) {
	terminal := map[wsfleetv1.ErrorClass]bool{
		wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED: true,
		wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED:    true,
		wsfleetv1.ErrorClass_ERROR_CLASS_BAD_HANDSHAKE:   true,
	}
	for _, c := range enumClasses() {
		if got, want := errclass.Lookup(c).Retryable, !terminal[c]; got != want {
			t.Errorf("Lookup(%v).Retryable = %t, want %t", c, got, want)
		}
	}
	if !errclass.Lookup(wsfleetv1.ErrorClass(9999)).Retryable {
		t.Error("a class newer than this build is terminal; a client would give up on a class it cannot read")
	}
}

func TestRejectCloseCodes(t *testing.T) {
	want := map[wsfleetv1.ErrorClass]uint16{
		wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED: 4403,
		wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED:    4401,
		wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED:    4429,
		wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY:        4503,
		wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN:    4502,
		wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING:   4504,
	}
	seen := map[uint16]wsfleetv1.ErrorClass{}
	for _, c := range enumClasses() {
		info := errclass.Lookup(c)
		if info.RejectCloseCode != want[c] {
			t.Errorf("Lookup(%v).RejectCloseCode = %d, want %d", c, info.RejectCloseCode, want[c])
		}
		if info.RejectCloseCode == 0 {
			if _, ok := errclass.FromRejectCloseCode(info.CloseCode); ok && info.CloseCode != 0 {
				t.Errorf("FromRejectCloseCode(%d) claims a close class's code", info.CloseCode)
			}
			continue
		}
		if info.Kind != wsfleetv1.EventKind_EVENT_KIND_HANDSHAKE_REJECTED {
			t.Errorf("%v is not a handshake class but has a reject close code", c)
		}
		if info.RejectCloseCode < 4000 || info.RejectCloseCode > 4999 {
			t.Errorf("%v: reject close code %d is outside the application range 4000-4999", c, info.RejectCloseCode)
		}
		if prev, dup := seen[info.RejectCloseCode]; dup {
			t.Errorf("reject close code %d used by %v and %v", info.RejectCloseCode, prev, c)
		}
		seen[info.RejectCloseCode] = c
		got, ok := errclass.FromRejectCloseCode(info.RejectCloseCode)
		if !ok || got.Class != c {
			t.Errorf("FromRejectCloseCode(%d) = %v, %t; want %v", info.RejectCloseCode, got.Class, ok, c)
		}
	}
	for _, code := range []uint16{0, 1000, 1006, 4000, 4400, 4500, 4999} {
		if got, ok := errclass.FromRejectCloseCode(code); ok {
			t.Errorf("FromRejectCloseCode(%d) = %v, want no class", code, got.Class)
		}
	}
}

func TestRejectReasons(t *testing.T) {
	tests := []struct {
		name       string
		class      wsfleetv1.ErrorClass
		retryAfter int
		want       string
	}{
		{"origin rejected carries its name alone", wsfleetv1.ErrorClass_ERROR_CLASS_ORIGIN_REJECTED, 7, "origin_rejected"},
		{"unauthorized carries its name alone", wsfleetv1.ErrorClass_ERROR_CLASS_UNAUTHORIZED, 0, "unauthorized"},
		{"rate limited carries the wait", wsfleetv1.ErrorClass_ERROR_CLASS_RATE_LIMITED, 2, "rate_limited; retry_after_s=2"},
		{"capacity carries the wait", wsfleetv1.ErrorClass_ERROR_CLASS_CAPACITY, 1, "capacity; retry_after_s=1"},
		{"breaker open carries the wait", wsfleetv1.ErrorClass_ERROR_CLASS_BREAKER_OPEN, 5, "breaker_open; retry_after_s=5"},
		{"node draining carries the wait", wsfleetv1.ErrorClass_ERROR_CLASS_NODE_DRAINING, 3, "node_draining; retry_after_s=3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errclass.RejectReason(errclass.Lookup(tt.class), tt.retryAfter)
			if got != tt.want {
				t.Fatalf("RejectReason = %q, want %q", got, tt.want)
			}
			if len(got) > 123 {
				t.Errorf("reason %q is longer than a close frame holds", got)
			}
			c, wait, ok := errclass.ParseRejectReason(got)
			wantWait := 0
			if errclass.Lookup(tt.class).RetryAfter {
				wantWait = tt.retryAfter
			}
			if !ok || c != tt.class || wait != wantWait {
				t.Errorf("ParseRejectReason(%q) = %v, %d, %t; want %v, %d, true", got, c, wait, ok, tt.class, wantWait)
			}
		})
	}
	for _, bad := range []string{"", "nonsense", "rate_limited; retry_after_s=x", "rate_limited; wait=3", "rate_limited; retry_after_s=-1"} {
		if c, _, ok := errclass.ParseRejectReason(bad); ok {
			t.Errorf("ParseRejectReason(%q) = %v, ok; want not ok", bad, c)
		}
	}
}

func TestUserMessagesAreSentencesOfTheirOwn(t *testing.T) {
	seen := map[string]string{}
	for _, info := range errclass.All() {
		if !strings.HasSuffix(info.UserMessage, ".") {
			t.Errorf("%s: UserMessage %q is not a sentence", info.Name, info.UserMessage)
		}
		// An operator's words do not belong in front of an end user.
		for _, word := range []string{"allowlist", "policy", "node", "heartbeat", "limits."} {
			if strings.Contains(strings.ToLower(info.UserMessage), word) {
				t.Errorf("%s: UserMessage %q talks to the operator (%q)", info.Name, info.UserMessage, word)
			}
		}
		if prev, dup := seen[info.UserMessage]; dup {
			t.Errorf("%s and %s share the UserMessage %q", prev, info.Name, info.UserMessage)
		}
		seen[info.UserMessage] = info.Name
	}
}
