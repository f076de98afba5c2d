// Package names turns untrusted strings (package labels, IDs) into the names
// Kubernetes and registries accept. It is the one sanitiser: repository names,
// object names and label values all come from here.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

var (
	slugUnsafe  = regexp.MustCompile(`[^a-z0-9]+`)
	labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
)

// Slug lowers s and turns every run of other characters than a-z and 0-9 into one
// '-', trimmed at both ends and cut to at most n characters: valid as a DNS label
// part and as a repository path component. An empty result becomes fallback.
func Slug(s string, n int, fallback string) string {
	v := strings.Trim(slugUnsafe.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(v) > n {
		v = strings.Trim(v[:n], "-")
	}
	if v == "" {
		return fallback
	}
	return v
}

// LabelValue makes s a valid label value (63 characters, alphanumeric at both ends).
func LabelValue(s string) string {
	v := labelUnsafe.ReplaceAllString(s, "-")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-_.")
}

// ShortHash is the first n hex digits of sha256(s): a short name that two different
// inputs do not share, where the readable part of a name may.
func ShortHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}
