package strictyaml

import (
	"strings"
	"testing"
)

func TestUnmarshal(t *testing.T) {
	type doc struct {
		Launch string `json:"launch"`
	}
	var d doc
	if err := Unmarshal("k.yaml", []byte("launch: job\n"), &d); err != nil || d.Launch != "job" {
		t.Fatalf("%+v %v", d, err)
	}
	if err := Unmarshal("k.yaml", []byte("  \n"), &d); err != nil || d.Launch != "job" {
		t.Fatalf("empty input changed the value: %+v %v", d, err)
	}
	for in, want := range map[string]string{
		"lunch: job\n":                         `k.yaml: unknown key "lunch"`,
		"launch: [1]\n":                        "k.yaml: ",
		"a: 1\na: 2\nb: 3\nb: 4\nc: 1\nc: 2\n": "(and ",
	} {
		err := Unmarshal("k.yaml", []byte(in), &d)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line containing %q", in, err, want)
		}
	}
}
