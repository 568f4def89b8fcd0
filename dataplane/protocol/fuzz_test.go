package protocol_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsfleet/wsfleet/dataplane/protocol"
)

func FuzzDecodeClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"subscribe","channel":"news"}`,
		`{"type":"unsubscribe","channel":"news"}`,
		`{"type":"publish","channel":"room:1/a@b","data":{"a":[1,2.5,"x",null,true]}}`,
		`{"type":"publish","channel":"c","data":null}`,
		`{"type":"publish","channel":"c","data": { "a b" : "q \" \\ \u00e9" } }`,
		`{"type":"\u0070ublish","channel":"a\/b","data":"\ud83d\ude00"}`,
		`{"type":"publish","channel":"c"}`,
		`{"type":"publish","channel":"","data":1}`,
		`{"type":"subscribe","channel":"a b"}`,
		`{"type":"subscribe","channel":1}`,
		`{"type":1}`,
		`{"channel":"c","type":"nope"}`,
		`{"type":"subscribe","channel":"c","channel":"d","extra":[{}]}`,
		"{\"type\":\"publish\",\"channel\":\"c\",\"data\":\"\xff\"}",
		`[1,2]`,
		`null`,
		``,
		`{`,
		`{"type":"subscribe","channel":"` + strings.Repeat("x", 129) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, ferr := protocol.DecodeClientFrame(b, protocol.Limits{})
		refType, refChannel, refData, refOK := referenceDecode(b)
		if (ferr == nil) != refOK {
			t.Fatalf("decoder accepted = %v (%v), reference accepted = %v", ferr == nil, ferr, refOK)
		}
		if ferr == nil && (frame.Type.String() != refType || frame.Channel != refChannel ||
			frame.Type == protocol.Publish && !bytes.Equal(frame.Data, refData)) {
			t.Fatalf("decoded {%v %q %q}, reference {%s %q %q}", frame.Type, frame.Channel, frame.Data, refType, refChannel, refData)
		}
		if ferr != nil {
			switch ferr.Code {
			case protocol.CodeBadJSON, protocol.CodeUnknownType, protocol.CodeMissingChannel,
				protocol.CodeBadChannel, protocol.CodeMissingData:
			default:
				t.Fatalf("unexpected code %q", ferr.Code)
			}
			// The answer to a bad frame must itself be a valid frame.
			if out := protocol.AppendErrorFrame(nil, ferr.Code, ferr.Message); !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("error frame %q is not valid JSON text", out)
			}
			return
		}
		if frame.Type < protocol.Subscribe || frame.Type > protocol.Publish {
			t.Fatalf("accepted frame has type %v", frame.Type)
		}
		if n := len(frame.Channel); n == 0 || n > protocol.DefaultMaxChannelLength {
			t.Fatalf("accepted channel %q has length %d", frame.Channel, n)
		}
		for i := 0; i < len(frame.Channel); i++ {
			if c := frame.Channel[i]; !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/-", rune(c)) {
				t.Fatalf("accepted channel %q has byte %q", frame.Channel, c)
			}
		}
		if frame.Type != protocol.Publish {
			if frame.Data != nil {
				t.Fatalf("%v frame carries data %q", frame.Type, frame.Data)
			}
			return
		}
		if !json.Valid(frame.Data) || !utf8.Valid(frame.Data) {
			t.Fatalf("accepted data %q is not valid JSON in UTF-8", frame.Data)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, frame.Data); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(compact.Bytes(), frame.Data) {
			t.Fatalf("data %q is not compact (want %q)", frame.Data, compact.Bytes())
		}
		if len(b) > 0 && len(frame.Data) > 0 && &b[0] == &frame.Data[0] {
			t.Fatal("data aliases the input buffer")
		}

		out := protocol.AppendMessageFrame(nil, frame.Channel, frame.Data)
		if !json.Valid(out) {
			t.Fatalf("message frame %q is not valid JSON", out)
		}
		var back struct {
			Type    string          `json:"type"`
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatal(err)
		}
		var backData bytes.Buffer
		if err := json.Compact(&backData, back.Data); err != nil {
			t.Fatal(err)
		}
		if back.Type != "message" || back.Channel != frame.Channel || !bytes.Equal(backData.Bytes(), frame.Data) {
			t.Fatalf("message frame %q decodes to %q %q %q, want message %q %q", out, back.Type, back.Channel, back.Data, frame.Channel, frame.Data)
		}
	})
}

func FuzzAppendErrorFrame(f *testing.F) {
	for _, seed := range []string{"", "plain", `"quoted" \ back`, "a\nb\x00", "héllo", "\xff\xfe", "\u2028"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		out := protocol.AppendErrorFrame(nil, protocol.CodeBadJSON, msg)
		var got struct{ Type, Code, Message string }
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("frame %q: %v", out, err)
		}
		// encoding/json reads invalid UTF-8 as U+FFFD, as the encoder writes it.
		want := strings.ToValidUTF8(msg, "\ufffd")
		if utf8.ValidString(msg) && got.Message != msg || got.Type != "error" || got.Code != protocol.CodeBadJSON {
			t.Fatalf("frame %q decodes to %+v, want message %q", out, got, want)
		}
		if !utf8.Valid(out) {
			t.Fatalf("frame %q is not valid UTF-8", out)
		}
	})
}

// referenceDecode is the protocol written the slow, obvious way with
// encoding/json: a map gives exact key matching and last-wins repeats.
func referenceDecode(b []byte) (typ, channel string, data []byte, ok bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return "", "", nil, false
	}
	if json.Unmarshal(m["type"], &typ) != nil {
		return "", "", nil, false
	}
	switch typ {
	case "subscribe", "unsubscribe", "publish":
	default:
		return "", "", nil, false
	}
	raw, has := m["channel"]
	if !has || raw[0] != '"' || json.Unmarshal(raw, &channel) != nil {
		return "", "", nil, false
	}
	if channel == "" || len(channel) > protocol.DefaultMaxChannelLength ||
		strings.Trim(channel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/-") != "" {
		return "", "", nil, false
	}
	if typ != "publish" {
		return typ, channel, nil, true
	}
	d, has := m["data"]
	if !has || !utf8.Valid(d) {
		return "", "", nil, false
	}
	var buf bytes.Buffer
	if json.Compact(&buf, d) != nil {
		return "", "", nil, false
	}
	return typ, channel, buf.Bytes(), true
}
