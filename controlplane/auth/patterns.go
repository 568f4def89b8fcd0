package auth

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/wsfleet/wsfleet/api/policy"
)

// Patterns is the set of node ids, or of pools, a node credential may act
// as. Each entry is an exact name ("edge-1"), a prefix followed by one
// trailing "*" ("edge-*" matches "edge-1" and "edge-", not "edge"), or "*"
// alone for any name. An empty set matches nothing: a credential acts as
// no node unless it says which.
type Patterns []string

// AnyName is the pattern that matches every name; a tokens file must say
// it explicitly (`nodes: ["*"]`).
const AnyName = "*"

// Match reports whether name is in the set.
func (p Patterns) Match(name string) bool {
	for _, pat := range p {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if pat == name {
			return true
		}
	}
	return false
}

// String lists the patterns for error messages ("edge-*, lb-1").
func (p Patterns) String() string {
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ", ")
}

// maxPatternLength matches the longest node id a hello may carry.
const maxPatternLength = 128

// parsePatterns checks one `nodes` or `pools` list of a tokens file entry
// and describes every bad entry, each prefixed with where[i]. Pool
// entries that are exact names must be valid pool names, so that a typo
// ("Default") fails at load time rather than refusing the node later.
func parsePatterns(where string, list []string, pools bool) (Patterns, []string) {
	var problems []string
	for i, pat := range list {
		at := fmt.Sprintf("%s[%d]", where, i)
		prefix, wild := strings.CutSuffix(pat, "*")
		switch {
		case pat == "":
			problems = append(problems, at+": empty")
		case len(pat) > maxPatternLength:
			problems = append(problems, fmt.Sprintf("%s: longer than %d", at, maxPatternLength))
		case strings.Contains(prefix, "*"):
			problems = append(problems, fmt.Sprintf(`%s: %q: "*" may only end a pattern ("edge-*", or "*" for any)`, at, pat))
		case strings.IndexFunc(pat, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0:
			problems = append(problems, fmt.Sprintf("%s: %q: only printable characters without spaces", at, pat))
		case pools && !wild:
			if err := policy.ValidatePoolName(pat); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", at, err))
			}
		}
	}
	return Patterns(list), problems
}

// ParsePatterns checks a list of patterns given outside a tokens file (a
// flag, named by where); pools says whether exact entries must be valid
// pool names.
func ParsePatterns(where string, list []string, pools bool) (Patterns, error) {
	p, problems := parsePatterns(where, list, pools)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrPatterns, strings.Join(problems, "; "))
	}
	return p, nil
}
