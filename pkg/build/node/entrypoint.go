package node

import (
	"regexp"
	"strings"
)

// Starting the chaincode.
//
// Fabric's Node platform starts chaincode with `npm start -- --peer.address
// <addr>`. npm's own start-up costs time on every start, which a serverless
// chaincode pays on every cold start. Measured on the development machine (2 shared
// cores, load about 3.5; Node.js 20.20.2, npm 11.19.1; npm as in the image: no
// ~/.npmrc, update notifier off; wall time, 5 runs each, alternated, medians of
// two rounds):
//
//	trivial package ("start": "node index.js", exits at once):
//	  npm start                                 549 ms, 577 ms
//	  launcher, exec node index.js              152 ms, 155 ms
//	examples/chaincode/js, start until fabric-shim logs "Registering with peer":
//	  npm start -- --peer.address=...          1126 ms, 1113 ms
//	  launcher                                  739 ms, 692 ms
//
// npm adds about 0.4 s to every start. So images start the start script the way npm would, without npm: /bin/sh (the
// official Node.js images have one) runs it in AppDir with node_modules/.bin first
// on PATH and the container's arguments appended, and execs it, so that the
// chaincode is the container's main process and gets the kubelet's SIGTERM (npm
// forwards signals too; a shell that does not exec would not). That is possible
// when the start script is one simple command (words of plain characters, such as
// "fabric-chaincode-node start" or "node dist/index.js"); a script using shell
// syntax (&&, ;, quotes, $VAR), or a package with a prestart or poststart script,
// is started with `npm start --` as Fabric does. What npm would add and the
// launcher does not: the npm_package_* and npm_lifecycle_* variables (fabric-shim
// reads none of them).
//
// The peer address: run passes `-peer.address=<addr>` (the Go shim's flag), but
// fabric-shim 2.5.8 (yargs, lib/cmds/startCommand.js) accepts only
// `--peer.address <addr>` and `--peer.address=<addr>`: it prints its usage and
// exits for the one-dash form, and it does not take the address from
// CORE_PEER_ADDRESS alone ("Missing required argument: peer.address"). The
// launcher rewrites `-peer.address=X` into `--peer.address=X` and, when no address
// argument is given at all, adds `--peer.address=$CORE_PEER_ADDRESS`.

// argsScript rewrites the container's arguments for fabric-shim; POSIX sh.
const argsScript = `p=; for a do shift; case $a in -peer.address=*) a=-$a; p=1;; --peer.address|--peer.address=*) p=1;; esac; set -- "$@" "$a"; done; ` +
	`if [ -z "$p" ] && [ -n "$CORE_PEER_ADDRESS" ]; then set -- "$@" "--peer.address=$CORE_PEER_ADDRESS"; fi; `

// simpleScript is one simple command: words that need no quoting, the first
// without "=" (which would make it an assignment).
var simpleScript = regexp.MustCompile(`^[A-Za-z0-9_./@%+:,-]+( +[A-Za-z0-9_./@%+=:,-]+)*$`)

// Entrypoint is the image's entry point for pkg, and a line saying which start-up
// it is, for the log.
func Entrypoint(pkg *PackageJSON) ([]string, string) {
	start := strings.TrimSpace(pkg.Scripts["start"])
	cmd := "exec npm start -- \"$@\""
	mode := "npm start (the start script uses shell syntax)"
	switch {
	case pkg.Scripts["prestart"] != "" || pkg.Scripts["poststart"] != "":
		mode = "npm start (the package has a prestart or poststart script)"
	case simpleScript.MatchString(start):
		cmd = "PATH=" + AppDir + "/node_modules/.bin:$PATH; export PATH; exec " + start + " \"$@\""
		mode = "the start script without npm: " + start
	}
	// "start" is $0, as npm names the script it runs.
	return []string{"/bin/sh", "-c", argsScript + cmd, "start"}, mode
}
