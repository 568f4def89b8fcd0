package policy

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/durationpb"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Field paths, spelled with the proto field names so that a FieldViolation
// can be matched against the policy file an operator wrote.
const (
	fieldPolicy = "policy"

	fieldOrigins = "origins"
	fieldAllow   = "origins.allow"

	fieldHeartbeat = "heartbeat"
	fieldInterval  = "heartbeat.interval"
	fieldTimeout   = "heartbeat.timeout"

	fieldLimits              = "limits"
	fieldMaxConnections      = "limits.max_connections"
	fieldMaxConnectionsPerIP = "limits.max_connections_per_ip"
	fieldHandshakesPerSecond = "limits.handshakes_per_second"
	fieldHandshakeBurst      = "limits.handshake_burst"
	fieldMessagesPerSecond   = "limits.messages_per_second"
	fieldMessageBurst        = "limits.message_burst"
	fieldMaxMessageBytes     = "limits.max_message_bytes"

	fieldBreaker        = "breaker"
	fieldFailureRatio   = "breaker.failure_ratio"
	fieldMinSamples     = "breaker.min_samples"
	fieldWindow         = "breaker.window"
	fieldOpenDuration   = "breaker.open_duration"
	fieldHalfOpenProbes = "breaker.half_open_probes"

	fieldRejectWith = "handshake.reject_with"
)

// descRequired is the description of a missing group or duration.
const descRequired = "required"

// quotedPrefixLength bounds how much of an over-long entry a violation
// quotes, so that one bad entry cannot blow up an error response.
const quotedPrefixLength = 64

// Validate checks a whole policy and returns every violation at once (nil
// when valid), in field order, so that an operator fixes a file in one
// round. Field paths use the proto field names with indexes
// ("origins.allow[1]", "heartbeat.timeout", "limits.max_connections",
// "breaker.failure_ratio"). A missing group is one violation on the group
// ("heartbeat": "required"); a nil policy is one violation on "policy".
// The handshake group alone may be left out (it means reject_with: http).
// Descriptions are short and lowercase and, when about a value, quote it
// first as it reads in a policy file: `"500ms": must be at least 1s`.
//
// The bounds are the package's Min*/Max* constants.
func Validate(p *wsfleetv1.Policy) []*wsfleetv1.FieldViolation {
	if p == nil {
		return []*wsfleetv1.FieldViolation{{Field: fieldPolicy, Description: descRequired}}
	}
	var v validator
	v.origins(p.GetOrigins())
	v.heartbeat(p.GetHeartbeat())
	v.limits(p.GetLimits())
	v.breaker(p.GetBreaker())
	v.handshake(p.GetHandshake())
	return v.out
}

// Check is Validate as an error, for callers that only refuse (a node
// NACKing a pushed policy, a CLI checking a file before sending it). The
// error wraps ErrInvalidPolicy and lists every violation.
func Check(p *wsfleetv1.Policy) error {
	vs := Validate(p)
	if len(vs) == 0 {
		return nil
	}
	parts := make([]string, len(vs))
	for i, fv := range vs {
		parts[i] = fv.GetField() + ": " + fv.GetDescription()
	}
	return fmt.Errorf("%w: %s", ErrInvalidPolicy, strings.Join(parts, "; "))
}

type validator struct {
	out []*wsfleetv1.FieldViolation
}

func (v *validator) add(field, desc string) {
	v.out = append(v.out, &wsfleetv1.FieldViolation{Field: field, Description: desc})
}

func (v *validator) addf(field, format string, args ...any) {
	v.add(field, fmt.Sprintf(format, args...))
}

func (v *validator) origins(o *wsfleetv1.OriginPolicy) {
	if o == nil {
		v.add(fieldOrigins, descRequired)
		return
	}
	allow := o.GetAllow()
	if len(allow) > MaxOrigins {
		v.addf(fieldAllow, "must have at most %d entries (has %d)", MaxOrigins, len(allow))
	}
	// Duplicates are found by meaning, not spelling: "https://A.com:443"
	// repeats "https://a.com".
	seen := make(map[originKey]int, len(allow))
	for i, s := range allow {
		field := fmt.Sprintf("%s[%d]", fieldAllow, i)
		if len(s) > MaxOriginLength {
			v.addf(field, "%s: must be at most %d characters (is %d)", quotePrefix(s), MaxOriginLength, len(s))
			continue
		}
		p, err := ParseOriginPattern(s)
		if err != nil {
			var oe *originError
			if errors.As(err, &oe) {
				v.add(field, jsonString(s)+": "+oe.reason)
			} else {
				v.add(field, jsonString(s)+": "+err.Error())
			}
			continue
		}
		k := p.key()
		if first, dup := seen[k]; dup {
			v.addf(field, "%s: duplicate of %s[%d]", jsonString(s), fieldAllow, first)
			continue
		}
		seen[k] = i
		if p.Any && len(allow) > 1 {
			v.add(field, `"*": must be the only entry, it already allows every origin`)
		}
	}
}

func (v *validator) heartbeat(h *wsfleetv1.HeartbeatPolicy) {
	if h == nil {
		v.add(fieldHeartbeat, descRequired)
		return
	}
	interval, intervalOK := v.duration(fieldInterval, h.GetInterval())
	if intervalOK {
		switch {
		case interval < MinHeartbeatInterval:
			v.addf(fieldInterval, "%s: must be at least %s", durationText(h.GetInterval()), FormatDuration(MinHeartbeatInterval))
		case interval > MaxHeartbeatInterval:
			v.addf(fieldInterval, "%s: must be at most %s", durationText(h.GetInterval()), FormatDuration(MaxHeartbeatInterval))
		}
	}
	timeout, timeoutOK := v.duration(fieldTimeout, h.GetTimeout())
	if timeoutOK {
		// The comparison with interval is made even when interval is out of
		// range: both fixes are needed, and reporting both saves a round.
		switch {
		case intervalOK && timeout <= interval:
			v.addf(fieldTimeout, "%s: must be greater than %s (%s)", durationText(h.GetTimeout()), fieldInterval, durationText(h.GetInterval()))
		case timeout <= 0:
			v.addf(fieldTimeout, "%s: must be positive", durationText(h.GetTimeout()))
		case timeout > MaxHeartbeatTimeout:
			v.addf(fieldTimeout, "%s: must be at most %s", durationText(h.GetTimeout()), FormatDuration(MaxHeartbeatTimeout))
		}
	}
}

func (v *validator) limits(l *wsfleetv1.LimitsPolicy) {
	if l == nil {
		v.add(fieldLimits, descRequired)
		return
	}
	v.count(fieldMaxConnections, l.GetMaxConnections(), MaxConnections)
	v.count(fieldMaxConnectionsPerIP, l.GetMaxConnectionsPerIp(), MaxConnectionsPerIP)
	v.count(fieldHandshakesPerSecond, l.GetHandshakesPerSecond(), MaxHandshakesPerSecond)
	v.count(fieldHandshakeBurst, l.GetHandshakeBurst(), MaxHandshakeBurst)
	v.count(fieldMessagesPerSecond, l.GetMessagesPerSecond(), MaxMessagesPerSecond)
	v.count(fieldMessageBurst, l.GetMessageBurst(), MaxMessageBurst)
	v.count(fieldMaxMessageBytes, l.GetMaxMessageBytes(), MaxMessageBytes)
}

func (v *validator) breaker(b *wsfleetv1.BreakerPolicy) {
	if b == nil {
		v.add(fieldBreaker, descRequired)
		return
	}
	r := b.GetFailureRatio()
	switch {
	case math.IsNaN(r):
		v.addf(fieldFailureRatio, "%s: must be a number", formatFloat(r))
	case r <= 0:
		v.addf(fieldFailureRatio, "%s: must be greater than 0", formatFloat(r))
	case r > 1:
		v.addf(fieldFailureRatio, "%s: must be at most 1", formatFloat(r))
	}
	v.count(fieldMinSamples, b.GetMinSamples(), MaxBreakerMinSamples)
	v.positiveDuration(fieldWindow, b.GetWindow(), MaxBreakerWindow)
	v.positiveDuration(fieldOpenDuration, b.GetOpenDuration(), MaxBreakerOpenDuration)
	v.count(fieldHalfOpenProbes, b.GetHalfOpenProbes(), MaxHalfOpenProbes)
}

// handshake checks the one group that may be left out: unset means
// reject_with: http, as it did before the group existed.
func (v *validator) handshake(h *wsfleetv1.HandshakePolicy) {
	m := h.GetRejectWith()
	if _, known := EnumText(m.Descriptor(), m.Number()); !known {
		v.addf(fieldRejectWith, "%d: must be one of %s", m, strings.Join(EnumTexts(m.Descriptor()), ", "))
	}
}

// count checks a field that must be in 1..limit.
func (v *validator) count(field string, n int32, limit int) {
	switch {
	case n <= 0:
		v.addf(field, "%d: must be positive", n)
	case int(n) > limit:
		v.addf(field, "%d: must be at most %d", n, limit)
	}
}

// duration returns a present, well-formed duration, or records why there is
// none.
func (v *validator) duration(field string, d *durationpb.Duration) (time.Duration, bool) {
	if d == nil {
		v.add(field, descRequired)
		return 0, false
	}
	if err := d.CheckValid(); err != nil {
		v.addf(field, "not a valid duration (seconds %d, nanos %d)", d.GetSeconds(), d.GetNanos())
		return 0, false
	}
	return d.AsDuration(), true
}

// positiveDuration checks a duration that must be in (0, limit].
func (v *validator) positiveDuration(field string, d *durationpb.Duration, limit time.Duration) {
	got, ok := v.duration(field, d)
	if !ok {
		return
	}
	switch {
	case got <= 0:
		v.addf(field, "%s: must be positive", durationText(d))
	case got > limit:
		v.addf(field, "%s: must be at most %s", durationText(d), FormatDuration(limit))
	}
}

// durationText quotes a well-formed duration as a policy file writes it.
// Durations beyond time.Duration's ±292 years are written in seconds rather
// than as the saturated value AsDuration would give.
func durationText(d *durationpb.Duration) string {
	const maxSeconds = math.MaxInt64 / int64(time.Second)
	if s := d.GetSeconds(); s > maxSeconds || s < -maxSeconds {
		return jsonString(fmt.Sprintf("%ds", s))
	}
	return jsonString(FormatDuration(d.AsDuration()))
}

// quotePrefix quotes the start of an over-long value.
func quotePrefix(s string) string {
	if len(s) <= quotedPrefixLength {
		return jsonString(s)
	}
	cut := quotedPrefixLength
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return jsonString(s[:cut] + "...")
}

// ValidatePoolName checks that a pool name is a DNS label: 1-63 characters
// of a-z, 0-9 and "-", not starting or ending with "-". Pool names end up in
// metric labels, file names and URLs, where anything else needs escaping.
// An empty name is refused: requests that default it to DefaultPool must do
// so before validating. The error wraps ErrInvalidPoolName.
func ValidatePoolName(name string) error {
	reason := poolNameReason(name)
	if reason == "" {
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidPoolName, name, reason)
}

func poolNameReason(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > maxLabelLength:
		return fmt.Sprintf("longer than %d characters", maxLabelLength)
	case name[0] == '-' || name[len(name)-1] == '-':
		return `must not start or end with "-"`
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Sprintf(`invalid character %q: only a-z, 0-9 and "-"`, r)
		}
	}
	return ""
}
