package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInstallCopiesExecutablesAndSkipsTheRest(t *testing.T) {
	from, to := t.TempDir(), filepath.Join(t.TempDir(), "bin")
	for name, data := range map[string]string{"run": "R", "detect": "D"} {
		if err := os.WriteFile(filepath.Join(from, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(from, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := install(from, to)
	if err != nil || n != 2 {
		t.Fatalf("install: %d %v", n, err)
	}
	for name, want := range map[string]string{"run": "R", "detect": "D"} {
		info, err := os.Stat(filepath.Join(to, name))
		if err != nil || info.Mode().Perm() != 0o755 {
			t.Fatalf("%s: %v %v", name, info, err)
		}
		if got, _ := os.ReadFile(filepath.Join(to, name)); string(got) != want {
			t.Fatalf("%s: %q", name, got)
		}
	}
	entries, _ := os.ReadDir(to)
	if len(entries) != 2 {
		t.Fatalf("left in %s: %v", to, entries)
	}
	// Again over the copies: an init container that restarts must succeed.
	if _, err := install(from, to); err != nil {
		t.Fatal(err)
	}
}
