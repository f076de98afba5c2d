package node

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kubecc/kubecc/pkg/fsutil"
	"github.com/kubecc/kubecc/pkg/image"
)

// MaxImageBytes bounds the files of the two layers together: they are held in
// memory while the image is assembled.
const MaxImageBytes = 1 << 30

// copySource copies the package's src/ into dst: regular files (exec bits kept)
// and folders only. A node_modules folder at the top is left out (logged): the
// image's node_modules is always what npm installed from package.json and the
// lockfile.
func copySource(src, dst string, log io.Writer) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case rel == "node_modules" && d.IsDir():
			logf(log, "src/node_modules left out: npm installs the dependencies")
			return fs.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return fsutil.CopyFile(p, target)
		default:
			return fmt.Errorf("src/%s is not a regular file (links, devices and pipes are refused)", filepath.ToSlash(rel))
		}
	})
}

// Collect turns the built project in dir into the entries of two layers under
// root (AppDir): node_modules (the folder itself and everything below it) and the
// rest. Files are 0755 when npm or the build left any exec bit, else 0644, owned by
// root; folders 0755. Symbolic links (npm's node_modules/.bin commands) are kept
// when they are relative and stay inside the project; other links, and devices,
// pipes or sockets, are refused. So is a native addon: an ELF *.node file.
func Collect(dir, root string) (modules, app []image.Entry, err error) {
	var total int64
	modules = []image.Entry{{Path: path.Join(root, "node_modules"), Dir: true, Mode: 0o755}}
	app = []image.Entry{{Path: root, Dir: true, Mode: 0o755}}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." || rel == "node_modules" {
			return nil
		}
		e, err := entry(p, rel, d, &total)
		if err != nil {
			return err
		}
		e.Path = path.Join(root, rel)
		if strings.HasPrefix(rel, "node_modules/") {
			modules = append(modules, e)
		} else {
			app = append(app, e)
		}
		return nil
	})
	return modules, app, err
}

// entry is the layer entry of the file p (rel in the project), its Path unset;
// total counts the bytes read so far.
func entry(p, rel string, d fs.DirEntry, total *int64) (image.Entry, error) {
	switch {
	case d.IsDir():
		return image.Entry{Dir: true, Mode: 0o755}, nil
	case d.Type()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return image.Entry{}, err
		}
		return image.Entry{Link: target}, checkLink(rel, target)
	case d.Type().IsRegular():
		info, err := d.Info()
		if err != nil {
			return image.Entry{}, err
		}
		if *total += info.Size(); *total > MaxImageBytes {
			return image.Entry{}, fmt.Errorf("the built project is over %d bytes (node_modules and application together)", MaxImageBytes)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return image.Entry{}, err
		}
		if strings.HasSuffix(rel, ".node") && bytes.HasPrefix(data, []byte("\x7fELF")) {
			return image.Entry{}, nativeAddon(rel)
		}
		mode := int64(0o644)
		if info.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		return image.Entry{Data: data, Mode: mode}, nil
	}
	return image.Entry{}, fmt.Errorf("%s is not a regular file, folder or link (%s): refused", rel, d.Type())
}

// checkLink accepts a link at rel (relative to the project) whose target is
// relative and stays inside the project.
func checkLink(rel, target string) error {
	if path.IsAbs(target) {
		return fmt.Errorf("%s is a link to %s: links to absolute paths are refused", rel, target)
	}
	resolved := path.Join(path.Dir(rel), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%s is a link to %s, outside the project: refused", rel, target)
	}
	return nil
}

// nativeAddon is the error for a compiled addon at rel, naming its module.
func nativeAddon(rel string) error {
	module := "the application"
	if i := strings.LastIndex(rel, "node_modules/"); i >= 0 {
		parts := strings.Split(rel[i+len("node_modules/"):], "/")
		module = "module " + parts[0]
		if strings.HasPrefix(parts[0], "@") && len(parts) > 1 {
			module += "/" + parts[1]
		}
	}
	return fmt.Errorf("%s is a native addon (compiled code) of %s: kubecc refuses native addons for now, since npm builds them for the build host, whose architecture and C library need not be the image's; use a pure JavaScript module", rel, module)
}
