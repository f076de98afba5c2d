package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// PodOnlyName is the lean build of run (build tag podonly) that serves resident
// launches; make puts it beside run.
const PodOnlyName = "run-pod"

// execPodOnly replaces this process with run-pod, same arguments and environment: the
// peer keeps the same pid to signal. It returns only if that cannot be done; a
// missing run-pod is no error (run does the launch itself).
func execPodOnly() error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find run-pod: %w", err)
	}
	lean := filepath.Join(filepath.Dir(self), PodOnlyName)
	if _, err := os.Stat(lean); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := syscall.Exec(lean, os.Args, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", lean, err)
	}
	return nil
}
