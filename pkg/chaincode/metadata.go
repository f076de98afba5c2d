// Package chaincode reads and writes what the peer hands to the hooks: chaincode
// packages, metadata.json, image.json and chaincode.json. Everything in a package is
// untrusted input, so every reader here validates before it trusts.
package chaincode

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Kind is what kubecc makes of a package.
type Kind int

// The kinds of package kubecc claims.
const (
	KindNone  Kind = iota // not ours: let the next builder try
	KindGo                // Go source from `peer lifecycle chaincode package --lang golang`
	KindImage             // a package naming a prebuilt image (image.json)
	KindNode              // Node.js source from `peer lifecycle chaincode package --lang node`
)

// MetadataFile is the name of the package metadata the peer writes to the metadata dir.
const MetadataFile = "metadata.json"

// ImageFile names the image in an image package (code.tar.gz) and in the build output.
const ImageFile = "image.json"

// Metadata is the package's metadata.json. Raw keeps the bytes: the peer passes them
// through unchanged, extra fields included, and the content hash covers them.
type Metadata struct {
	Type  string `json:"type"`
	Path  string `json:"path"`
	Label string `json:"label"`
	Raw   []byte `json:"-"`
}

// LabelPattern is the peer's rule for package labels.
var LabelPattern = regexp.MustCompile(`^[[:alnum:]][[:alnum:]_.+-]*$`)

// ErrNotOurs means the package is of a type kubecc does not build.
var ErrNotOurs = errors.New("not a package kubecc builds")

// ReadMetadata reads and checks metadataDir/metadata.json.
func ReadMetadata(metadataDir string) (*Metadata, error) {
	path := filepath.Join(metadataDir, MetadataFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ParseMetadata(path, data)
}

// ParseMetadata parses metadata.json bytes; name is used in errors.
func ParseMetadata(name string, data []byte) (*Metadata, error) {
	md := &Metadata{Raw: data}
	if err := json.Unmarshal(data, md); err != nil {
		return nil, fmt.Errorf("%s: not valid JSON: %w", name, err)
	}
	if md.Type == "" {
		return nil, fmt.Errorf("%s: field \"type\" is missing", name)
	}
	return md, nil
}

// Kind says which kind of package this metadata describes.
func (m *Metadata) Kind() Kind {
	switch strings.ToLower(m.Type) {
	case "golang":
		return KindGo
	case "kubecc", "k8s":
		return KindImage
	case "node":
		return KindNode
	}
	return KindNone
}

// CheckLabel validates the label the way the peer does; name is used in errors.
func (m *Metadata) CheckLabel(name string) error {
	if !LabelPattern.MatchString(m.Label) {
		return fmt.Errorf("%s: field \"label\": %q is not a valid package label", name, m.Label)
	}
	return nil
}

// Detect decides whether kubecc builds the package the peer unpacked into srcDir
// and metadataDir. ErrNotOurs (quietly) for other builders' packages; any other
// error is a package that claims to be ours but is broken.
func Detect(srcDir, metadataDir string) (Kind, *Metadata, error) {
	md, err := ReadMetadata(metadataDir)
	if err != nil {
		return KindNone, nil, err
	}
	kind := md.Kind()
	switch kind {
	case KindNone:
		return KindNone, md, ErrNotOurs
	case KindImage:
		if _, err := ReadImageRef(filepath.Join(srcDir, ImageFile)); err != nil {
			return kind, md, err
		}
	case KindGo:
		if err := md.CheckLabel(filepath.Join(metadataDir, MetadataFile)); err != nil {
			return kind, md, err
		}
		info, err := os.Stat(filepath.Join(srcDir, "src"))
		if err != nil || !info.IsDir() {
			return kind, md, fmt.Errorf("%s: Go package has no src/ folder", srcDir)
		}
	case KindNode:
		// The peer's Node platform requires src/package.json (ValidateCodePackage:
		// "no package.json found at the root of the chaincode package").
		if err := md.CheckLabel(filepath.Join(metadataDir, MetadataFile)); err != nil {
			return kind, md, err
		}
		info, err := os.Stat(filepath.Join(srcDir, "src", "package.json"))
		if err != nil || !info.Mode().IsRegular() {
			return kind, md, fmt.Errorf("%s: Node.js package has no src/package.json", srcDir)
		}
	}
	return kind, md, nil
}
