// Package clip bounds strings in bytes without splitting a UTF-8 sequence.
//
// Every string that crosses a process boundary — a NACK text, a close-frame
// reason, a header quoted in a log line — is capped in bytes, and a cut in
// the middle of a multi-byte character would turn valid UTF-8 into invalid
// UTF-8, which protobuf refuses to marshal (one bad NACK text would then
// break ListNodes for the whole fleet). Every such cut in the module goes
// through this package.
package clip

import "unicode/utf8"

// Mark ends a string that Marked had to cut.
const Mark = " ...(truncated)"

// String returns s cut to at most n bytes on a rune boundary. Invalid UTF-8
// in s is kept as it is (the cut never splits a valid sequence); use
// ValidString for text that must be valid UTF-8 whatever its source.
func String(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	cut := n
	// A rune is at most utf8.UTFMax bytes: stepping back past more than
	// that means s[cut] is in invalid bytes, where any cut is as good.
	for i := 0; i < utf8.UTFMax && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	if !utf8.RuneStart(s[cut]) {
		cut = n
	}
	return s[:cut]
}

// Marked returns s unchanged if it fits in n bytes, else s cut on a rune
// boundary with Mark appended, the whole at most n bytes. For n smaller
// than Mark it is String(s, n).
func Marked(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= len(Mark) {
		return String(s, n)
	}
	return String(s, n-len(Mark)) + Mark
}

// ValidString returns s with every invalid UTF-8 byte replaced by U+FFFD,
// cut (as Marked) to at most n bytes. Use it for text from peers that ends
// up in a protobuf string field.
func ValidString(s string, n int) string {
	if !utf8.ValidString(s) {
		b := make([]rune, 0, min(len(s), n))
		for _, r := range s { // ranging over invalid bytes yields RuneError
			b = append(b, r)
			if len(b) > n {
				break
			}
		}
		s = string(b)
	}
	return Marked(s, n)
}
