// Command pause is the pod sandbox ("infra") process of the e2e cluster: it holds the pod's
// namespaces, reaps orphaned children when it runs as PID 1, and exits on SIGTERM or SIGINT.
// Build it static (CGO_ENABLED=0) and pack it with e2e/tools/pauseimage.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			reap()
		default:
			os.Exit(0)
		}
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
