package subject_test

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/api/subject"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestChannelSubjects(t *testing.T) {
	tests := []struct {
		name          string
		pool, channel string
		want          string
	}{
		{"a plain channel is itself", "default", "news", "wsfleet.default.ch.news"},
		{"a dot does not split the channel into tokens", "edge-eu", "news.eu", "wsfleet.edge-eu.ch.news~2Eeu"},
		{"every other channel character is escaped", "p", "a:b@c/d_e-f", "wsfleet.p.ch.a~3Ab~40c~2Fd_e-f"},
		{"a channel of dots is still one non-empty token", "p", "..", "wsfleet.p.ch.~2E~2E"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := subject.Channel(tt.pool, tt.channel)
			if got != tt.want {
				t.Fatalf("Channel(%q, %q) = %q, want %q", tt.pool, tt.channel, got, tt.want)
			}
			pool, ch, err := subject.Parse(got)
			if err != nil || pool != tt.pool || ch != tt.channel {
				t.Fatalf("Parse(%q) = %q, %q, %v; want %q, %q", got, pool, ch, err, tt.pool, tt.channel)
			}
		})
	}
}

func TestParseRefusesOtherSubjects(t *testing.T) {
	for _, s := range []string{"", "other.default.ch.x", "wsfleet.default.x", "wsfleet..ch.x", "wsfleet.default.ch.", "wsfleet.default.ch.a.b", "wsfleet.default.ch.a~2", "wsfleet.default.ch.a~zz", "wsfleet.a.b.ch.x"} {
		if _, _, err := subject.Parse(s); !errors.Is(err, subject.ErrNotAChannel) {
			t.Errorf("Parse(%q) error = %v, want ErrNotAChannel", s, err)
		}
	}
}

func TestPoolWildcardCoversItsChannels(t *testing.T) {
	w := subject.PoolWildcard("edge")
	if prefix := strings.TrimSuffix(w, ">"); !strings.HasPrefix(subject.Channel("edge", "x.y"), prefix) {
		t.Fatalf("%q does not cover %q", w, subject.Channel("edge", "x.y"))
	}
}

// FuzzChannel: every channel maps to one valid NATS token (no empty token,
// no wildcard, no whitespace) and back.
func FuzzChannel(f *testing.F) {
	f.Add("default", "news.eu")
	f.Add("p", "a:b@c/d")
	f.Fuzz(func(t *testing.T, pool, channel string) {
		if pool == "" || channel == "" || strings.ContainsAny(pool, ". *>\t\r\n") {
			return
		}
		s := subject.Channel(pool, channel)
		tok := strings.TrimPrefix(s, "wsfleet."+pool+".ch.")
		if tok == "" || strings.ContainsAny(tok, ". *>\t\r\n") {
			t.Fatalf("Channel(%q, %q) = %q: its channel token is not one plain token", pool, channel, s)
		}
		p, c, err := subject.Parse(s)
		if err != nil || p != pool || c != channel {
			t.Fatalf("Parse(Channel(%q, %q)) = %q, %q, %v", pool, channel, p, c, err)
		}
	})
}
