package channel_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/api/channel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidateName(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		says    string // "" when valid
	}{
		{"letters digits and every allowed mark are a name", "a-Z_0.9:x@y/z", ""},
		{"a name of the longest length is a name", strings.Repeat("x", channel.MaxNameLength), ""},
		{"an empty name is refused", "", "empty"},
		{"a name one byte too long is refused", strings.Repeat("x", channel.MaxNameLength+1), "129 bytes long"},
		{"a space is refused naming its offset", "news eu", `' ' at byte 4`},
		{"a quote is refused", `a"b`, `'"' at byte 1`},
		{"a non-ASCII byte is refused by its value", "café", "byte 0xc3 at byte 3"},
		{"a tilde, the subject escape, is refused", "a~2E", `'~' at byte 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := channel.ValidateName(tt.channel)
			if tt.says == "" {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v", tt.channel, err)
				}
				return
			}
			if !errors.Is(err, channel.ErrName) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("ValidateName(%q) = %v, want ErrName saying %q", tt.channel, err, tt.says)
			}
		})
	}
}

func TestCheckData(t *testing.T) {
	tests := []struct {
		name string
		data string
		says string // "" when valid
	}{
		{"an object is data", `{"a": [1, 2]}`, ""},
		{"null is data", `null`, ""},
		{"a bare string is data", `"hi"`, ""},
		{"nothing is refused", ``, "empty"},
		{"text that is not JSON is refused with the syntax error", `{"a":`, "not valid JSON: unexpected end"},
		{"two values are refused", `1 2`, "not valid JSON"},
		{"invalid UTF-8 inside a string is refused", "\"\xff\"", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := channel.CheckData([]byte(tt.data))
			if tt.says == "" {
				if err != nil {
					t.Fatalf("CheckData(%q) = %v", tt.data, err)
				}
				return
			}
			if !errors.Is(err, channel.ErrData) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("CheckData(%q) = %v, want ErrData saying %q", tt.data, err, tt.says)
			}
		})
	}
}

// FuzzValidateName: a name is valid exactly when every byte is a name byte
// and its length is in range.
func FuzzValidateName(f *testing.F) {
	f.Add("news.eu")
	f.Add("a b")
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) > 0 && len(s) <= channel.MaxNameLength
		for i := 0; i < len(s) && want; i++ {
			want = channel.NameByte(s[i])
		}
		if got := channel.ValidateName(s) == nil; got != want {
			t.Fatalf("ValidateName(%q) valid = %v, want %v", s, got, want)
		}
	})
}
