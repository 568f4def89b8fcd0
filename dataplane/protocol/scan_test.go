package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzScanMatchesJSONValid holds the scanner to encoding/json on arbitrary
// input: nested as a member's value of a frame (any JSON value), and as a
// whole frame when it starts like one.
func FuzzScanMatchesJSONValid(f *testing.F) {
	for _, seed := range []string{
		`1`, `-0`, `-`, `0.`, `.5`, `1e`, `1E+2`, `01`, `-01`, `1.5e-3`, `2.`, `1e+`,
		`"a"`, `"\u12"`, `"\u12g4"`, `"\/\b\f\n\r\t\"\\"`, `"\a"`, "\"\x01\"", "\"\x7f\xff\"", `"`,
		`true`, `tru`, `truex`, `false`, `nul`, `null`,
		`[]`, `[ ]`, `[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `[`, `]`,
		`{}`, `{ }`, `{"a":1}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{1:2}`, `{"a":1 "b":2}`, `{"a":[{"b":{}}]}`,
		" \t\r\n1 ", "\v1", `{"type":"subscribe"} `, `{"a":1}}`, `{"a":1}x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		member := append(append([]byte(`{"v":`), b...), '}')
		if _, ok := scanFrame(member, 0); ok != json.Valid(member) {
			t.Fatalf("scanner says valid = %v for %q, json.Valid says %v", ok, member, !ok)
		}
		if i := skipSpace(b, 0); i < len(b) && b[i] == '{' {
			if _, ok := scanFrame(b, i); ok != json.Valid(b) {
				t.Fatalf("scanner says valid = %v for %q, json.Valid says %v", ok, b, !ok)
			}
		}
	})
}

func TestScanNestingLimitIsEncodingJSONs(t *testing.T) {
	nested := func(open, inner, close string, levels int) []byte {
		return []byte(`{"type":"publish","channel":"c","data":` + strings.Repeat(open, levels) + inner + strings.Repeat(close, levels) + `}`)
	}
	tests := []struct {
		name  string
		frame []byte
		valid bool
	}{
		// The frame's own object is the first level.
		{"arrays nested to the limit are valid", nested("[", "", "]", maxDepth-1), true},
		{"arrays nested one past the limit are not", nested("[", "", "]", maxDepth), false},
		{"objects nested to the limit are valid", nested(`{"a":`, "1", "}", maxDepth-1), true},
		{"objects nested one past the limit are not", nested(`{"a":`, "1", "}", maxDepth), false},
		{"an empty container one past the limit is not valid",
			nested("[", "{}", "]", maxDepth-1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if json.Valid(tt.frame) != tt.valid {
				t.Fatalf("json.Valid = %v; the test's expectation is wrong", !tt.valid)
			}
			if _, ok := scanFrame(tt.frame, 0); ok != tt.valid {
				t.Errorf("scanner says valid = %v, want %v", ok, tt.valid)
			}
		})
	}
}

func TestScanFrameFindsTheTopLevelValues(t *testing.T) {
	tests := []struct {
		name               string
		frame              string
		typ, channel, data string
		high, spaced       bool
	}{
		{"keys are found in any order", `{"data":[1],"channel":"c","type":"publish"}`, `"publish"`, `"c"`, `[1]`, false, false},
		{"nested keys of the same name are not top-level", `{"x":{"type":"no","data":0},"type":"subscribe"}`, `"subscribe"`, ``, ``, false, false},
		{"a repeated key keeps its last value", `{"data":"\u00e9 ","data":[ 1 ]}`, ``, ``, `[ 1 ]`, false, true},
		{"non-ASCII in data is noticed", `{"data":{"k":"é"}}`, ``, ``, `{"k":"é"}`, true, false},
		{"whitespace inside data is noticed", "{\"data\":{\"k\" :\n1}}", ``, ``, "{\"k\" :\n1}", false, true},
		{"whitespace around data is not part of it", `{"data" :  {"k":1}  }`, ``, ``, `{"k":1}`, false, false},
		{"an escaped key is decoded", `{"\u0064ata":1}`, ``, ``, `1`, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := scanFrame([]byte(tt.frame), 0)
			if !ok {
				t.Fatal("scanner refused a valid frame")
			}
			if string(f.typ) != tt.typ || string(f.channel) != tt.channel || string(f.data) != tt.data {
				t.Errorf("got type %q channel %q data %q, want %q %q %q", f.typ, f.channel, f.data, tt.typ, tt.channel, tt.data)
			}
			if f.dataInfo.high != tt.high || f.dataInfo.spaced != tt.spaced {
				t.Errorf("data info %+v, want high %v spaced %v", f.dataInfo, tt.high, tt.spaced)
			}
			if tt.data != "" && !bytes.Equal(appendCompact(nil, f.data), f.data) != tt.spaced {
				t.Errorf("spaced = %v but compacting changes %q: %v", tt.spaced, f.data, !tt.spaced)
			}
		})
	}
}

func TestScanFrameFindsTheID(t *testing.T) {
	tests := []struct {
		name, frame, id string
	}{
		{"a top-level id is found", `{"type":"ping","id":"7"}`, `"7"`},
		{"an id of any JSON type is found for the decoder to refuse", `{"id":{"a":[1]},"type":"ping"}`, `{"a":[1]}`},
		{"a nested id is not the frame's", `{"type":"publish","data":{"id":"x"}}`, ``},
		{"a repeated id keeps its last value", `{"id":"a","id":"b"}`, `"b"`},
		{"an escaped key is decoded", `{"\u0069d":"c"}`, `"c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := scanFrame([]byte(tt.frame), 0)
			if !ok {
				t.Fatal("scanner refused a valid frame")
			}
			if string(f.id) != tt.id {
				t.Errorf("id %q, want %q", f.id, tt.id)
			}
		})
	}
}
