package clip_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/wsfleet/wsfleet/api/clip"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStringNeverSplitsARune(t *testing.T) {
	// "é" is 2 bytes, "€" 3, "😀" 4: every cut position in this string
	// must give valid UTF-8 no longer than asked.
	s := strings.Repeat("aé€😀", 50)
	for n := 0; n <= len(s)+1; n++ {
		got := clip.String(s, n)
		if len(got) > n {
			t.Fatalf("String(s, %d) is %d bytes", n, len(got))
		}
		if !utf8.ValidString(got) {
			t.Fatalf("String(s, %d) = %q is not valid UTF-8", n, got)
		}
		if !strings.HasPrefix(s, got) {
			t.Fatalf("String(s, %d) is not a prefix", n)
		}
		if n >= 4 && len(got) < n-3 {
			t.Fatalf("String(s, %d) cut %d bytes, more than a rune", n, n-len(got))
		}
	}
}

func TestMarkedSaysItCut(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{"a string that fits is unchanged", "hello", 5, "hello"},
		{"a cut string ends with the mark", strings.Repeat("x", 100), 30, strings.Repeat("x", 30-len(clip.Mark)) + clip.Mark},
		{"a cut inside a rune steps back to its start", "ab" + strings.Repeat("€", 20), len(clip.Mark) + 4, "ab" + clip.Mark},
		{"no room for the mark cuts plainly", "abcdef", 3, "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip.Marked(tt.s, tt.n)
			if got != tt.want {
				t.Errorf("Marked(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
			if len(got) > tt.n || !utf8.ValidString(got) {
				t.Errorf("Marked(%q, %d) = %q: %d bytes, valid %v", tt.s, tt.n, got, len(got), utf8.ValidString(got))
			}
		})
	}
}

func TestValidStringRepairsInvalidBytes(t *testing.T) {
	got := clip.ValidString("ok\xff\xfeend", 100)
	if !utf8.ValidString(got) || !strings.HasPrefix(got, "ok") || !strings.HasSuffix(got, "end") {
		t.Fatalf("ValidString = %q", got)
	}
	long := strings.Repeat("\xff", 10_000)
	got = clip.ValidString(long, 64)
	if !utf8.ValidString(got) || len(got) > 64 {
		t.Fatalf("ValidString(10k invalid bytes, 64) = %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func FuzzMarked(f *testing.F) {
	f.Add("aé€😀", 3)
	f.Add("\xff\xfe", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		got := clip.Marked(s, n)
		if len(got) > n {
			t.Fatalf("Marked(%q, %d) = %d bytes", s, n, len(got))
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Marked(%q, %d) = %q broke valid UTF-8", s, n, got)
		}
		v := clip.ValidString(s, n)
		if len(v) > n || !utf8.ValidString(v) {
			t.Fatalf("ValidString(%q, %d) = %q", s, n, v)
		}
	})
}
