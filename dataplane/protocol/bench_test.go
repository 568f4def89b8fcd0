package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/wsfleet/wsfleet/dataplane/protocol"
)

func BenchmarkDecodeClientFrame(b *testing.B) {
	frames := []struct {
		name  string
		frame string
	}{
		{"small publish", `{"type":"publish","channel":"room:42","data":{"user":"ana","text":"hello there","seq":1234}}`},
		{"subscribe", `{"type":"subscribe","channel":"room:42"}`},
		{"small publish with id", `{"type":"publish","channel":"room:42","data":{"user":"ana","text":"hello there","seq":1234},"id":"1234"}`},
		{"ping", `{"type":"ping"}`},
	}
	for _, fr := range frames {
		b.Run(fr.name, func(b *testing.B) {
			in := []byte(fr.frame)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, ferr := protocol.DecodeClientFrame(in, protocol.Limits{}); ferr != nil {
					b.Fatal(ferr)
				}
			}
		})
	}
}

func BenchmarkAppendMessageFrame(b *testing.B) {
	data := json.RawMessage(`{"user":"ana","text":"hello there","seq":1234}`)
	b.Run("into a reused buffer", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = protocol.AppendMessageFrame(buf[:0], "room:42", data)
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("into a fresh buffer", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			n = len(protocol.AppendMessageFrame(nil, "room:42", data))
		}
		b.SetBytes(int64(n))
	})
}

func BenchmarkAppendErrorFrame(b *testing.B) {
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = protocol.AppendErrorFrame(buf[:0], protocol.CodeBadChannel, `channel has ' ' at byte 4; allowed are A-Z a-z 0-9 and _ . : @ / -`, "")
	}
}
