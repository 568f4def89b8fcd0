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
		`{"type":"ping"}`,
		`{"type":"ping","id":"4"}`,
		`{"type":"ping","channel":1,"data":"x"}`,
		`{"type":"subscribe","channel":"c","id":"1"}`,
		`{"type":"publish","channel":"c","data":{"id":"x"},"id":"a.b:c_d-9"}`,
		`{"type":"unsubscribe","channel":"c","id":7}`,
		`{"type":"ping","id":null}`,
		`{"type":"ping","id":""}`,
		`{"type":"ping","id":"a b"}`,
		`{"type":"ping","id":"\u0031"}`,
		`{"type":"ping","id":"\ud800"}`,
		`{"type":"ping","id":"` + strings.Repeat("9", 65) + `"}`,
		`{"type":"nope","id":"r"}`,
		`{"id":"r","channel":"a b","type":"subscribe"}`,
		"{\"type\":\"ping\",\"id\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, ferr := protocol.DecodeClientFrame(b, protocol.Limits{})
		ref := referenceDecode(b)
		if ferr == nil && ref.code != "" || ferr != nil && (ferr.Code != ref.code || ferr.ID != ref.id) {
			t.Fatalf("decoder answered %+v, reference expects code %q with id %q", ferr, ref.code, ref.id)
		}
		if ferr == nil && (frame.Type.String() != ref.typ || frame.Channel != ref.channel || frame.ID != ref.id ||
			frame.Type == protocol.Publish && !bytes.Equal(frame.Data, ref.data)) {
			t.Fatalf("decoded {%v %q %q id %q}, reference %+v", frame.Type, frame.Channel, frame.Data, frame.ID, ref)
		}
		if utf8.Valid(b) {
			// A caller that checked the frame's UTF-8 itself gets the
			// same answer without the decoder checking again.
			checked, cerr := protocol.DecodeClientFrame(b, protocol.Limits{FrameUTF8Checked: true})
			if (cerr == nil) != (ferr == nil) || cerr != nil && *cerr != *ferr ||
				checked.Type != frame.Type || checked.Channel != frame.Channel || checked.ID != frame.ID || !bytes.Equal(checked.Data, frame.Data) {
				t.Fatalf("with FrameUTF8Checked: {%v %q %q} %v, without: {%v %q %q} %v",
					checked.Type, checked.Channel, checked.Data, cerr, frame.Type, frame.Channel, frame.Data, ferr)
			}
		}
		if ferr != nil {
			switch ferr.Code {
			case protocol.CodeBadJSON, protocol.CodeUnknownType, protocol.CodeMissingChannel,
				protocol.CodeBadChannel, protocol.CodeMissingData, protocol.CodeBadID:
			default:
				t.Fatalf("unexpected code %q", ferr.Code)
			}
			// The answer to a bad frame must itself be a valid frame,
			// echoing the id it carries.
			out := protocol.AppendErrorFrame(nil, ferr.Code, ferr.Message, ferr.ID)
			var back struct{ Type, Code, ID string }
			if !json.Valid(out) || !utf8.Valid(out) || json.Unmarshal(out, &back) != nil ||
				back.Type != "error" || back.Code != ferr.Code || back.ID != ferr.ID {
				t.Fatalf("error frame %q is not valid JSON text carrying code %q and id %q", out, ferr.Code, ferr.ID)
			}
			return
		}
		if frame.Type < protocol.Subscribe || frame.Type > protocol.Ping {
			t.Fatalf("accepted frame has type %v", frame.Type)
		}
		if frame.ID != "" {
			if len(frame.ID) > protocol.MaxIDLength || strings.Trim(frame.ID, idChars) != "" {
				t.Fatalf("accepted id %q", frame.ID)
			}
			// Echoed ids need no escaping: they are copied as they came.
			if out := protocol.AppendPongFrame(nil, frame.ID); string(out) != `{"type":"pong","id":"`+frame.ID+`"}` {
				t.Fatalf("pong %s for id %q", out, frame.ID)
			}
		}
		if frame.Type == protocol.Ping {
			if frame.Channel != "" || frame.Data != nil {
				t.Fatalf("ping carries channel %q data %q", frame.Channel, frame.Data)
			}
			return
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
		out := protocol.AppendErrorFrame(nil, protocol.CodeBadJSON, msg, "")
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

// idChars are the characters of a request id.
const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"

// reference is what referenceDecode expects of a frame.
type reference struct {
	typ, channel string
	data         []byte
	// id is the frame's id when it is valid: the accepted frame's, or the
	// one its error carries.
	id string
	// code is the error code the decoder must answer ("" when it must
	// accept).
	code string
}

// referenceDecode is the protocol written the slow, obvious way with
// encoding/json: json.Valid for syntax, a map for exact key matching and
// last-wins repeats, in the decoder's documented order: syntax, id, type,
// channel, data.
func referenceDecode(b []byte) reference {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' || !json.Valid(b) {
		return reference{code: protocol.CodeBadJSON}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return reference{code: protocol.CodeBadJSON}
	}
	var r reference
	if raw, has := m["id"]; has {
		if raw[0] != '"' || json.Unmarshal(raw, &r.id) != nil || r.id == "" ||
			len(r.id) > protocol.MaxIDLength || strings.Trim(r.id, idChars) != "" {
			return reference{code: protocol.CodeBadID}
		}
	}
	fail := func(code string) reference { return reference{code: code, id: r.id} }
	rawType, has := m["type"]
	if !has || rawType[0] != '"' || json.Unmarshal(rawType, &r.typ) != nil {
		return fail(protocol.CodeUnknownType)
	}
	switch r.typ {
	case "ping":
		return r
	case "subscribe", "unsubscribe", "publish":
	default:
		return fail(protocol.CodeUnknownType)
	}
	raw, has := m["channel"]
	switch {
	case !has || string(raw) == "null":
		return fail(protocol.CodeMissingChannel)
	case raw[0] != '"' || json.Unmarshal(raw, &r.channel) != nil:
		return fail(protocol.CodeBadChannel)
	case r.channel == "":
		return fail(protocol.CodeMissingChannel)
	case len(r.channel) > protocol.DefaultMaxChannelLength ||
		strings.Trim(r.channel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:@/-") != "":
		return fail(protocol.CodeBadChannel)
	}
	if r.typ != "publish" {
		return r
	}
	d, has := m["data"]
	if !has {
		return fail(protocol.CodeMissingData)
	}
	if !utf8.Valid(d) {
		return fail(protocol.CodeBadJSON)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, d) != nil {
		return fail(protocol.CodeBadJSON)
	}
	r.data = buf.Bytes()
	return r
}
