package event

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Strict JSON: an event is relayed to receivers in other languages, whose
// parsers differ where JSON itself is loose. A key repeated in one object
// ("id":1,"id":2) is read last-wins by hookrelay and first-wins by some
// receivers, so the two could act on different values; and bytes that are
// not UTF-8 are forwarded as they came, or mangled, depending on the parser.
// Both are refused wherever an event enters.

// CheckUTF8 refuses data that is not valid UTF-8, naming field.
func CheckUTF8(field string, data []byte) error {
	if !utf8.Valid(data) {
		return fieldErr(field, "is not valid UTF-8")
	}
	return nil
}

// DuplicateKey reports the first key that repeats within one object of the
// JSON document data, as a path from the document's root (payload.id,
// events[2].payload.to), and whether there was one. Keys are compared as
// decoded, so "id" and "\u0069d" are the same key. data must be valid JSON;
// for anything else the answer means nothing, but it never panics.
func DuplicateKey(data []byte) (path string, found bool) {
	type frame struct {
		object bool
		keys   map[string]struct{}
		first  string // an object's first key, kept without a map until a second arrives
		n      int    // keys (object) or elements (array) seen so far
		key    string // the key whose value is being read
	}
	var stack []frame
	wantKey := false
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{':
			stack = append(stack, frame{object: true})
			wantKey = true
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			wantKey = false
		case ',':
			if len(stack) > 0 {
				top := &stack[len(stack)-1]
				if top.object {
					wantKey = true
				} else {
					top.n++
				}
			}
		case '"':
			end, escaped := stringEnd(data, i)
			if wantKey && len(stack) > 0 && stack[len(stack)-1].object {
				top := &stack[len(stack)-1]
				key := string(data[i+1 : end])
				if escaped {
					var s string
					if json.Unmarshal(data[i:end+1], &s) == nil {
						key = s
					}
				}
				top.key = key
				switch {
				case top.n == 0:
					top.first = key
				case top.keys == nil && key != top.first:
					top.keys = map[string]struct{}{top.first: {}, key: {}}
				default:
					if _, dup := top.keys[key]; dup || key == top.first {
						segments := make([]string, 0, len(stack))
						for _, f := range stack {
							if f.object {
								segments = append(segments, pathKey(f.key))
							} else {
								segments = append(segments, "["+strconv.Itoa(f.n)+"]")
							}
						}
						return joinPath(segments), true
					}
					top.keys[key] = struct{}{}
				}
				top.n++
				wantKey = false
			}
			i = end
		}
	}
	return "", false
}

// stringEnd returns the index of the quote closing the string that opens
// at data[start], and whether the string holds an escape.
func stringEnd(data []byte, start int) (int, bool) {
	escaped := false
	for i := start + 1; i < len(data); i++ {
		switch data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return len(data) - 1, escaped
}

// maxPathKey bounds each key in a reported path: keys are the client's.
const maxPathKey = 64

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// pathKey writes a key for a path: as it is when plain, else quoted.
func pathKey(k string) string {
	if len(k) > maxPathKey {
		k = strings.ToValidUTF8(k[:maxPathKey], "") + "…"
	}
	if plainKey.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

func joinPath(segments []string) string {
	var b strings.Builder
	for i, s := range segments {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// checkStrict refuses invalid UTF-8 (field names it) and duplicate keys
// (named by their path under prefix) in one JSON document.
func checkStrict(field, prefix string, data []byte) error {
	if err := CheckUTF8(field, data); err != nil {
		return err
	}
	if path, dup := DuplicateKey(data); dup {
		if prefix != "" {
			path = prefix + "." + path
		}
		return duplicateErr(path)
	}
	return nil
}

func duplicateErr(path string) error {
	return fieldErr(path, "is a duplicate key: one object may hold each key once (receivers' parsers disagree on which value wins)")
}
