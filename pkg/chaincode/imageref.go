package chaincode

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// ImageRef is image.json: the image to run, pinned by digest.
type ImageRef struct {
	Name   string `json:"name"`
	Digest string `json:"digest,omitempty"`
}

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Ref is name@digest, or the name alone when there is no digest yet.
func (r ImageRef) Ref() string {
	if r.Digest == "" {
		return r.Name
	}
	return r.Name + "@" + r.Digest
}

// ReadImageRef reads and validates an image.json file.
func ReadImageRef(path string) (ImageRef, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return ImageRef{}, fmt.Errorf("%s: %w", path, err)
	}
	return ParseImageRef(path, data)
}

// ParseImageRef validates image.json bytes; name is used in errors.
func ParseImageRef(name string, data []byte) (ImageRef, error) {
	var r ImageRef
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%s: not valid JSON: %w", name, err)
	}
	if r.Name == "" {
		return r, fmt.Errorf("%s: field \"name\" is missing", name)
	}
	if strings.ContainsAny(r.Name, " \t\n@") {
		return r, fmt.Errorf("%s: field \"name\": %q is not an image name", name, r.Name)
	}
	if r.Digest != "" && !digestPattern.MatchString(r.Digest) {
		return r, fmt.Errorf("%s: field \"digest\": %q is not a sha256 digest", name, r.Digest)
	}
	return r, nil
}

// Marshal renders image.json.
func (r ImageRef) Marshal() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return append(b, '\n')
}
