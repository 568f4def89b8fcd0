package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Origin patterns accept only the two schemes browsers put in a WebSocket
// handshake's Origin header; anything else could never match and is almost
// certainly a typo.
const (
	schemeHTTP  = "http"
	schemeHTTPS = "https"
)

// maxHostLength is the DNS limit on a whole name, dots included.
const maxHostLength = 253

// maxLabelLength is the DNS limit on one label.
const maxLabelLength = 63

// OriginPattern is a parsed allowlist entry.
//
// The zero value is not a valid pattern. Two patterns that parse from
// spellings differing only in case or in port leading zeros compare equal
// with ==.
type OriginPattern struct {
	// Any is set for the lone "*", which allows every origin. No other field
	// is set with it.
	Any bool
	// Null is set for the exact entry "null", which allows the literal
	// `Origin: null` sent by sandboxed iframes and file: pages. No other field
	// is set with it.
	Null bool
	// Scheme is "http" or "https".
	Scheme string
	// Host is lowercase and without the "*." prefix: a DNS name, a dotted
	// IPv4 address, or an IPv6 literal in brackets in its canonical form
	// ("[::1]"), the way it appears in an Origin header.
	Host string
	// Port is the explicit port in decimal without leading zeros, or "" when
	// the pattern has none (the scheme's default port then applies).
	Port string
	// Wildcard is set when the leftmost label was "*": the pattern matches
	// every name with one or more labels in front of Host, never Host itself.
	Wildcard bool
}

// originError keeps the offending entry and the bare reason apart, so that
// Validate can quote the entry once in a FieldViolation while the error text
// stays self-contained for logs and NACKs.
type originError struct {
	pattern string
	reason  string
}

var _ error = (*originError)(nil)

func (e *originError) Error() string {
	return fmt.Sprintf("%s %q: %s", ErrInvalidOrigin.Error(), e.pattern, e.reason)
}

func (e *originError) Unwrap() error { return ErrInvalidOrigin }

func originErr(pattern, reason string) error {
	return &originError{pattern: pattern, reason: reason}
}

// ParseOriginPattern parses one origins.allow entry. The error wraps
// ErrInvalidOrigin and says what is wrong with the entry.
//
// Grammar: `*` | `null` | scheme "://" ["*."] host [":" port], with scheme
// http or https (any case), host a DNS name (labels of 1-63 letters, digits
// and hyphens, not starting or ending with a hyphen, at most 253 characters),
// a dotted IPv4 address or a bracketed IPv6 literal without zone, and port
// 1-65535. The "*." wildcard is allowed only in front of a DNS name. A path
// (even a lone trailing "/"), query, fragment or userinfo is refused: an
// Origin header never carries them, so such an entry would never match.
func ParseOriginPattern(s string) (OriginPattern, error) {
	switch s {
	case "*":
		return OriginPattern{Any: true}, nil
	case "null":
		return OriginPattern{Null: true}, nil
	case "":
		return OriginPattern{}, originErr(s, "empty entry")
	}
	if len(s) > MaxOriginLength {
		return OriginPattern{}, originErr(s, fmt.Sprintf("longer than %d characters", MaxOriginLength))
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return OriginPattern{}, originErr(s, `missing scheme: want scheme://host[:port]`)
	}
	switch {
	case strings.EqualFold(scheme, schemeHTTP):
		scheme = schemeHTTP
	case strings.EqualFold(scheme, schemeHTTPS):
		scheme = schemeHTTPS
	case strings.Contains(scheme, "*"):
		return OriginPattern{}, originErr(s, "wildcard not allowed in the scheme")
	default:
		return OriginPattern{}, originErr(s, "scheme must be http or https")
	}

	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
		if strings.Contains(authority, "@") {
			return OriginPattern{}, originErr(s, "userinfo not allowed")
		}
		switch {
		case rest[i] == '?':
			return OriginPattern{}, originErr(s, "query not allowed")
		case rest[i] == '#':
			return OriginPattern{}, originErr(s, "fragment not allowed")
		case i == len(rest)-1:
			return OriginPattern{}, originErr(s, `trailing "/" not allowed: drop it, an origin has no path`)
		default:
			return OriginPattern{}, originErr(s, "path not allowed: an origin is scheme://host[:port]")
		}
	}
	if strings.Contains(authority, "@") {
		return OriginPattern{}, originErr(s, "userinfo not allowed")
	}

	host, port, reason := splitHostPort(authority)
	if reason != "" {
		return OriginPattern{}, originErr(s, reason)
	}
	if port != "" {
		n, ok := parsePort(port)
		if !ok {
			return OriginPattern{}, originErr(s, fmt.Sprintf("port %q must be a number in 1-65535", port))
		}
		port = strconv.Itoa(int(n))
	}

	p := OriginPattern{Scheme: scheme, Port: port}
	if host == "" {
		return OriginPattern{}, originErr(s, "missing host")
	}
	if host[0] == '[' {
		addr, reason := parseIPv6Literal(host)
		if reason != "" {
			return OriginPattern{}, originErr(s, reason)
		}
		p.Host = "[" + addr.String() + "]"
		return p, nil
	}

	switch {
	case strings.HasPrefix(host, "*."):
		p.Wildcard = true
		host = host[2:]
		if host == "" {
			return OriginPattern{}, originErr(s, `wildcard must be followed by a domain, as in "*.example.com"`)
		}
	case host == "*":
		return OriginPattern{}, originErr(s, `wildcard must be followed by a domain, as in "*.example.com"; "*" alone allows every origin`)
	case host[0] == '*':
		return OriginPattern{}, originErr(s, `wildcard must be a whole label, as in "*.example.com"`)
	}
	if strings.Contains(host, "*") {
		return OriginPattern{}, originErr(s, "wildcard only as the leftmost label")
	}
	host = strings.ToLower(host)

	if addr, err := netip.ParseAddr(host); err == nil && addr.Is4() {
		if p.Wildcard {
			return OriginPattern{}, originErr(s, "wildcard needs a DNS name, not an IP address")
		}
		p.Host = addr.String()
		return p, nil
	}
	if reason := checkDNSName(host); reason != "" {
		return OriginPattern{}, originErr(s, reason)
	}
	if p.Wildcard && len(host)+2 > maxHostLength {
		return OriginPattern{}, originErr(s, fmt.Sprintf("host longer than %d characters", maxHostLength))
	}
	p.Host = host
	return p, nil
}

// String returns the canonical spelling of the pattern; parsing it gives back
// an equal pattern.
func (p OriginPattern) String() string {
	switch {
	case p.Any:
		return "*"
	case p.Null:
		return "null"
	}
	var b strings.Builder
	b.Grow(len(p.Scheme) + len("://*.") + len(p.Host) + 1 + len(p.Port))
	b.WriteString(p.Scheme)
	b.WriteString("://")
	if p.Wildcard {
		b.WriteString("*.")
	}
	b.WriteString(p.Host)
	if p.Port != "" {
		b.WriteByte(':')
		b.WriteString(p.Port)
	}
	return b.String()
}

// key is what two patterns that allow exactly the same origins share:
// "https://a.com" and "https://A.com:443" have the same key.
func (p OriginPattern) key() originKey {
	switch {
	case p.Any:
		return originKey{host: "*"}
	case p.Null:
		return originKey{host: "null"}
	}
	k := originKey{https: p.Scheme == schemeHTTPS, wildcard: p.Wildcard}
	if p.Port != "" {
		n, _ := parsePort(p.Port)
		k.port = n
	} else {
		k.port = defaultPort(k.https)
	}
	if strings.HasPrefix(p.Host, "[") {
		// Parsed patterns always hold a valid literal here.
		k.addr, _ = parseIPv6Literal(p.Host)
	} else {
		k.host = p.Host
	}
	return k
}

// originKey identifies an origin (or, with wildcard, a parent domain) with
// the port made explicit, so default and explicit default ports meet in one
// map entry. IPv6 hosts are keyed by address rather than text, because the
// same address has many spellings and comparing them would need allocation.
type originKey struct {
	https    bool
	wildcard bool
	host     string // lowercase DNS name or IPv4; empty for IPv6
	addr     netip.Addr
	port     uint16
}

func defaultPort(https bool) uint16 {
	if https {
		return 443
	}
	return 80
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port". It
// returns a reason instead of an error so that callers on the hot path pay
// nothing for formatting.
func splitHostPort(authority string) (host, port, reason string) {
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return "", "", `IPv6 literal missing "]"`
		}
		host, after := authority[:end+1], authority[end+1:]
		switch {
		case after == "":
			return host, "", ""
		case after[0] == ':':
			if after[1:] == "" {
				return "", "", `empty port after ":"`
			}
			return host, after[1:], ""
		default:
			return "", "", `unexpected text after "]"`
		}
	}
	host, port, hasPort := strings.Cut(authority, ":")
	if !hasPort {
		return host, "", ""
	}
	if strings.Contains(port, ":") {
		return "", "", "IPv6 address must be in brackets"
	}
	if port == "" {
		return "", "", `empty port after ":"`
	}
	return host, port, ""
}

// parsePort accepts decimal digits (leading zeros allowed, as URL parsers
// do) with a value in 1-65535.
func parsePort(s string) (uint16, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, false
		}
	}
	if n == 0 {
		return 0, false
	}
	return uint16(n), true
}

// parseIPv6Literal parses "[addr]". netip does not allocate for a zoneless
// IPv6 address, which keeps OriginMatcher.Allow allocation-free.
func parseIPv6Literal(s string) (netip.Addr, string) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return netip.Addr{}, "IPv6 address must be in brackets"
	}
	addr, err := netip.ParseAddr(s[1 : len(s)-1])
	switch {
	case err != nil:
		return netip.Addr{}, "invalid IPv6 address"
	case !addr.Is6():
		return netip.Addr{}, "brackets are only for IPv6 addresses"
	case addr.Zone() != "":
		return netip.Addr{}, "IPv6 zone not allowed"
	}
	return addr, ""
}

// checkDNSName returns why host is not a DNS name, or "". Letters of either
// case are accepted; callers lowercase. A name whose last label is all
// digits is refused because browsers read it as an IPv4 address in a
// shorthand form ("1.2.3" is 1.2.0.3) and would never send it as written.
func checkDNSName(host string) string {
	if len(host) > maxHostLength {
		return fmt.Sprintf("host longer than %d characters", maxHostLength)
	}
	labelStart := 0
	allDigits := true
	for i := 0; i <= len(host); i++ {
		if i == len(host) || host[i] == '.' {
			label := host[labelStart:i]
			switch {
			case label == "":
				return "empty label in host"
			case len(label) > maxLabelLength:
				return fmt.Sprintf("host label longer than %d characters", maxLabelLength)
			case label[0] == '-' || label[len(label)-1] == '-':
				return `host label starts or ends with "-"`
			}
			if i == len(host) && allDigits {
				return "not a valid IPv4 address or DNS name"
			}
			labelStart = i + 1
			allDigits = true
			continue
		}
		c := host[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
			allDigits = false
		default:
			return fmt.Sprintf("invalid character %q in host (internationalized names must be punycode)", rune(c))
		}
	}
	return ""
}

// validDNSName is checkDNSName without the reason, for the hot path.
func validDNSName(host string) bool {
	if len(host) == 0 || len(host) > maxHostLength {
		return false
	}
	labelStart := 0
	allDigits := true
	for i := 0; i <= len(host); i++ {
		if i == len(host) || host[i] == '.' {
			n := i - labelStart
			if n == 0 || n > maxLabelLength || host[labelStart] == '-' || host[i-1] == '-' {
				return false
			}
			if i == len(host) && allDigits {
				return false
			}
			labelStart = i + 1
			allDigits = true
			continue
		}
		c := host[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
			allDigits = false
		default:
			return false
		}
	}
	return true
}

// OriginMatcher answers "is this Origin header allowed" for one allowlist.
// It is built once per policy, immutable and safe for concurrent use. Allow
// does not allocate for origins in the lowercase form browsers send.
//
// The zero value allows nothing.
type OriginMatcher struct {
	any          bool
	allowNull    bool
	allowMissing bool
	// exact holds exact patterns; wildcard holds the parent domains of
	// wildcard patterns. Both are keyed with explicit ports.
	exact    map[originKey]struct{}
	wildcard map[originKey]struct{}
}

// NewOriginMatcher builds the matcher for an allowlist. The first entry that
// does not parse fails the build with an error wrapping ErrInvalidOrigin.
// Duplicates and "*" next to other entries are accepted here ("*" then
// allows everything); Validate refuses both before a policy is stored.
func NewOriginMatcher(allow []string, allowMissing bool) (*OriginMatcher, error) {
	m := &OriginMatcher{
		allowMissing: allowMissing,
		exact:        make(map[originKey]struct{}, len(allow)),
		wildcard:     make(map[originKey]struct{}),
	}
	for i, s := range allow {
		p, err := ParseOriginPattern(s)
		if err != nil {
			return nil, fmt.Errorf("origins.allow[%d]: %w", i, err)
		}
		switch {
		case p.Any:
			m.any = true
		case p.Null:
			m.allowNull = true
		case p.Wildcard:
			k := p.key()
			k.wildcard = false
			m.wildcard[k] = struct{}{}
		default:
			m.exact[p.key()] = struct{}{}
		}
	}
	return m, nil
}

// Allow reports whether a handshake with this Origin header value may
// proceed. origin "" means the header was absent, which allowMissing
// decides; "*" allows every present value. Otherwise the origin must be
// exactly `scheme://host[:port]` as browsers send it — anything else (a
// path, userinfo, an invalid host) never matches. Scheme and host compare
// case-insensitively, and a missing port is the scheme's default.
func (m *OriginMatcher) Allow(origin string) bool {
	if m == nil {
		return false
	}
	if origin == "" {
		return m.allowMissing
	}
	if m.any {
		return true
	}
	if origin == "null" {
		return m.allowNull
	}
	k, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	if _, ok := m.exact[k]; ok {
		return true
	}
	if k.host == "" || len(m.wildcard) == 0 {
		return false
	}
	// Try every proper parent domain: a.b.example.com looks up
	// b.example.com, then example.com, then com. Comparing whole labels is
	// what keeps evilexample.com from matching *.example.com.
	host := k.host
	for i := 0; i < len(host); i++ {
		if host[i] == '.' {
			k.host = host[i+1:]
			if _, ok := m.wildcard[k]; ok {
				return true
			}
		}
	}
	return false
}

// parseOrigin reads a serialized origin into a lookup key without
// allocating unless the host has uppercase letters.
func parseOrigin(origin string) (originKey, bool) {
	var k originKey
	scheme, rest, ok := strings.Cut(origin, "://")
	if !ok {
		return k, false
	}
	switch {
	case strings.EqualFold(scheme, schemeHTTPS):
		k.https = true
	case strings.EqualFold(scheme, schemeHTTP):
	default:
		return k, false
	}
	if strings.ContainsAny(rest, "/?#@") {
		return k, false
	}
	host, port, reason := splitHostPort(rest)
	if reason != "" || host == "" {
		return k, false
	}
	if port == "" {
		k.port = defaultPort(k.https)
	} else if k.port, ok = parsePort(port); !ok {
		return k, false
	}
	if host[0] == '[' {
		addr, reason := parseIPv6Literal(host)
		if reason != "" {
			return k, false
		}
		k.addr = addr
		return k, true
	}
	if !validDNSName(host) {
		// Not a DNS name; the only other host an exact entry can hold is
		// dotted IPv4. netip is asked only then, because its parse error
		// allocates and DNS names are the common case.
		if !isDigitsAndDots(host) {
			return k, false
		}
		if addr, err := netip.ParseAddr(host); err != nil || !addr.Is4() {
			return k, false
		}
		k.host = host
		return k, true
	}
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	k.host = host
	return k, true
}

func isDigitsAndDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}
