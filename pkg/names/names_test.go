package names

import (
	"strings"
	"testing"
)

func TestSlug(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"Fabcar_1.0", 100, "fabcar-1-0"},
		{"--a--b--", 100, "a-b"},
		{"___", 100, "chaincode"},
		{"", 100, "chaincode"},
		{strings.Repeat("ab-", 20), 32, "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab"},
		{"Ünïcode", 100, "n-code"},
	} {
		if got := Slug(tc.in, tc.n, "chaincode"); got != tc.want {
			t.Errorf("Slug(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if got := Slug(tc.in, tc.n, "chaincode"); len(got) > tc.n {
			t.Errorf("Slug(%q, %d) = %q is longer than %d", tc.in, tc.n, got, tc.n)
		}
	}
}

func TestLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"cc_1.0":                "cc_1.0",
		"a b/c":                 "a-b-c",
		"-x-":                   "x",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
		"._" + "ok" + "_.":      "ok",
		"label:with:colons":     "label-with-colons",
	} {
		if got := LabelValue(in); got != want {
			t.Errorf("LabelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShortHash(t *testing.T) {
	a, b := ShortHash("a", 16), ShortHash("b", 16)
	if len(a) != 16 || a == b || ShortHash("a", 16) != a {
		t.Errorf("ShortHash: %q %q", a, b)
	}
}
