package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubecc/kubecc/pkg/chaincode"
)

// Check reads src/package.json the way Compile does (present, valid, with a start
// script), so a package that cannot build is refused on the peer, before any source
// is pushed for a build Job. It also refuses local dependencies that lead out of
// the package (a "file:" or "link:" spec, or a path, that is absolute or leaves
// src/ with ".."), and workspaces that do: npm would read those folders of the
// build host. (npm still runs the package's install and build scripts: see the
// package comment.)
func (l *Language) Check(srcDir string, _ *chaincode.Metadata) error {
	src := filepath.Join(srcDir, "src")
	if _, err := ReadPackageJSON(src); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		return fmt.Errorf("src/package.json: %w", err)
	}
	return checkLocalPaths(data)
}

// checkLocalPaths refuses dependency specs and workspaces in package.json (data)
// that name folders outside src/.
func checkLocalPaths(data []byte) error {
	var pkg struct {
		Dependencies         map[string]string `json:"dependencies"`
		DevDependencies      map[string]string `json:"devDependencies"`
		OptionalDependencies map[string]string `json:"optionalDependencies"`
		PeerDependencies     map[string]string `json:"peerDependencies"`
		Overrides            json.RawMessage   `json:"overrides"`
		Workspaces           json.RawMessage   `json:"workspaces"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return fmt.Errorf("src/package.json: not valid JSON: %w", err)
	}
	for _, f := range []struct {
		field string
		deps  map[string]string
	}{
		{"dependencies", pkg.Dependencies}, {"devDependencies", pkg.DevDependencies},
		{"optionalDependencies", pkg.OptionalDependencies}, {"peerDependencies", pkg.PeerDependencies},
	} {
		names := make([]string, 0, len(f.deps))
		for name := range f.deps {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if leaves(f.deps[name]) {
				return fmt.Errorf("src/package.json: field %q: %q leads outside the package", f.field+"."+name, f.deps[name])
			}
		}
	}
	if err := checkOverrides("overrides", pkg.Overrides); err != nil {
		return err
	}
	var ws []string
	if len(pkg.Workspaces) > 0 {
		var obj struct {
			Packages []string `json:"packages"`
		}
		if json.Unmarshal(pkg.Workspaces, &ws) != nil && json.Unmarshal(pkg.Workspaces, &obj) == nil {
			ws = obj.Packages
		}
	}
	for _, w := range ws {
		if leaves("file:" + w) {
			return fmt.Errorf("src/package.json: field \"workspaces\": %q leads outside the package", w)
		}
	}
	return nil
}

// checkOverrides walks npm's overrides (nested objects of specs).
func checkOverrides(field string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	var spec string
	if json.Unmarshal(raw, &spec) == nil {
		if leaves(spec) {
			return fmt.Errorf("src/package.json: field %q: %q leads outside the package", field, spec)
		}
		return nil
	}
	var obj map[string]json.RawMessage
	_ = json.Unmarshal(raw, &obj) // anything else (null, a number) names no folder
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := checkOverrides(field+"."+k, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// leaves reports whether an npm dependency spec names a folder or file outside
// src/: file: and link: specs, and bare paths (./x, ../x, /x, ~/x; "~1.2" is a
// version range), that are absolute, start at a home folder, or climb out with "..".
func leaves(spec string) bool {
	p, ok := strings.CutPrefix(spec, "file:")
	if !ok {
		p, ok = strings.CutPrefix(spec, "link:")
	}
	if !ok {
		if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") && !strings.HasPrefix(spec, "/") && !strings.HasPrefix(spec, "~/") && spec != "." && spec != ".." {
			return false
		}
		p = spec
	}
	p = strings.ReplaceAll(p, "\\", "/")
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~") || (len(p) > 1 && p[1] == ':') {
		return true
	}
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../")
}
