package policy_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/wsfleet/wsfleet/api/policy"
)

func TestParseOriginPatternAccepts(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  policy.OriginPattern
		canon string
	}{
		{"an exact https origin parses", "https://app.example.com",
			policy.OriginPattern{Scheme: "https", Host: "app.example.com"}, "https://app.example.com"},
		{"an exact http origin with a port parses", "http://localhost:3000",
			policy.OriginPattern{Scheme: "http", Host: "localhost", Port: "3000"}, "http://localhost:3000"},
		{"scheme and host are lowercased", "HTTPS://App.Example.COM",
			policy.OriginPattern{Scheme: "https", Host: "app.example.com"}, "https://app.example.com"},
		{"a wildcard subdomain parses", "https://*.example.com",
			policy.OriginPattern{Scheme: "https", Host: "example.com", Wildcard: true}, "https://*.example.com"},
		{"a wildcard over a single label is fine", "https://*.localhost",
			policy.OriginPattern{Scheme: "https", Host: "localhost", Wildcard: true}, "https://*.localhost"},
		{"a wildcard with a port parses", "https://*.example.com:8443",
			policy.OriginPattern{Scheme: "https", Host: "example.com", Port: "8443", Wildcard: true}, "https://*.example.com:8443"},
		{"an IPv4 address parses", "http://192.168.1.10:8080",
			policy.OriginPattern{Scheme: "http", Host: "192.168.1.10", Port: "8080"}, "http://192.168.1.10:8080"},
		{"an IPv6 literal parses in canonical form", "http://[0:0:0:0:0:0:0:1]:8080",
			policy.OriginPattern{Scheme: "http", Host: "[::1]", Port: "8080"}, "http://[::1]:8080"},
		{"IPv6 hex digits are lowercased", "https://[2001:DB8::A]",
			policy.OriginPattern{Scheme: "https", Host: "[2001:db8::a]"}, "https://[2001:db8::a]"},
		{"port leading zeros are dropped", "http://a.com:0080",
			policy.OriginPattern{Scheme: "http", Host: "a.com", Port: "80"}, "http://a.com:80"},
		{"the highest port parses", "http://a.com:65535",
			policy.OriginPattern{Scheme: "http", Host: "a.com", Port: "65535"}, "http://a.com:65535"},
		{"punycode labels parse", "https://xn--bcher-kva.example",
			policy.OriginPattern{Scheme: "https", Host: "xn--bcher-kva.example"}, "https://xn--bcher-kva.example"},
		{"digits inside a name are fine", "https://1.2.3.example",
			policy.OriginPattern{Scheme: "https", Host: "1.2.3.example"}, "https://1.2.3.example"},
		{"a lone star allows everything", "*", policy.OriginPattern{Any: true}, "*"},
		{"null is accepted as an exact entry", "null", policy.OriginPattern{Null: true}, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policy.ParseOriginPattern(tt.input)
			if err != nil {
				t.Fatalf("ParseOriginPattern(%q) error = %v", tt.input, err)
			}
			if got != tt.want {
				t.Errorf("ParseOriginPattern(%q) = %+v, want %+v", tt.input, got, tt.want)
			}
			if s := got.String(); s != tt.canon {
				t.Errorf("String() = %q, want %q", s, tt.canon)
			}
		})
	}
}

func TestParseOriginPatternRefuses(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		reason string // a part of the error message
	}{
		{"an empty entry is refused", "", "empty entry"},
		{"a bare host is refused", "example.com", "missing scheme"},
		{"a bare wildcard host is refused", "*.example.com", "missing scheme"},
		{"a websocket scheme is refused", "wss://example.com", "scheme must be http or https"},
		{"a file scheme is refused", "file://example.com", "scheme must be http or https"},
		{"an empty scheme is refused", "://example.com", "scheme must be http or https"},
		{"a wildcard scheme is refused", "http*://example.com", "wildcard not allowed in the scheme"},
		{"a trailing slash is refused with advice to drop it", "https://example.com/", "drop it"},
		{"a path is refused", "https://example.com/app", "path not allowed"},
		{"a query is refused", "https://example.com?x=1", "query not allowed"},
		{"a fragment is refused", "https://example.com#top", "fragment not allowed"},
		{"userinfo is refused", "https://user@example.com", "userinfo not allowed"},
		{"userinfo before a path is refused as userinfo", "https://user:pw@example.com/x", "userinfo not allowed"},
		{"a missing host is refused", "https://", "missing host"},
		{"a missing host with a port is refused", "https://:443", "missing host"},
		{"wildcard in the middle is refused", "https://a.*.x.com", "wildcard only as the leftmost label"},
		{"two wildcards are refused", "https://*.*.example.com", "wildcard only as the leftmost label"},
		{"a wildcard glued to a label is refused", "https://*x.com", "whole label"},
		{"a wildcard without a domain is refused", "https://*.", "followed by a domain"},
		{"a wildcard host alone is refused", "https://*", "followed by a domain"},
		{"a wildcard in the last label is refused", "https://example.*", "wildcard only as the leftmost label"},
		{"a wildcard over an IP address is refused", "https://*.10.0.0.1", "not an IP address"},
		{"a wildcard in a port is refused", "https://a.com:*", "must be a number"},
		{"port zero is refused", "https://a.com:0", "must be a number in 1-65535"},
		{"a port above 65535 is refused", "https://a.com:65536", "must be a number in 1-65535"},
		{"a non-numeric port is refused", "https://a.com:https", "must be a number"},
		{"an empty port is refused", "https://a.com:", "empty port"},
		{"an unbracketed IPv6 address is refused", "http://::1", "must be in brackets"},
		{"an unclosed IPv6 literal is refused", "http://[::1", `missing "]"`},
		{"text after an IPv6 literal is refused", "http://[::1]x", `after "]"`},
		{"an invalid IPv6 literal is refused", "http://[::g]", "invalid IPv6 address"},
		{"an IPv4 address in brackets is refused", "http://[127.0.0.1]", "only for IPv6"},
		{"an escaped IPv6 zone is refused", "http://[fe80::1%25eth0]", "zone not allowed"},
		{"a raw IPv6 zone is refused", "http://[fe80::1%eth0]", "zone not allowed"},
		{"an IPv4 shorthand is refused", "http://127.1", "not a valid IPv4 address"},
		{"an IPv4 address with a leading zero is refused", "http://127.0.0.01", "not a valid IPv4 address"},
		{"an empty label is refused", "https://a..com", "empty label"},
		{"a trailing dot is refused", "https://a.com.", "empty label"},
		{"a label starting with a hyphen is refused", "https://-a.com", `starts or ends with "-"`},
		{"a label ending with a hyphen is refused", "https://a-.com", `starts or ends with "-"`},
		{"a 64-character label is refused", "https://" + strings.Repeat("a", 64) + ".com", "longer than 63"},
		{"a host over 253 characters is refused", "https://" + strings.Repeat("a.", 127) + "com", "longer than 253"},
		{"an underscore is refused", "https://a_b.com", "invalid character"},
		{"a unicode host is refused with a punycode hint", "https://bücher.example", "punycode"},
		{"a space is refused", "https://a b.com", "invalid character"},
		{"a backslash is refused", `https://a.com\evil.com`, "invalid character"},
		{"upper-case null is refused", "NULL", "missing scheme"},
		{"a star next to text is refused", "**", "missing scheme"},
		{"an over-long entry is refused", "https://" + strings.Repeat("a", 600) + ".com", "longer than 512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policy.ParseOriginPattern(tt.input)
			if err == nil {
				t.Fatalf("ParseOriginPattern(%q) = %+v, want an error", tt.input, got)
			}
			if !errors.Is(err, policy.ErrInvalidOrigin) {
				t.Errorf("error %v does not wrap ErrInvalidOrigin", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

func TestOriginMatcherAllow(t *testing.T) {
	tests := []struct {
		name         string
		allow        []string
		allowMissing bool
		origin       string
		want         bool
	}{
		{"an exact origin matches itself", []string{"https://a.com"}, false, "https://a.com", true},
		{"an exact origin matches its explicit default port", []string{"https://a.com"}, false, "https://a.com:443", true},
		{"an http origin matches port 80", []string{"http://a.com"}, false, "http://a.com:80", true},
		{"an http origin does not match port 443", []string{"http://a.com"}, false, "http://a.com:443", false},
		{"an exact origin does not match another port", []string{"https://a.com"}, false, "https://a.com:8443", false},
		{"an exact origin does not match the other scheme", []string{"https://a.com"}, false, "http://a.com", false},
		{"matching ignores case of scheme and host", []string{"https://a.com"}, false, "HTTPS://A.COM", true},
		{"a pattern written in upper case matches", []string{"HTTPS://A.COM"}, false, "https://a.com", true},
		{"an explicit port matches only that port", []string{"https://a.com:8443"}, false, "https://a.com:8443", true},
		{"an explicit port does not match the default port", []string{"https://a.com:8443"}, false, "https://a.com", false},
		{"an explicit default port matches the origin without a port", []string{"https://a.com:443"}, false, "https://a.com", true},
		{"an exact origin does not match a subdomain", []string{"https://a.com"}, false, "https://x.a.com", false},
		{"a wildcard matches a subdomain", []string{"https://*.example.com"}, false, "https://a.example.com", true},
		{"a wildcard matches a deeper subdomain", []string{"https://*.example.com"}, false, "https://a.b.example.com", true},
		{"a wildcard does not match the bare domain", []string{"https://*.example.com"}, false, "https://example.com", false},
		{"a wildcard does not match a name that merely ends the same", []string{"https://*.example.com"}, false, "https://evilexample.com", false},
		{"a wildcard does not match a look-alike suffix", []string{"https://*.example.com"}, false, "https://example.com.evil.net", false},
		{"a wildcard does not match the other scheme", []string{"https://*.example.com"}, false, "http://a.example.com", false},
		{"a wildcard does not match another port", []string{"https://*.example.com"}, false, "https://a.example.com:8443", false},
		{"a wildcard matches its default port spelled out", []string{"https://*.example.com"}, false, "https://a.example.com:443", true},
		{"a wildcard with a port matches that port", []string{"https://*.example.com:8443"}, false, "https://a.example.com:8443", true},
		{"a wildcard ignores case", []string{"https://*.example.com"}, false, "https://A.Example.COM", true},
		{"a single-label wildcard matches", []string{"http://*.localhost"}, false, "http://app.localhost", true},
		{"an IPv4 origin matches", []string{"http://10.0.0.1:8080"}, false, "http://10.0.0.1:8080", true},
		{"an IPv4 origin does not match another address", []string{"http://10.0.0.1"}, false, "http://10.0.0.2", false},
		{"an IPv6 origin matches any spelling of the address", []string{"http://[::1]"}, false, "http://[0:0::1]", true},
		{"an IPv6 origin matches with its port", []string{"http://[::1]:8080"}, false, "http://[::1]:8080", true},
		{"an IPv6 origin does not match another address", []string{"http://[::1]"}, false, "http://[::2]", false},
		{"a star allows any origin", []string{"*"}, false, "https://anything.example", true},
		{"a star allows even garbage", []string{"*"}, false, "garbage", true},
		{"a star does not admit a missing origin", []string{"*"}, false, "", false},
		{"a missing origin is allowed when allow_missing is set", nil, true, "", true},
		{"a missing origin is refused when allow_missing is unset", []string{"https://a.com"}, false, "", false},
		{"null matches when listed", []string{"null"}, false, "null", true},
		{"null does not match when not listed", []string{"https://a.com"}, false, "null", false},
		{"an origin with a path never matches", []string{"https://a.com"}, false, "https://a.com/", false},
		{"an origin with a query never matches", []string{"https://a.com"}, false, "https://a.com?x", false},
		{"an origin with userinfo never matches", []string{"https://a.com"}, false, "https://u@a.com", false},
		{"an origin without a scheme never matches", []string{"https://a.com"}, false, "a.com", false},
		{"an origin with a bad port never matches", []string{"https://a.com"}, false, "https://a.com:0", false},
		{"an origin with an empty port never matches", []string{"https://a.com"}, false, "https://a.com:", false},
		{"an origin with a trailing dot does not match", []string{"https://a.com"}, false, "https://a.com.", false},
		{"an origin with an invalid host never matches a wildcard", []string{"https://*.a.com"}, false, "https://x..a.com", false},
		{"an empty allowlist refuses a present origin", nil, true, "https://a.com", false},
		{"one of several entries matches", []string{"https://a.com", "https://*.b.com", "http://c.com:81"}, false, "http://c.com:81", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := policy.NewOriginMatcher(tt.allow, tt.allowMissing)
			if err != nil {
				t.Fatalf("NewOriginMatcher(%q) error = %v", tt.allow, err)
			}
			if got := m.Allow(tt.origin); got != tt.want {
				t.Errorf("Allow(%q) with %q = %t, want %t", tt.origin, tt.allow, got, tt.want)
			}
		})
	}
}

func TestNewOriginMatcherRefusesABadEntry(t *testing.T) {
	_, err := policy.NewOriginMatcher([]string{"https://a.com", "https://a.*.com"}, false)
	if !errors.Is(err, policy.ErrInvalidOrigin) {
		t.Fatalf("NewOriginMatcher error = %v, want ErrInvalidOrigin", err)
	}
	if !strings.Contains(err.Error(), "origins.allow[1]") {
		t.Errorf("error %q does not name the entry", err)
	}
}

func TestZeroAndNilMatchersAllowNothing(t *testing.T) {
	var zero policy.OriginMatcher
	var nilMatcher *policy.OriginMatcher
	for _, origin := range []string{"", "null", "https://a.com"} {
		if zero.Allow(origin) {
			t.Errorf("zero matcher allows %q", origin)
		}
		if nilMatcher.Allow(origin) {
			t.Errorf("nil matcher allows %q", origin)
		}
	}
}

func TestOriginMatcherAllowDoesNotAllocateForBrowserOrigins(t *testing.T) {
	m, err := policy.NewOriginMatcher([]string{"https://app.example.com", "https://*.example.net", "http://[::1]:8080"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, origin := range []string{
		"https://app.example.com",
		"https://a.b.example.net",
		"https://evil.example.org",
		"http://[::1]:8080",
	} {
		if n := testing.AllocsPerRun(100, func() { m.Allow(origin) }); n != 0 {
			t.Errorf("Allow(%q) allocates %.0f times per call", origin, n)
		}
	}
}

func BenchmarkOriginMatcherAllow(b *testing.B) {
	allow := []string{"https://*.example.net", "http://localhost:3000"}
	for i := 0; i < 50; i++ {
		allow = append(allow, "https://app"+strconv.Itoa(i)+".example.com")
	}
	m, err := policy.NewOriginMatcher(allow, false)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name   string
		origin string
		want   bool
	}{
		{"exact hit", "https://app42.example.com", true},
		{"wildcard hit", "https://a.b.example.net", true},
		{"miss", "https://evil.example.org", false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if m.Allow(c.origin) != c.want {
					b.Fatalf("Allow(%q) != %t", c.origin, c.want)
				}
			}
		})
	}
}
