// Package strictyaml decodes the small YAML files kubecc reads (config.yaml, a
// package's kubecc.yaml) refusing unknown keys. It is a leaf: the detect hook links it
// without the Kubernetes API types that the builder config carries.
package strictyaml

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// Unmarshal decodes YAML into v, refusing unknown keys; errors are one line that
// names the file (name) and the key. Empty input leaves v as it is.
func Unmarshal(name string, data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		msg := err.Error()
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("%s: unknown key %q", name, m[1])
		}
		msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
		// YAML lists some errors one to a line: keep the first, on one line.
		if lines := strings.Split(strings.TrimSpace(msg), "\n"); len(lines) > 1 {
			msg = lines[0] + " " + strings.TrimSpace(lines[1])
			if len(lines) > 2 {
				msg += fmt.Sprintf(" (and %d more)", len(lines)-2)
			}
		}
		return fmt.Errorf("%s: %s", name, msg)
	}
	return nil
}
