// Package subject maps a pool's channel to the NATS subject that carries its
// messages between nodes. It is part of the public contract: a backend that
// already speaks NATS publishes to a channel by publishing to its subject,
// and every node of the pool delivers the message to its subscribers.
//
// Layout:
//
//	wsfleet.<pool>.ch.<channel, escaped>
//
// The pool is a DNS label (a-z, 0-9, "-"), safe in a subject as it is. A
// channel name is 1..128 characters of A-Z a-z 0-9 _ . : @ / - (see
// api/channel), and "." separates subject tokens, so every character
// outside A-Z a-z 0-9 _ - is written as "~" and two upper-case hex digits
// ("news.eu" → "news~2Eeu"): the whole channel is one token, never empty,
// never a wildcard, and the mapping is one-to-one. "~" itself is not a
// channel character, so the escaping is unambiguous.
//
// The message payload on the subject is the JSON value a client published
// as "data" (any JSON), byte for byte; the node wraps it into the
// {"type":"message","channel":...,"data":...} frame its subscribers get.
//
// The per-pool wildcard wsfleet.<pool>.ch.> subscribes to every channel of a
// pool (e.g. for auditing); nodes subscribe to exact subjects only.
package subject

import (
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every subject of wsfleet.
const Prefix = "wsfleet"

// ErrNotAChannel: a subject that is not wsfleet's layout for a channel.
var ErrNotAChannel = errors.New("subject: not a wsfleet channel subject")

const hexDigits = "0123456789ABCDEF"

// Channel is the subject of a pool's channel.
func Channel(pool, channel string) string {
	var b strings.Builder
	b.Grow(len(Prefix) + len(pool) + len(channel)*3 + 5)
	b.WriteString(Prefix)
	b.WriteByte('.')
	b.WriteString(pool)
	b.WriteString(".ch.")
	for i := 0; i < len(channel); i++ {
		c := channel[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('~')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
	return b.String()
}

// PoolWildcard subscribes to every channel of a pool.
func PoolWildcard(pool string) string { return Prefix + "." + pool + ".ch.>" }

// Parse is Channel's inverse: the pool and channel of a channel subject.
func Parse(subj string) (pool, channel string, err error) {
	rest, ok := strings.CutPrefix(subj, Prefix+".")
	if !ok {
		return "", "", fmt.Errorf("%w: %q does not start with %q", ErrNotAChannel, subj, Prefix+".")
	}
	pool, esc, ok := strings.Cut(rest, ".ch.")
	if !ok || pool == "" || esc == "" || strings.Contains(pool, ".") {
		return "", "", fmt.Errorf("%w: %q is not %s.<pool>.ch.<channel>", ErrNotAChannel, subj, Prefix)
	}
	out := make([]byte, 0, len(esc))
	for i := 0; i < len(esc); i++ {
		c := esc[i]
		switch {
		case plain(c):
			out = append(out, c)
		case c == '~' && i+2 < len(esc) && unhex(esc[i+1]) >= 0 && unhex(esc[i+2]) >= 0:
			out = append(out, byte(unhex(esc[i+1])<<4|unhex(esc[i+2])))
			i += 2
		default:
			return "", "", fmt.Errorf("%w: %q has %q at byte %d of its channel", ErrNotAChannel, subj, c, i)
		}
	}
	return pool, string(out), nil
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
