// pause: the pod sandbox's process for the real test nodes. It sleeps until SIGTERM/SIGINT
// and reaps children (it is PID 1 of the pod's PID namespace), which is all the sandbox
// container has to do. A stand-in for RKE2's rancher/mirrored-pause image (built from
// kubernetes/build/pause/linux/pause.c), written in Go so it builds static without a C toolchain.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
