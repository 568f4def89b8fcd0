package protocol

// The scanner: one pass over a client frame that decides whether it is
// valid JSON exactly as encoding/json's json.Valid does (same grammar, same
// nesting limit) and, in the same pass, finds the raw tokens of the
// top-level "type", "channel", "data" and "id" values. json.Valid followed
// by a second walk to find the values cost about twice as long; JSON libraries
// that validate faster do not refuse what encoding/json refuses (their
// nesting limits differ: fastjson stops at 300 levels, gjson has none), and
// the decoder must refuse exactly what it always has. The fuzz targets hold
// the scanner to json.Valid on arbitrary input.
//
// It never recurses: nesting is tracked on a small stack of the open
// containers' closing bytes, so a deeply nested frame costs heap for that
// stack (at most maxDepth bytes), not goroutine stack on the read loop.

// maxDepth is encoding/json's nesting limit (its scanner's
// maxNestingDepth): json.Valid refuses a value with more than this many
// containers open at once, the frame's own object included.
const maxDepth = 10000

// Classes of a byte inside a JSON string.
const (
	strPlain   = iota // copied as is: printable ASCII other than '"' and '\\'
	strQuote          // '"': ends the string
	strEscape         // '\\': starts an escape
	strControl        // below 0x20: not allowed unescaped
	strHigh           // 0x80 and up: part of a UTF-8 sequence, checked apart
)

var strClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = strControl
	}
	t['"'] = strQuote
	t['\\'] = strEscape
	for c := 0x80; c < 0x100; c++ {
		t[c] = strHigh
	}
	return t
}()

// valueInfo is what the scanner noticed in one value, for the decoder to
// skip work it does not need.
type valueInfo struct {
	// escaped: a string in it has a backslash escape.
	escaped bool
	// high: a string in it has a byte of 0x80 or above (so its UTF-8 may be
	// invalid: encoding/json does not check).
	high bool
	// spaced: it has whitespace between its tokens (it is not compact).
	spaced bool
}

// rawFrame holds the raw tokens of the top-level values the decoder reads,
// nil when absent; a repeated key keeps its last value.
type rawFrame struct {
	typ, channel, data, id []byte
	dataInfo               valueInfo
}

// scanFrame scans the object that starts at b[i] (b[i] == '{') to the end
// of b. ok is false when b is not valid JSON.
func scanFrame(b []byte, i int) (f rawFrame, ok bool) {
	// Scratch for the values' scans: on the stack unless a value nests
	// deeper than it holds.
	var buf [64]byte
	stack := buf[:0]
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return f, skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return f, false
		}
		k := i
		var kinfo valueInfo
		if i = scanString(b, i, &kinfo); i < 0 {
			return f, false
		}
		key := b[k:i]
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return f, false
		}
		v := skipSpace(b, i+1)
		var info valueInfo
		if i, stack = scanValue(b, v, &info, stack); i < 0 {
			return f, false
		}
		switch whichKey(key, kinfo.escaped) {
		case keyType:
			f.typ = b[v:i]
		case keyChannel:
			f.channel = b[v:i]
		case keyData:
			f.data, f.dataInfo = b[v:i], info
		case keyID:
			f.id = b[v:i]
		}
		if i = skipSpace(b, i); i >= len(b) {
			return f, false
		}
		switch b[i] {
		case '}':
			return f, skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return f, false
		}
	}
}

// scanValue scans the JSON value that starts at b[i], nested in the
// frame's object, and returns the index just past it, or -1 when it is not
// valid. stack is scratch space for the closing bytes of open containers;
// the (possibly grown) stack is returned for reuse.
func scanValue(b []byte, i int, info *valueInfo, stack []byte) (int, []byte) {
	stack = stack[:0]
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return -1, stack
		}
		switch c := b[i]; c {
		case '"':
			if i = scanString(b, i, info); i < 0 {
				return -1, stack
			}
		case '{', '[':
			// The frame's object is one level; this one more.
			if len(stack)+2 > maxDepth {
				return -1, stack
			}
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			j := skipSpace(b, i+1)
			info.spaced = info.spaced || j > i+1
			if j < len(b) && b[j] == closer {
				i = j + 1 // empty: a complete value
				break
			}
			stack = append(stack, closer)
			if c == '{' {
				if j = scanKey(b, j, info); j < 0 {
					return -1, stack
				}
			}
			i = j
			continue // to the first member's value
		case 't':
			if i = scanLiteral(b, i, "true"); i < 0 {
				return -1, stack
			}
		case 'f':
			if i = scanLiteral(b, i, "false"); i < 0 {
				return -1, stack
			}
		case 'n':
			if i = scanLiteral(b, i, "null"); i < 0 {
				return -1, stack
			}
		default:
			if i = scanNumber(b, i); i < 0 {
				return -1, stack
			}
		}
		// A value ended just before b[i]: close what it completes, then
		// find the next member's value, or the end.
		for {
			if len(stack) == 0 {
				return i, stack
			}
			j := skipSpace(b, i)
			info.spaced = info.spaced || j > i
			if j >= len(b) {
				return -1, stack
			}
			closer := stack[len(stack)-1]
			if b[j] == closer {
				stack = stack[:len(stack)-1]
				i = j + 1
				continue
			}
			if b[j] != ',' {
				return -1, stack
			}
			i = skipSpace(b, j+1)
			info.spaced = info.spaced || i > j+1
			if closer == '}' {
				if i = scanKey(b, i, info); i < 0 {
					return -1, stack
				}
			}
			break
		}
	}
}

// scanKey scans `"key" :` and the whitespace after it inside a nested
// object, returning the index of the member's value, or -1.
func scanKey(b []byte, i int, info *valueInfo) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = scanString(b, i, info); i < 0 {
		return -1
	}
	j := skipSpace(b, i)
	if j >= len(b) || b[j] != ':' {
		return -1
	}
	k := skipSpace(b, j+1)
	info.spaced = info.spaced || j > i || k > j+1
	return k
}

// scanString scans the string token that starts at b[i] (b[i] == '"') and
// returns the index just past its closing quote, or -1.
func scanString(b []byte, i int, info *valueInfo) int {
	for j := i + 1; j < len(b); j++ {
		switch strClass[b[j]] {
		case strPlain:
		case strQuote:
			return j + 1
		case strHigh:
			info.high = true
		case strControl:
			return -1
		case strEscape:
			info.escaped = true
			if j++; j >= len(b) {
				return -1
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return -1
				}
				j += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanLiteral checks that lit (true, false, null) starts at b[i].
func scanLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// scanNumber scans a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) int {
	if b[i] == '-' {
		if i++; i >= len(b) {
			return -1
		}
	}
	switch {
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
