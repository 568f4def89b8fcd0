package admission

import (
	"net/http"
	"strings"
	"testing"
)

func TestValidateUpgrade(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *http.Request)
		status int    // 0: valid
		reason string // substring of Reason
	}{
		{name: "a browser's upgrade is valid", mutate: func(*http.Request) {}},
		{name: "Connection listing upgrade among other tokens is valid", mutate: func(r *http.Request) {
			r.Header.Set("Connection", "keep-alive, Upgrade")
		}},
		{name: "Connection tokens in any case and spacing are valid", mutate: func(r *http.Request) {
			r.Header.Set("Connection", "keep-alive ,\tUPGRADE ")
		}},
		{name: "Connection split over two header lines is valid", mutate: func(r *http.Request) {
			r.Header.Set("Connection", "keep-alive")
			r.Header.Add("Connection", "upgrade")
		}},
		{name: "Upgrade in mixed case is valid", mutate: func(r *http.Request) { r.Header.Set("Upgrade", "WebSocket") }},
		{name: "POST gets 400", status: 400, reason: "method POST is not GET", mutate: func(r *http.Request) { r.Method = http.MethodPost }},
		{name: "HTTP/1.0 gets 400", status: 400, reason: "older than HTTP/1.1", mutate: func(r *http.Request) {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
		}},
		{name: "a proxy that stripped Connection gets 400", status: 400, reason: `Connection header "" has no "upgrade" token`, mutate: func(r *http.Request) {
			r.Header.Del("Connection")
		}},
		{name: "a token that only contains upgrade gets 400", status: 400, reason: "Connection", mutate: func(r *http.Request) {
			r.Header.Set("Connection", "upgraded")
		}},
		{name: "a proxy that stripped Upgrade gets 400", status: 400, reason: `Upgrade header "" has no "websocket" token`, mutate: func(r *http.Request) {
			r.Header.Del("Upgrade")
		}},
		{name: "an Upgrade to another protocol gets 400", status: 400, reason: "Upgrade", mutate: func(r *http.Request) {
			r.Header.Set("Upgrade", "h2c")
		}},
		{name: "version 8 gets 426", status: 426, reason: `Sec-WebSocket-Version "8" is not 13`, mutate: func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Version", "8")
		}},
		{name: "a missing version gets 426", status: 426, reason: "Sec-WebSocket-Version", mutate: func(r *http.Request) {
			r.Header.Del("Sec-WebSocket-Version")
		}},
		{name: "a missing key gets 400", status: 400, reason: "Sec-WebSocket-Key", mutate: func(r *http.Request) {
			r.Header.Del("Sec-WebSocket-Key")
		}},
		{name: "a key that is not base64 gets 400", status: 400, reason: "not base64 of 16 bytes", mutate: func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==")
		}},
		{name: "a key of 15 bytes gets 400", status: 400, reason: "Sec-WebSocket-Key", mutate: func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA")
		}},
		{name: "a key of 17 bytes gets 400", status: 400, reason: "Sec-WebSocket-Key", mutate: func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA=")
		}},
		{name: "two keys get 400", status: 400, reason: "Sec-WebSocket-Key", mutate: func(r *http.Request) {
			r.Header.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handshake("", "10.0.0.1:1")
			tt.mutate(r)
			rej := ValidateUpgrade(r)
			if tt.status == 0 {
				if rej != nil {
					t.Fatalf("rejected: %v", rej)
				}
				return
			}
			wantRejection(t, rej, classBad, tt.status)
			if !strings.Contains(rej.Reason, tt.reason) {
				t.Fatalf("Reason = %q, want it to contain %q", rej.Reason, tt.reason)
			}
		})
	}
}
