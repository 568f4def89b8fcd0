package policy

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of a label selector (RolloutSpec.selector). Keys and values are
// bounded like the node labels they are matched against.
const (
	MaxSelectorBytes      = 1024
	MaxSelectorTerms      = 16
	MaxSelectorKeyBytes   = 128
	MaxSelectorValueBytes = 256
)

// Selector is a parsed label selector: every term must hold for a node's
// labels to match. The zero Selector has no terms and matches every node;
// ParseSelector never returns it.
type Selector struct {
	terms []selectorTerm
}

type selectorTerm struct {
	key, value string
	// not: the term is `key!=value`, which also holds for a node without
	// the key.
	not bool
}

// ParseSelector parses comma-separated `key=value` and `key!=value` terms,
// e.g. `zone=a` or `zone=a,tier!=edge`. Spaces around keys and values are
// trimmed. Keys are non-empty; a value may be empty (`tier=` matches only
// a node whose label tier is set to the empty string). Keys and values may
// not hold ',', '=', '!',
// spaces or control characters, and are bounded like node labels. An
// empty selector is an error: a canary needs a subset of the nodes.
func ParseSelector(s string) (Selector, error) {
	if strings.TrimSpace(s) == "" {
		return Selector{}, fmt.Errorf("%w: empty; want key=value terms separated by commas, e.g. zone=a", ErrInvalidSelector)
	}
	if len(s) > MaxSelectorBytes {
		return Selector{}, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidSelector, len(s), MaxSelectorBytes)
	}
	if !utf8.ValidString(s) {
		return Selector{}, fmt.Errorf("%w: not valid UTF-8", ErrInvalidSelector)
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxSelectorTerms {
		return Selector{}, fmt.Errorf("%w: %d terms, at most %d", ErrInvalidSelector, len(parts), MaxSelectorTerms)
	}
	sel := Selector{terms: make([]selectorTerm, 0, len(parts))}
	for _, part := range parts {
		var t selectorTerm
		k, v, ok := strings.Cut(part, "!=")
		if ok {
			t.not = true
		} else if k, v, ok = strings.Cut(part, "="); !ok {
			return Selector{}, fmt.Errorf("%w: term %q: want key=value or key!=value", ErrInvalidSelector, strings.TrimSpace(part))
		}
		t.key, t.value = strings.TrimSpace(k), strings.TrimSpace(v)
		if err := checkSelectorWord("key", t.key, MaxSelectorKeyBytes); err != nil {
			return Selector{}, fmt.Errorf("%w: term %q: %w", ErrInvalidSelector, strings.TrimSpace(part), err)
		}
		if t.key == "" {
			return Selector{}, fmt.Errorf("%w: term %q: empty key", ErrInvalidSelector, strings.TrimSpace(part))
		}
		if err := checkSelectorWord("value", t.value, MaxSelectorValueBytes); err != nil {
			return Selector{}, fmt.Errorf("%w: term %q: %w", ErrInvalidSelector, strings.TrimSpace(part), err)
		}
		sel.terms = append(sel.terms, t)
	}
	return sel, nil
}

func checkSelectorWord(what, w string, limit int) error {
	if len(w) > limit {
		return fmt.Errorf("%s of %d bytes, at most %d", what, len(w), limit)
	}
	for _, c := range w {
		if c == ',' || c == '=' || c == '!' || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return fmt.Errorf("%s %q: no ',', '=', '!', spaces or control characters", what, w)
		}
	}
	return nil
}

// Matches reports whether every term holds for labels: `k=v` when the
// label k is v, `k!=v` when it is not (or the node has no label k).
func (s Selector) Matches(labels map[string]string) bool {
	for _, t := range s.terms {
		v, ok := labels[t.key]
		if t.not == (ok && v == t.value) {
			return false
		}
	}
	return true
}

// String is the selector in its canonical form: the terms in the order
// given, without spaces. ParseSelector(s.String()) is s.
func (s Selector) String() string {
	var b strings.Builder
	for i, t := range s.terms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.key)
		if t.not {
			b.WriteString("!=")
		} else {
			b.WriteByte('=')
		}
		b.WriteString(t.value)
	}
	return b.String()
}
