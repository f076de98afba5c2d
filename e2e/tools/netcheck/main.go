// Command netcheck checks that a pod can reach a TCP listener on the host.
//
//	netcheck listen ADDR      accept connections on ADDR, answer each with "kubecc-ok <peer>\n",
//	                          print the peer address on stdout; exit after -n connections or -timeout.
//	netcheck dial ADDR        connect to ADDR, print the first line received, exit 0 on
//	                          "kubecc-ok", 1 otherwise (retries until -timeout).
//
// It is static (CGO_ENABLED=0) so it runs from a one-layer image (e2e/tools/pauseimage).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 1, "listen: connections to serve before exiting")
	timeout := flag.Duration("timeout", 60*time.Second, "overall time limit")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: netcheck [-n N] [-timeout D] listen|dial ADDR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	switch flag.Arg(0) {
	case "listen":
		err = listen(flag.Arg(1), *n, *timeout)
	case "dial":
		err = dial(flag.Arg(1), *timeout)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netcheck:", err)
		os.Exit(1)
	}
}

func listen(addr string, n int, timeout time.Duration) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer func() { _ = l.Close() }()
	fmt.Fprintln(os.Stderr, "netcheck: listening on", l.Addr())
	deadline := time.Now().Add(timeout)
	if tl, ok := l.(*net.TCPListener); ok {
		_ = tl.SetDeadline(deadline)
	}
	for i := 0; i < n; i++ {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		peer := c.RemoteAddr().String()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, werr := fmt.Fprintf(c, "kubecc-ok %s\n", peer)
		_ = c.Close()
		if werr != nil {
			return werr
		}
		fmt.Println(peer)
	}
	return nil
}

func dial(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		line, err := dialOnce(addr)
		if err == nil {
			fmt.Println(line)
			if strings.HasPrefix(line, "kubecc-ok") {
				return nil
			}
			return fmt.Errorf("unexpected answer %q", line)
		}
		if time.Now().After(deadline) {
			return err
		}
		fmt.Fprintln(os.Stderr, "netcheck: retrying:", err)
		time.Sleep(500 * time.Millisecond)
	}
}

func dialOnce(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}
