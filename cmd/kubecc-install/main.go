// Command kubecc-install copies kubecc's binaries from its image into a volume: the
// init container's job in a peer Pod (the image has no shell, so no cp). Each file is
// written beside its final name and renamed, so the peer never sees half a hook.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// src is where the image keeps the binaries.
const src = "/opt/kubecc/bin"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: install DEST (copies "+src+"/* to DEST/bin)")
		os.Exit(2)
	}
	n, err := install(src, filepath.Join(os.Args[1], "bin"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubecc install: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "kubecc install: %d files copied to %s\n", n, filepath.Join(os.Args[1], "bin"))
}

func install(from, to string) (int, error) {
	entries, err := os.ReadDir(from)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	tmp, err := os.CreateTemp(filepath.Dir(to), "."+filepath.Base(to)+"-")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := io.Copy(tmp, in); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), to)
}
