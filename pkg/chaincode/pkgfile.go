package chaincode

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// CodeFile is the code archive inside a chaincode package.
const CodeFile = "code.tar.gz"

// maxMetadataSize bounds metadata.json: it holds three short strings.
const maxMetadataSize = 1 << 20

// Package is a chaincode package file as `peer lifecycle chaincode package` writes it.
type Package struct {
	Metadata *Metadata
	Code     []byte // code.tar.gz, still compressed
	ID       string // label:sha256(file), as the peer computes it
}

// PackageID computes the package ID the peer assigns to a package file's bytes.
func PackageID(label string, file []byte) string {
	sum := sha256.Sum256(file)
	return label + ":" + hex.EncodeToString(sum[:])
}

// ReadPackageFile reads a package file and checks its outer archive.
func ReadPackageFile(file string, limits Limits) (*Package, error) {
	info, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if info.Size() > limits.MaxTotalSize {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", file, info.Size(), limits.MaxTotalSize)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p := &Package{}
	var mdBytes []byte
	err = walkTarGz(bytes.NewReader(data), limits, func(hdr *tar.Header, r io.Reader) error {
		switch hdr.Name {
		case MetadataFile:
			if hdr.Size > maxMetadataSize {
				return fmt.Errorf("%s is %d bytes", MetadataFile, hdr.Size)
			}
			mdBytes, err = io.ReadAll(r)
			return err
		case CodeFile:
			p.Code, err = io.ReadAll(r)
			return err
		}
		return nil // the peer ignores other entries too
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if mdBytes == nil {
		return nil, fmt.Errorf("%s: no %s in the package", file, MetadataFile)
	}
	if p.Code == nil {
		return nil, fmt.Errorf("%s: no %s in the package", file, CodeFile)
	}
	if p.Metadata, err = ParseMetadata(file+": "+MetadataFile, mdBytes); err != nil {
		return nil, err
	}
	if err := p.Metadata.CheckLabel(file + ": " + MetadataFile); err != nil {
		return nil, err
	}
	p.ID = PackageID(p.Metadata.Label, data)
	return p, nil
}

// ExtractCode unpacks the package's code.tar.gz into dir (which must exist and be
// empty), refusing traversal, links, devices and oversized entries.
func (p *Package) ExtractCode(dir string, limits Limits) error {
	return ExtractTarGz(bytes.NewReader(p.Code), dir, limits)
}

// ExtractTarGz unpacks a gzipped tar into dir safely.
func ExtractTarGz(r io.Reader, dir string, limits Limits) error {
	return walkTarGz(r, limits, func(hdr *tar.Header, body io.Reader) error {
		target := filepath.Join(dir, filepath.FromSlash(path.Clean(hdr.Name)))
		if hdr.Typeflag == tar.TypeDir {
			return os.MkdirAll(target, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		if _, err := io.Copy(f, body); err != nil {
			_ = f.Close()
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		return f.Close()
	})
}

// walkTarGz calls fn for each regular file and directory of a gzipped tar after
// checking the entry: a relative path that stays inside, a sane size, and no links,
// devices or other special types.
func walkTarGz(r io.Reader, limits Limits, fn func(*tar.Header, io.Reader) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a gzip archive: %w", err)
	}
	tr := tar.NewReader(gz)
	var total int64
	seen := map[string]bool{}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bad tar archive: %w", err)
		}
		if n >= limits.MaxEntries {
			return fmt.Errorf("more than %d entries", limits.MaxEntries)
		}
		if err := checkEntryName(hdr.Name); err != nil {
			return err
		}
		if err := checkName(strings.TrimSuffix(path.Clean(hdr.Name), "/"), limits); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeSymlink, tar.TypeLink:
			return fmt.Errorf("entry %q is a link (refused)", hdr.Name)
		default:
			return fmt.Errorf("entry %q has type %q: only files and folders are allowed", hdr.Name, string(hdr.Typeflag))
		}
		if hdr.Size > limits.MaxFileSize || hdr.Size < 0 {
			return fmt.Errorf("entry %q is %d bytes, over the %d-byte limit", hdr.Name, hdr.Size, limits.MaxFileSize)
		}
		total += hdr.Size
		if total > limits.MaxTotalSize {
			return fmt.Errorf("over the %d-byte limit in total", limits.MaxTotalSize)
		}
		clean := path.Clean(hdr.Name)
		if hdr.Typeflag == tar.TypeReg {
			if seen[clean] {
				return fmt.Errorf("entry %q appears twice", hdr.Name)
			}
			seen[clean] = true
		}
		// A short body means a lying header; LimitReader keeps a long one bounded.
		if err := fn(hdr, io.LimitReader(tr, hdr.Size)); err != nil {
			return err
		}
	}
}

func checkEntryName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return fmt.Errorf("entry %q has an unsafe path", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return fmt.Errorf("entry %q escapes the package (path traversal refused)", name)
		}
	}
	return nil
}

// checkName refuses names no chaincode needs and that make trouble downstream:
// control characters (a newline would forge lines in the peer log), over-long names,
// and trees deeper than the limit.
func checkName(name string, limits Limits) error {
	if len(name) > 1024 {
		return fmt.Errorf("entry %.60q... has a name over 1024 bytes", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("entry %q has a control character in its name", name)
		}
	}
	if depth := strings.Count(name, "/") + 1; depth > limits.MaxDepth {
		return fmt.Errorf("entry %q is %d folders deep, over the limit of %d", name, depth, limits.MaxDepth)
	}
	return nil
}

// File is one entry of an archive written by WriteTarGz.
type File struct {
	Name string
	Data []byte
	Mode int64
}

// WriteTarGz writes files as a deterministic gzipped tar: sorted names, zero times
// and owners, so the same files always give the same bytes (and package ID).
func WriteTarGz(w io.Writer, files []File) error {
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, f := range sorted {
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: f.Name, Mode: mode, Size: int64(len(f.Data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// BuildPackage makes a chaincode package file's bytes from metadata.json bytes and
// the files of code.tar.gz.
func BuildPackage(metadata []byte, code []File) ([]byte, error) {
	var codeBuf bytes.Buffer
	if err := WriteTarGz(&codeBuf, code); err != nil {
		return nil, fmt.Errorf("write %s: %w", CodeFile, err)
	}
	var out bytes.Buffer
	err := WriteTarGz(&out, []File{
		{Name: MetadataFile, Data: metadata},
		{Name: CodeFile, Data: codeBuf.Bytes()},
	})
	if err != nil {
		return nil, fmt.Errorf("write package: %w", err)
	}
	return out.Bytes(), nil
}
