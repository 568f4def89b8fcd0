package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/dataplane/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDecodeClientFrameAccepts(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		lim   protocol.Limits
		want  protocol.ClientFrame
	}{
		{"a subscribe decodes", `{"type":"subscribe","channel":"news"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "news"}},
		{"an unsubscribe decodes", `{"type":"unsubscribe","channel":"news"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Unsubscribe, Channel: "news"}},
		{"a publish with an object decodes", `{"type":"publish","channel":"news","data":{"a":1}}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "news", Data: json.RawMessage(`{"a":1}`)}},
		{"a publish of null keeps null as data", `{"type":"publish","channel":"c","data":null}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`null`)}},
		{"a publish of a string decodes", `{"type":"publish","channel":"c","data":"hi there"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`"hi there"`)}},
		{"a publish of a number decodes", `{"type":"publish","channel":"c","data":-1.5e3}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`-1.5e3`)}},
		{"data is compacted outside strings only",
			"{\"type\":\"publish\",\"channel\":\"c\",\"data\": { \"a b\" : [ 1 ,\n\t2 ] , \"q\":\"x \\\" y\" } }", protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`{"a b":[1,2],"q":"x \" y"}`)}},
		{"keys may come in any order", `{"data":[1],"channel":"c","type":"publish"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`[1]`)}},
		{"unknown fields are ignored", `{"type":"subscribe","channel":"c","ref":7,"since":{"x":[1]}}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "c"}},
		{"a subscribe carries its id", `{"type":"subscribe","channel":"c","id":"1"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "c", ID: "1"}},
		{"an unsubscribe carries its id", `{"type":"unsubscribe","channel":"c","id":"req-2"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Unsubscribe, Channel: "c", ID: "req-2"}},
		{"a publish carries its id", `{"id":"a.b:c_d-3","type":"publish","channel":"c","data":[1]}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`[1]`), ID: "a.b:c_d-3"}},
		{"a ping decodes", `{"type":"ping"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping}},
		{"a ping carries its id", `{"type":"ping","id":"4"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping, ID: "4"}},
		{"a ping ignores a channel and data, even bad ones", `{"type":"ping","channel":"a b","data":1}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping}},
		{"an id of the maximum length is accepted",
			`{"type":"ping","id":"` + strings.Repeat("9", protocol.MaxIDLength) + `"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping, ID: strings.Repeat("9", protocol.MaxIDLength)}},
		{"every allowed id character is accepted", `{"type":"ping","id":"AZaz09._:-"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping, ID: "AZaz09._:-"}},
		{"escapes in the id are decoded", `{"type":"ping","id":"\u0031\u0032"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping, ID: "12"}},
		{"a repeated id keeps the last value", `{"type":"ping","id":"a b","id":"ok"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping, ID: "ok"}},
		{"a nested id is not the frame's", `{"type":"ping","x":{"id":7}}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Ping}},
		{"data on a subscribe is ignored", `{"type":"subscribe","channel":"c","data":{"x":1}}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "c"}},
		{"whitespace around the frame is fine", " \n{ \"type\" : \"subscribe\" , \"channel\" : \"c\" }\n", protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "c"}},
		{"every allowed channel character is accepted", `{"type":"subscribe","channel":"Az09_.:@/-"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "Az09_.:@/-"}},
		{"escapes in the type are decoded", `{"type":"\u0070ublish","channel":"c","data":1}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`1`)}},
		{"escapes in the channel are decoded", `{"type":"subscribe","channel":"a\/b\u0063"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "a/bc"}},
		{"a channel of the default maximum length is accepted",
			`{"type":"subscribe","channel":"` + strings.Repeat("x", protocol.DefaultMaxChannelLength) + `"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: strings.Repeat("x", protocol.DefaultMaxChannelLength)}},
		{"a larger limit admits a longer channel", `{"type":"subscribe","channel":"` + strings.Repeat("x", 200) + `"}`,
			protocol.Limits{MaxChannelLength: 200},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: strings.Repeat("x", 200)}},
		{"escapes in a key are decoded", `{"\u0074ype":"subscribe","ch\u0061nnel":"c"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "c"}},
		{"a repeated key keeps the last value", `{"type":"subscribe","channel":"a b","channel":"ok"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Subscribe, Channel: "ok"}},
		{"non-ASCII inside data is kept", `{"type":"publish","channel":"c","data":"héllo ✓"}`, protocol.Limits{},
			protocol.ClientFrame{Type: protocol.Publish, Channel: "c", Data: json.RawMessage(`"héllo ✓"`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ferr := protocol.DecodeClientFrame([]byte(tt.frame), tt.lim)
			if ferr != nil {
				t.Fatalf("DecodeClientFrame(%s) error = %v", tt.frame, ferr)
			}
			if got.Type != tt.want.Type || got.Channel != tt.want.Channel || !bytes.Equal(got.Data, tt.want.Data) || got.ID != tt.want.ID {
				t.Errorf("DecodeClientFrame(%s) = {%v %q %s id %q}, want {%v %q %s id %q}", tt.frame,
					got.Type, got.Channel, got.Data, got.ID, tt.want.Type, tt.want.Channel, tt.want.Data, tt.want.ID)
			}
			if (got.Data == nil) != (tt.want.Data == nil) {
				t.Errorf("Data nil = %v, want nil = %v", got.Data == nil, tt.want.Data == nil)
			}
		})
	}
}

func TestDecodeClientFrameRefuses(t *testing.T) {
	tests := []struct {
		name   string
		frame  string
		lim    protocol.Limits
		code   string
		reason string // part of the message
		id     string // the id the error carries
	}{
		{"an empty frame is bad JSON", ``, protocol.Limits{}, protocol.CodeBadJSON, "JSON object", ""},
		{"broken JSON is bad JSON", `{"type":"subscribe",`, protocol.Limits{}, protocol.CodeBadJSON, "not valid JSON", ""},
		{"trailing garbage is bad JSON", `{"type":"subscribe","channel":"c"} x`, protocol.Limits{}, protocol.CodeBadJSON, "not valid JSON", ""},
		{"an array is not a frame", `[{"type":"subscribe"}]`, protocol.Limits{}, protocol.CodeBadJSON, "JSON object", ""},
		{"a string is not a frame", `"subscribe"`, protocol.Limits{}, protocol.CodeBadJSON, "JSON object", ""},
		{"null is not a frame", `null`, protocol.Limits{}, protocol.CodeBadJSON, "JSON object", ""},
		{"a missing type is an unknown type", `{"channel":"c"}`, protocol.Limits{}, protocol.CodeUnknownType, "missing", ""},
		{"keys are case sensitive", `{"TYPE":"subscribe","Channel":"c"}`, protocol.Limits{}, protocol.CodeUnknownType, "missing", ""},
		{"a wrong type name is an unknown type", `{"type":"shout","channel":"c"}`, protocol.Limits{}, protocol.CodeUnknownType, `"shout"`, ""},
		{"type names are case sensitive", `{"type":"Publish","channel":"c","data":1}`, protocol.Limits{}, protocol.CodeUnknownType, `"Publish"`, ""},
		{"a numeric type is an unknown type", `{"type":1,"channel":"c"}`, protocol.Limits{}, protocol.CodeUnknownType, "must be a string", ""},
		{"a null type is an unknown type", `{"type":null,"channel":"c"}`, protocol.Limits{}, protocol.CodeUnknownType, "must be a string", ""},
		{"a long unknown type is quoted only in part", `{"type":"` + strings.Repeat("y", 500) + `","channel":"c"}`,
			protocol.Limits{}, protocol.CodeUnknownType, `"` + strings.Repeat("y", 32) + `"...`, ""},
		{"a long multi-byte unknown type is cut between characters", `{"type":"` + strings.Repeat("€", 20) + `","channel":"c"}`,
			protocol.Limits{}, protocol.CodeUnknownType, `"` + strings.Repeat("€", 10) + `"...`, ""},
		{"the type is reported before the channel whatever the key order", `{"channel":"a b","type":"nope"}`,
			protocol.Limits{}, protocol.CodeUnknownType, `"nope"`, ""},
		{"a missing channel is reported", `{"type":"subscribe"}`, protocol.Limits{}, protocol.CodeMissingChannel, "missing", ""},
		{"a null channel is a missing channel", `{"type":"subscribe","channel":null}`, protocol.Limits{}, protocol.CodeMissingChannel, "missing", ""},
		{"an empty channel is a missing channel", `{"type":"unsubscribe","channel":""}`, protocol.Limits{}, protocol.CodeMissingChannel, "empty", ""},
		{"a numeric channel is a bad channel", `{"type":"subscribe","channel":42}`, protocol.Limits{}, protocol.CodeBadChannel, "must be a string", ""},
		{"an object channel is a bad channel", `{"type":"subscribe","channel":{}}`, protocol.Limits{}, protocol.CodeBadChannel, "must be a string", ""},
		{"a space in a channel is refused", `{"type":"subscribe","channel":"a b"}`, protocol.Limits{}, protocol.CodeBadChannel, `' ' at byte 1`, ""},
		{"a quote in a channel is refused", `{"type":"subscribe","channel":"a\"b"}`, protocol.Limits{}, protocol.CodeBadChannel, `'"' at byte 1`, ""},
		{"an escaped control character in a channel is refused", `{"type":"subscribe","channel":"a\nb"}`, protocol.Limits{}, protocol.CodeBadChannel, `'\n' at byte 1`, ""},
		{"a non-ASCII channel is refused", `{"type":"subscribe","channel":"café"}`, protocol.Limits{}, protocol.CodeBadChannel, "byte 0xc3 at byte 3", ""},
		{"a channel over the default limit is refused",
			`{"type":"subscribe","channel":"` + strings.Repeat("x", protocol.DefaultMaxChannelLength+1) + `"}`,
			protocol.Limits{}, protocol.CodeBadChannel, "129 bytes long; at most 128", ""},
		{"a channel over a custom limit is refused", `{"type":"subscribe","channel":"abcdef"}`,
			protocol.Limits{MaxChannelLength: 5}, protocol.CodeBadChannel, "at most 5", ""},
		{"a publish without data is refused", `{"type":"publish","channel":"c"}`, protocol.Limits{}, protocol.CodeMissingData, "null is allowed", ""},
		{"the channel is reported before the data", `{"type":"publish","channel":"a b"}`, protocol.Limits{}, protocol.CodeBadChannel, "at byte 1", ""},
		{"data with invalid UTF-8 is refused", "{\"type\":\"publish\",\"channel\":\"c\",\"data\":\"\xff\"}", protocol.Limits{}, protocol.CodeBadJSON, "UTF-8", ""},
		{"a numeric id is a bad id", `{"type":"subscribe","channel":"c","id":7}`, protocol.Limits{}, protocol.CodeBadID, "must be a string", ""},
		{"a null id is a bad id", `{"type":"ping","id":null}`, protocol.Limits{}, protocol.CodeBadID, "must be a string", ""},
		{"an object id is a bad id", `{"type":"ping","id":{"n":1}}`, protocol.Limits{}, protocol.CodeBadID, "must be a string", ""},
		{"an empty id is a bad id", `{"type":"ping","id":""}`, protocol.Limits{}, protocol.CodeBadID, "empty", ""},
		{"an id over 64 bytes is a bad id", `{"type":"ping","id":"` + strings.Repeat("9", protocol.MaxIDLength+1) + `"}`,
			protocol.Limits{}, protocol.CodeBadID, "65 bytes long; at most 64", ""},
		{"a space in an id is refused", `{"type":"ping","id":"a b"}`, protocol.Limits{}, protocol.CodeBadID, `' ' at byte 1`, ""},
		{"a slash in an id is refused", `{"type":"ping","id":"a/b"}`, protocol.Limits{}, protocol.CodeBadID, `'/' at byte 1`, ""},
		{"an escaped quote in an id is refused", `{"type":"ping","id":"a\"b"}`, protocol.Limits{}, protocol.CodeBadID, `'"' at byte 1`, ""},
		{"a non-ASCII id is refused", `{"type":"ping","id":"é"}`, protocol.Limits{}, protocol.CodeBadID, "byte 0xc3 at byte 0", ""},
		{"the id is reported before the type", `{"type":"nope","id":7}`, protocol.Limits{}, protocol.CodeBadID, "must be a string", ""},
		{"a missing type answers with the id", `{"channel":"c","id":"r1"}`, protocol.Limits{}, protocol.CodeUnknownType, "missing", "r1"},
		{"an unknown type answers with the id", `{"type":"pong","id":"r2"}`, protocol.Limits{}, protocol.CodeUnknownType, `"pong"`, "r2"},
		{"a missing channel answers with the id", `{"type":"subscribe","id":"r3"}`, protocol.Limits{}, protocol.CodeMissingChannel, "missing", "r3"},
		{"a bad channel answers with the id", `{"type":"subscribe","channel":"a b","id":"r4"}`, protocol.Limits{}, protocol.CodeBadChannel, "at byte 1", "r4"},
		{"a missing data answers with the id", `{"type":"publish","channel":"c","id":"r5"}`, protocol.Limits{}, protocol.CodeMissingData, "null is allowed", "r5"},
		{"invalid UTF-8 in data answers with the id", "{\"type\":\"publish\",\"channel\":\"c\",\"id\":\"r6\",\"data\":\"\xff\"}",
			protocol.Limits{}, protocol.CodeBadJSON, "UTF-8", "r6"},
		{"bad JSON answers without an id", `{"type":"ping","id":"r7"`, protocol.Limits{}, protocol.CodeBadJSON, "not valid JSON", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ferr := protocol.DecodeClientFrame([]byte(tt.frame), tt.lim)
			if ferr == nil {
				t.Fatalf("DecodeClientFrame(%s) = %+v, want error %s", tt.frame, got, tt.code)
			}
			if ferr.Code != tt.code {
				t.Errorf("code = %q, want %q (message %q)", ferr.Code, tt.code, ferr.Message)
			}
			if !strings.Contains(ferr.Message, tt.reason) {
				t.Errorf("message = %q, want it to contain %q", ferr.Message, tt.reason)
			}
			if ferr.ID != tt.id {
				t.Errorf("error id = %q, want %q", ferr.ID, tt.id)
			}
			if !errors.Is(ferr, protocol.ErrBadFrame) {
				t.Errorf("errors.Is(%v, ErrBadFrame) = false", ferr)
			}
			if got.Type != 0 || got.Channel != "" || got.Data != nil || got.ID != "" {
				t.Errorf("frame = %+v, want the zero frame with an error", got)
			}
		})
	}
}

func TestFrameErrorText(t *testing.T) {
	err := &protocol.FrameError{Code: protocol.CodeBadChannel, Message: "too long"}
	if got, want := err.Error(), "protocol: bad_channel: too long"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	b := protocol.BinaryFrameError()
	if b.Code != protocol.CodeBinaryNotSupported || b.Message == "" {
		t.Errorf("BinaryFrameError() = %+v, want code %q and a message", b, protocol.CodeBinaryNotSupported)
	}
}

func TestFrameTypeString(t *testing.T) {
	tests := []struct {
		name string
		t    protocol.FrameType
		want string
	}{
		{"subscribe has its wire name", protocol.Subscribe, "subscribe"},
		{"unsubscribe has its wire name", protocol.Unsubscribe, "unsubscribe"},
		{"publish has its wire name", protocol.Publish, "publish"},
		{"ping has its wire name", protocol.Ping, "ping"},
		{"the zero type is shown by number", 0, "FrameType(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

type messageFrame struct {
	Type    string          `json:"type"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func TestAppendMessageFrame(t *testing.T) {
	tests := []struct {
		name     string
		channel  string
		data     string
		wantData string
	}{
		{"an object round-trips", "news", `{"a":[1,2,{"b":null}]}`, `{"a":[1,2,{"b":null}]}`},
		{"null round-trips", "c", `null`, `null`},
		{"a string with escapes round-trips", "room:1/a@b", `"x \"y\" \u00e9"`, `"x \"y\" \u00e9"`},
		{"empty data is written as null", "c", ``, `null`},
		{"a channel that needs escaping is escaped", "a\"b\\c\n", `1`, `1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep:")
			out := protocol.AppendMessageFrame(prefix, tt.channel, json.RawMessage(tt.data))
			if !bytes.HasPrefix(out, []byte("keep:")) {
				t.Fatalf("AppendMessageFrame dropped what dst held: %q", out)
			}
			frame := out[len("keep:"):]
			if !json.Valid(frame) {
				t.Fatalf("frame %s is not valid JSON", frame)
			}
			var got messageFrame
			if err := json.Unmarshal(frame, &got); err != nil {
				t.Fatal(err)
			}
			if got.Type != "message" || got.Channel != tt.channel || string(got.Data) != tt.wantData {
				t.Errorf("decoded %+v (data %s), want type message, channel %q, data %s", got, got.Data, tt.channel, tt.wantData)
			}
		})
	}
}

func TestAppendMessageFrameIsExact(t *testing.T) {
	got := string(protocol.AppendMessageFrame(nil, "news", json.RawMessage(`{"a":1}`)))
	if want := `{"type":"message","channel":"news","data":{"a":1}}`; got != want {
		t.Errorf("AppendMessageFrame = %s, want %s", got, want)
	}
}

func TestAppendErrorFrame(t *testing.T) {
	tests := []struct {
		name    string
		message string
		want    string // what the message decodes to
	}{
		{"plain text is copied", "channel is empty", "channel is empty"},
		{"quotes and backslashes are escaped", `say "hi" \o/`, `say "hi" \o/`},
		{"control characters are escaped", "a\nb\tc\r\x00\x1f", "a\nb\tc\r\x00\x1f"},
		{"non-ASCII text is kept", "héllo ✓ 𝄞", "héllo ✓ 𝄞"},
		{"invalid UTF-8 becomes the replacement character", "a\xffb\xc3", "a\ufffdb\ufffd"},
		{"JavaScript line terminators survive", "a\u2028b\u2029c", "a\u2028b\u2029c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := protocol.AppendErrorFrame(nil, protocol.CodeBadJSON, tt.message, "")
			if !json.Valid(out) {
				t.Fatalf("frame %q is not valid JSON", out)
			}
			var got struct{ Type, Code, Message string }
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.Type != "error" || got.Code != protocol.CodeBadJSON || got.Message != tt.want {
				t.Errorf("decoded %+v, want type error, code %q, message %q", got, protocol.CodeBadJSON, tt.want)
			}
			if bytes.ContainsAny(out, "\n\r\u2028\u2029") {
				t.Errorf("frame %q holds a raw line terminator", out)
			}
		})
	}
}

func TestAppendErrorFrameIsExact(t *testing.T) {
	tests := []struct {
		name, id, want string
	}{
		{"without an id there is no id field", "", `x{"type":"error","code":"bad_json","message":"oops"}`},
		{"an id is echoed last", "3", `x{"type":"error","code":"bad_json","message":"oops","id":"3"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(protocol.AppendErrorFrame([]byte("x"), "bad_json", "oops", tt.id)); got != tt.want {
				t.Errorf("AppendErrorFrame = %s, want %s", got, tt.want)
			}
		})
	}
}

// A decoded publish re-encoded for subscribers gives them the same data.
func TestDecodedPublishReencodes(t *testing.T) {
	f, ferr := protocol.DecodeClientFrame([]byte(`{"type":"publish","channel":"c","data":{ "n" : [1, 2] }}`), protocol.Limits{})
	if ferr != nil {
		t.Fatal(ferr)
	}
	out := protocol.AppendMessageFrame(nil, f.Channel, f.Data)
	if want := `{"type":"message","channel":"c","data":{"n":[1,2]}}`; string(out) != want {
		t.Errorf("frame = %s, want %s", out, want)
	}
}

func TestAppendAckFrameIsExact(t *testing.T) {
	tests := []struct {
		name, kind, channel, id, want string
	}{
		{"a subscribed without an id", protocol.AckSubscribed, "c", "", `{"type":"subscribed","channel":"c"}`},
		{"a subscribed echoes the id", protocol.AckSubscribed, "c", "1", `{"type":"subscribed","channel":"c","id":"1"}`},
		{"an unsubscribed echoes the id", protocol.AckUnsubscribed, "c", "2", `{"type":"unsubscribed","channel":"c","id":"2"}`},
		{"a published echoes the id", protocol.AckPublished, "c", "3", `{"type":"published","channel":"c","id":"3"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(protocol.AppendAckFrame(nil, tt.kind, tt.channel, tt.id)); got != tt.want {
				t.Errorf("AppendAckFrame = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestAppendPongFrameIsExact(t *testing.T) {
	tests := []struct {
		name, id, want string
	}{
		{"a pong without an id", "", `{"type":"pong"}`},
		{"a pong echoes the id", "4", `{"type":"pong","id":"4"}`},
		{"an id that needs escaping is escaped", "a\"b", `{"type":"pong","id":"a\"b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(protocol.AppendPongFrame([]byte("x"), tt.id)); got != "x"+tt.want {
				t.Errorf("AppendPongFrame = %s, want x%s", got, tt.want)
			}
		})
	}
}

func TestAppendAckFrameIsValidJSON(t *testing.T) {
	for _, ch := range []string{"news", "a/b:c@d", `needs "escaping"`} {
		b := protocol.AppendAckFrame(nil, protocol.AckSubscribed, ch, "")
		var v struct{ Type, Channel string }
		if err := json.Unmarshal(b, &v); err != nil || v.Type != protocol.AckSubscribed || v.Channel != ch {
			t.Fatalf("%q → %s (%v)", ch, b, err)
		}
	}
}

func TestAppendWelcomeFrame(t *testing.T) {
	tests := []struct {
		name string
		w    protocol.Welcome
		want string
	}{
		{"the fields are written in the contract's order",
			protocol.Welcome{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", NodeID: "node-1", HeartbeatInterval: 25 * time.Second, HeartbeatTimeout: time.Minute},
			`{"type":"welcome","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","node_id":"node-1","heartbeat_interval_ms":25000,"heartbeat_timeout_ms":60000}`},
		{"durations are whole milliseconds",
			protocol.Welcome{TraceID: "t", NodeID: "n", HeartbeatInterval: 1500*time.Millisecond + 999*time.Microsecond, HeartbeatTimeout: 0},
			`{"type":"welcome","trace_id":"t","node_id":"n","heartbeat_interval_ms":1500,"heartbeat_timeout_ms":0}`},
		{"a node id that needs escaping is escaped",
			protocol.Welcome{TraceID: "t", NodeID: "host \"a\"\n", HeartbeatInterval: time.Second, HeartbeatTimeout: 2 * time.Second},
			`{"type":"welcome","trace_id":"t","node_id":"host \"a\"\n","heartbeat_interval_ms":1000,"heartbeat_timeout_ms":2000}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := protocol.AppendWelcomeFrame([]byte("keep:"), tt.w)
			if got := strings.TrimPrefix(string(out), "keep:"); got != tt.want {
				t.Fatalf("AppendWelcomeFrame = %s, want %s", out, tt.want)
			}
			var back struct {
				Type, TraceID, NodeID string
				Interval, Timeout     int64
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(out[len("keep:"):], &raw); err != nil {
				t.Fatalf("not valid JSON: %v", err)
			}
			for key, into := range map[string]any{"type": &back.Type, "trace_id": &back.TraceID, "node_id": &back.NodeID,
				"heartbeat_interval_ms": &back.Interval, "heartbeat_timeout_ms": &back.Timeout} {
				if err := json.Unmarshal(raw[key], into); err != nil {
					t.Fatalf("%s: %v", key, err)
				}
			}
			if back.Type != "welcome" || back.TraceID != tt.w.TraceID || back.NodeID != tt.w.NodeID ||
				back.Interval != tt.w.HeartbeatInterval.Milliseconds() || back.Timeout != tt.w.HeartbeatTimeout.Milliseconds() {
				t.Fatalf("decodes to %+v, want %+v", back, tt.w)
			}
		})
	}
}

// The frames the node builds per request cost one allocation each when
// appended to nil, not one per doubling of the buffer.
func TestFramesAppendedToNilAllocateOnce(t *testing.T) {
	tests := []struct {
		name  string
		build func() []byte
	}{
		{"an ack with an id", func() []byte { return protocol.AppendAckFrame(nil, protocol.AckPublished, "room:42", "1234") }},
		{"a pong with an id", func() []byte { return protocol.AppendPongFrame(nil, "1234") }},
		{"an error with an id", func() []byte {
			return protocol.AppendErrorFrame(nil, protocol.CodeBadChannel, "channel has ' ' at byte 1", "1234")
		}},
		{"a welcome", func() []byte {
			return protocol.AppendWelcomeFrame(nil, protocol.Welcome{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", NodeID: "node-1",
				HeartbeatInterval: 25 * time.Second, HeartbeatTimeout: time.Minute})
		}},
		{"a message", func() []byte { return protocol.AppendMessageFrame(nil, "room:42", json.RawMessage(`{"a":1}`)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, func() { _ = tt.build() }); got != 1 {
				t.Errorf("%v allocations, want 1", got)
			}
		})
	}
}
