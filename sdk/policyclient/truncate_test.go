package policyclient

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"a short text is kept whole", "bad policy", 100, "bad policy"},
		{"a text at the bound is kept whole", strings.Repeat("a", 50), 50, strings.Repeat("a", 50)},
		{"a long text is cut and marked", strings.Repeat("a", 100), 50, strings.Repeat("a", 50-len(truncatedMark)) + truncatedMark},
		{"a cut never splits a character", strings.Repeat("é", 50), 51, strings.Repeat("é", 17) + truncatedMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in, tt.n)
			if got != tt.want {
				t.Fatalf("truncate = %q, want %q", got, tt.want)
			}
			if len(got) > tt.n || !utf8.ValidString(got) {
				t.Fatalf("truncate = %q: %d bytes or invalid UTF-8", got, len(got))
			}
		})
	}
}
