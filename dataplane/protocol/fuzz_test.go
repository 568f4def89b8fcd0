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
		`{"type":"publish","channel":"c","data":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
		`{"type":"publish","channel":"c","data":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		`{"type":"publish","channel":"c","data":{"a":[{"b":{}},[],"x\u00e9",-0.5e+7,true,false,null]}}`,
		"{\"type\":\"publish\",\"channel\":\"c\",\"data\":[\"\xe2\x82\"]}",
		`{"type":"publish","channel":"c","data":01}`,
		`{"type":"publish","channel":"c","data":"\x"}`,
		`{"type":"publish","channel":"c","data":[1,]}`,
		`{"type":"publish","channel":"c","data":{"a" 1}}`,
		`{"type":"subscribe","channel":"c"} x`,
		`{"type":"subscribe","channel":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, ferr := protocol.DecodeClientFrame(b, protocol.Limits{})
		refType, refChannel, refData, refCode := referenceDecode(b)
		if ferr == nil && refCode != "" || ferr != nil && ferr.Code != refCode {
			t.Fatalf("decoder answered %v, reference expects code %q", ferr, refCode)
		}
		if ferr == nil && (frame.Type.String() != refType || frame.Channel != refChannel ||
			frame.Type == protocol.Publish && !bytes.Equal(frame.Data, refData)) {
			t.Fatalf("decoded {%v %q %q}, reference {%s %q %q}", frame.Type, frame.Channel, frame.Data, refType, refChannel, refData)
		}
		if utf8.Valid(b) {
			// A caller that checked the frame's UTF-8 itself gets the
			// same answer without the decoder checking again.
			checked, cerr := protocol.DecodeClientFrame(b, protocol.Limits{FrameUTF8Checked: true})
			if (cerr == nil) != (ferr == nil) || cerr != nil && *cerr != *ferr ||
				checked.Type != frame.Type || checked.Channel != frame.Channel || !bytes.Equal(checked.Data, frame.Data) {
				t.Fatalf("with FrameUTF8Checked: {%v %q %q} %v, without: {%v %q %q} %v",
					checked.Type, checked.Channel, checked.Data, cerr, frame.Type, frame.Channel, frame.Data, ferr)
			}
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
// encoding/json: json.Valid for syntax, a map for exact key matching and
// last-wins repeats. code is the error code the decoder must answer ("" when
// it must accept), in the decoder's documented order: syntax, type,
// channel, data.
func referenceDecode(b []byte) (typ, channel string, data []byte, code string) {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' || !json.Valid(b) {
		return "", "", nil, protocol.CodeBadJSON
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return "", "", nil, protocol.CodeBadJSON
	}
	rawType, has := m["type"]
	if !has || rawType[0] != '"' || json.Unmarshal(rawType, &typ) != nil {
		return "", "", nil, protocol.CodeUnknownType
	}
	switch typ {
	case "subscribe", "unsubscribe", "publish":
	default:
		return "", "", nil, protocol.CodeUnknownType
	}
	raw, has := m["channel"]
	switch {
	case !has || string(raw) == "null":
		return "", "", nil, protocol.CodeMissingChannel
	case raw[0] != '"' || json.Unmarshal(raw, &channel) != nil:
		return "", "", nil, protocol.CodeBadChannel
	case channel == "":
		return "", "", nil, protocol.CodeMissingChannel
	case len(channel) > protocol.DefaultMaxChannelLength ||
		strings.Trim(channel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/-") != "":
		return "", "", nil, protocol.CodeBadChannel
	}
	if typ != "publish" {
		return typ, channel, nil, ""
	}
	d, has := m["data"]
	if !has {
		return "", "", nil, protocol.CodeMissingData
	}
	if !utf8.Valid(d) {
		return "", "", nil, protocol.CodeBadJSON
	}
	var buf bytes.Buffer
	if json.Compact(&buf, d) != nil {
		return "", "", nil, protocol.CodeBadJSON
	}
	return typ, channel, buf.Bytes(), ""
}
