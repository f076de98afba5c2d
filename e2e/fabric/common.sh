# Shared paths and helpers for e2e/fabric/*.sh. Source it after setting -euo pipefail.
# shellcheck shell=bash disable=SC2034 source-path=SCRIPTDIR
# (SC2034: the variables here are used by the scripts that source this file.)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

FABRIC_BIN="$FABRIC_HOME/bin"
FABRIC_DIR="$KUBECC_E2E_ROOT/fabric"          # network state; removed by down.sh
FABRIC_PIDS="$KUBECC_E2E_ROOT/pids"
FABRIC_CONFIG="$FABRIC_DIR/config"            # FABRIC_CFG_PATH: core.yaml, orderer.yaml
FABRIC_ORGS="$FABRIC_DIR/organizations"       # cryptogen output
CHANNEL_NAME="mychannel"

PEER_PORT=7051
PEER_CC_PORT=7052
PEER_OPS="127.0.0.1:9443"
ORDERER_PORT=7050
ORDERER_ADMIN="127.0.0.1:7053"
ORDERER_OPS="127.0.0.1:8443"
ORDERER_CLUSTER_PORT=7060 # used only when the orderer runs with TLS off

ORDERER_DIR="$FABRIC_ORGS/ordererOrganizations/example.com/orderers/orderer.example.com"
ORDERER_TLSCA="$FABRIC_ORGS/ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem"
PEER_DIR="$FABRIC_ORGS/peerOrganizations/org1.example.com/peers/peer0.org1.example.com"
PEER_TLSCA="$FABRIC_ORGS/peerOrganizations/org1.example.com/tlsca/tlsca.org1.example.com-cert.pem"
ORG1_ADMIN_MSP="$FABRIC_ORGS/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp"

# Variables the peer hands to external builders (chaincode.externalBuilders[].propagateEnvironment).
# Not KUBECONFIG: it would override the builder's config.yaml, whose kubeconfig holds the
# service-account token bound to deploy/base/rbac.yaml, and the hooks would run as
# the cluster admin the harness itself uses. DOCKER_CONFIG is the folder of the Docker
# config the hooks log in to registries with: the harness's (e2e/up.sh), which holds only
# the credentials of its basic-auth registry endpoint.
BUILDER_PROPAGATE=(HOME KUBECC_REGISTRY KUBECC_REGISTRY_INSECURE KUBECC_NAMESPACE
	KUBECC_PEER_ADDRESS KUBECC_LAUNCH KUBECC_IDLE_TIMEOUT KUBECC_RELAY_ADDRESS KUBECC_CONFIG
	GOCACHE GOMODCACHE GOPATH GOPROXY GOFLAGS GONOSUMDB GOPRIVATE GOSUMDB DOCKER_CONFIG)

mkdir -p "$KUBECC_E2E_LOGS" "$FABRIC_PIDS"

# pid_alive NAME: the process recorded in $FABRIC_PIDS/NAME.pid is running (and not a zombie).
pid_alive() {
	local pid
	pid=$(cat "$FABRIC_PIDS/$1.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# State is the field after the ")" closing the command name in /proc/PID/stat.
	[ "$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# stop_pid NAME SECONDS: SIGTERM the recorded process, SIGKILL it after SECONDS, then end
# what is left of its process group (chaincode processes the peer started). Idempotent.
stop_pid() {
	local name=$1 secs=$2 pid end
	pid=$(cat "$FABRIC_PIDS/$name.pid" 2>/dev/null) || return 0
	if pid_alive "$name"; then
		kill -TERM "$pid" 2>/dev/null || true
		end=$((SECONDS + secs))
		while pid_alive "$name" && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
		if pid_alive "$name"; then
			log "$name (pid $pid) still running after ${secs}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			while pid_alive "$name"; do sleep 0.1; done
		fi
	fi
	# The node was started with setsid, so its pid is also its process group id.
	kill -KILL -- "-$pid" 2>/dev/null || true
	rm -f "$FABRIC_PIDS/$name.pid"
}

# start_daemon NAME ENVFILE COMMAND...: start COMMAND in its own session with a clean
# environment (HOME, PATH, then ENVFILE sourced), output appended to $KUBECC_E2E_LOGS/NAME.log, pid in $FABRIC_PIDS/NAME.pid.
start_daemon() {
	local name=$1 envfile=$2; shift 2
	rm -f "$FABRIC_PIDS/$name.pid"
	# The daemon keeps no descriptor of its starter beyond stdio: a lock the starter
	# holds (flock around a test run) must not live on in the peer and its hooks. The
	# 2>/dev/null goes on each close, not on the loop: bash keeps fd 2 in a spare
	# descriptor during a redirected loop, the loop would close that, and the daemon's
	# stderr (Fabric's log) would stay /dev/null.
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid env -i HOME="$HOME" PATH="$PATH" bash -c 'echo $$ >"$1"; for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -le 2 ] || eval "exec $fd>&-" 2>/dev/null; done; . "$2"; shift 2; exec "$@"' start-"$name" \
		"$FABRIC_PIDS/$name.pid" "$envfile" "$@" </dev/null >>"$KUBECC_E2E_LOGS/$name.log" 2>&1 &
	local end=$((SECONDS + 5))
	until [ -s "$FABRIC_PIDS/$name.pid" ]; do
		[ "$SECONDS" -lt "$end" ] || die "$name did not start"
		sleep 0.05
	done
}

# http_ok URL: the URL answers 2xx.
http_ok() { curl -fs -o /dev/null --max-time 2 "$1"; }

# need CMD [DEBIAN_PACKAGE]: install CMD through apt when missing.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	log "installing ${2:-$1} with apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${2:-$1}" >/dev/null 2>&1 || {
		apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${2:-$1}" >/dev/null
	}
	command -v "$1" >/dev/null 2>&1 || die "$1 not found after installing ${2:-$1}"
}

# ms_since START_NS: milliseconds elapsed since START_NS (from now_ns).
now_ns() { date +%s%N; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# Name the failing command when set -e ends a script.
on_err() { log "error: ${BASH_SOURCE[1]##*/} line $2: $3 (exit $1)"; }
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR
