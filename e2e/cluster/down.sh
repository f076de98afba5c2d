#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2034 # the layout variables are used by up.sh, which sources this file
# Stops the local e2e cluster started by up.sh and undoes its side effects on the host:
# deletes all pods through the API (so containers and CNI are torn down), stops kubelet,
# containerd (and any shim or container it left), scheduler, controller-manager, apiserver,
# etcd and the registry by recorded pid, unmounts what is mounted under $KUBECC_E2E_ROOT,
# deletes the CNI bridge and the kubepods cgroups, removes the pod egress rule (egress.sh)
# and the registry's guard rule, removes the host paths that the cluster created outside
# its folder, and restores the host sysctls saved by up.sh. Idempotent.
# Keeps the registry data, the pki and containerd's image store (wiped after an unclean
# stop), and the cached binaries.
#
# Sourced (by up.sh), it only defines the cluster's paths and the cleanup functions.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# ---- cluster layout (shared with up.sh) ----
CLUSTER_DIR="$KUBECC_E2E_ROOT/cluster"        # admin.kubeconfig, env, bin/kubectl
PKI_DIR="$KUBECC_E2E_ROOT/pki"
PID_DIR="$KUBECC_E2E_ROOT/pids"
CONF_DIR="$KUBECC_E2E_ROOT/conf"
ETCD_DATA="$KUBECC_E2E_ROOT/etcd"
REGISTRY_DATA="$KUBECC_E2E_ROOT/registry"
CTRD_DIR="$KUBECC_E2E_ROOT/containerd"
CTRD_SOCK="$CTRD_DIR/containerd.sock"
CNI_DIR="$KUBECC_E2E_ROOT/cni"
KUBELET_DIR="$KUBECC_E2E_ROOT/kubelet"
POD_LOGS_DIR="$KUBECC_E2E_ROOT/pod-logs"
SYSCTL_SAVED="$KUBECC_E2E_ROOT/sysctl.saved"
OUTSIDE_CREATED="$KUBECC_E2E_ROOT/outside.created"

DEBROOT="$KUBECC_CACHE/debroot"
K8S_DIR="$KUBECC_CACHE/k8s-$K8S_VERSION"
ETCD_DIR="$KUBECC_CACHE/etcd-$ETCD_VERSION"
KUBECTL="$K8S_DIR/kubectl"

NODE_NAME="kubecc-e2e"
CNI_BRIDGE="kubecc0"
POD_CIDR="10.244.0.0/24"
POD_GATEWAY="10.244.0.1"
SERVICE_CIDR="10.96.0.0/12"
APISERVER_PORT=6443
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380

# Processes in stop order (the registry last: images stay reusable while anything runs).
COMPONENTS=(kubelet containerd kube-scheduler kube-controller-manager kube-apiserver etcd registry)
# Host paths outside $KUBECC_E2E_ROOT that containerd 1.6, the CNI plugins and the kubelet
# hardcode; up.sh records which of them it created, down.sh removes those (children first).
OUTSIDE_PATHS=(/run/containerd/s /run/containerd /run/mount /var/lib/cni /var/lib/kubelet/device-plugins /var/lib/kubelet /var/log/containers /var/log/pods)
# Host sysctls the kubelet and the bridge plugin change.
SYSCTL_KEYS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.ip_forward
	kernel.keys.maxkeys kernel.keys.maxbytes kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

# The registry listens on all addresses so that pods reach it at the node IP; this rule
# keeps every other machine out (this machine's own connections, also to its node IP, come
# in on lo; pods come from the pod CIDR).
REGISTRY_GUARD=(-p tcp --dport "${REGISTRY_ADDR##*:}" ! -i lo ! -s "$POD_CIDR"
	-m comment --comment kubecc-e2e-registry -j REJECT --reject-with tcp-reset)

# ---- helpers ----
registry_guard_on() {
	iptables -w 5 -C INPUT "${REGISTRY_GUARD[@]}" 2>/dev/null || iptables -w 5 -I INPUT "${REGISTRY_GUARD[@]}"
}

registry_guard_off() {
	command -v iptables >/dev/null || return 0
	while iptables -w 5 -C INPUT "${REGISTRY_GUARD[@]}" 2>/dev/null; do
		iptables -w 5 -D INPUT "${REGISTRY_GUARD[@]}"
	done
}

cmdline_of() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# ours PID: the process is alive and runs one of our binaries (from $KUBECC_CACHE) with a path
# in our folder in its command line.
ours() {
	local pid=$1 exe
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	case "$exe" in
	"$KUBECTL"*) return 1 ;; # clients (tests) are not ours to stop
	"$DEBROOT"/* | "$K8S_DIR"/* | "$ETCD_DIR"/*) ;;
	*) return 1 ;;
	esac
	case "$(cmdline_of "$pid")" in
	*"$KUBECC_E2E_ROOT/"*) return 0 ;;
	esac
	return 1
}

pid_of() { # NAME: the recorded pid if that process is still ours
	local pid
	pid=$(cat "$PID_DIR/$1.pid" 2>/dev/null || true)
	ours "$pid" && echo "$pid"
}

# wait_gone SECONDS PID...: true once none of the PIDs exists any more.
wait_gone() {
	local end=$((SECONDS + $1)) p alive; shift
	while :; do
		alive=
		for p in "$@"; do [ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && alive=1; done
		[ -z "$alive" ] && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

STOPPED_PIDS=()

# wait_reaped SECONDS: wait until the processes stopped here are reaped too (no zombies left:
# they were reparented to PID 1, which may reap them late).
wait_reaped() {
	local end=$((SECONDS + $1)) p left
	while :; do
		left=
		for p in "${STOPPED_PIDS[@]}"; do [ ! -d "/proc/$p" ] || left=1; done
		[ -n "$left" ] && [ "$SECONDS" -lt "$end" ] || return 0
		sleep 0.1
	done
}

# stop_component NAME SECONDS: SIGTERM the recorded process, SIGKILL it after SECONDS.
stop_component() {
	local name=$1 secs=$2 pid
	pid=$(pid_of "$name" || true)
	if [ -n "$pid" ]; then
		STOPPED_PIDS+=("$pid")
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_gone "$secs" "$pid"; then
			log "$name ($pid) did not stop in ${secs}s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone 5 "$pid" || true
		fi
	fi
	rm -f "$PID_DIR/$name.pid"
}

# stray_pids [shims]: processes of ours not (or no longer) recorded: any of our binaries still
# running with our folder in its arguments; with "shims", only containerd shims and runc.
stray_pids() {
	local d pid
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[ "$pid" != "$$" ] || continue
		ours "$pid" || continue
		if [ "${1:-}" = shims ]; then
			case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
			*/containerd-shim* | */runc) ;;
			*) continue ;;
			esac
		fi
		echo "$pid"
	done
}

# kubepods_pids: every process in the kubelet's pod cgroups (the containers themselves).
kubepods_pids() {
	local f
	for f in /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods; do
		[ -d "$f" ] || continue
		find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null || true
	done | sort -un
}

# kill_strays [shims]: SIGKILL stray processes (see stray_pids) and all pod processes;
# false if there were any.
kill_strays() {
	local pids
	pids=$( { stray_pids "${1:-}"; kubepods_pids; } | sort -un | tr '\n' ' ')
	if [ -n "${pids// /}" ]; then
		log "killing leftover processes: $pids"
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		# shellcheck disable=SC2206
		STOPPED_PIDS+=($pids)
		# shellcheck disable=SC2086
		wait_gone 10 $pids || log "warning: some processes did not exit: $pids"
		return 1
	fi
	return 0
}

# mounts_under DIR: mount points at or below DIR, deepest first.
mounts_under() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}

# unmount_all: everything mounted under the kubelet's and containerd's folders (volumes,
# the kubelet's bind mount of its root, container rootfs, shm, netns).
unmount_all() {
	local m n=0 tries=0 d
	for d in "$KUBELET_DIR" "$CTRD_DIR"; do
		tries=0
		while [ -n "$(mounts_under "$d")" ] && [ "$tries" -lt 5 ]; do
			while read -r m; do
				umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
				n=$((n + 1))
			done < <(mounts_under "$d")
			tries=$((tries + 1))
		done
		[ -z "$(mounts_under "$d")" ] || log "warning: mounts left under $d"
	done
	[ "$n" -eq 0 ] || log "unmounted $n mounts under $KUBECC_E2E_ROOT"
}

remove_kubepods_cgroups() {
	local f tries
	for f in /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods; do
		[ -d "$f" ] || continue
		for tries in 1 2 3 4 5 6 7 8 9 10; do
			find "$f" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[ -d "$f" ] || break
			sleep 0.2
		done
		[ ! -d "$f" ] || log "warning: could not remove cgroup $f"
	done
}

delete_bridge() {
	if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
		ip link del "$CNI_BRIDGE" || true
		log "deleted bridge $CNI_BRIDGE"
	fi
}

restore_sysctls() {
	[ -f "$SYSCTL_SAVED" ] || return 0
	local k v
	while IFS='=' read -r k v; do
		[ -n "$k" ] || continue
		sysctl -q -w "$k=$v" >/dev/null 2>&1 || log "warning: could not restore $k=$v"
	done <"$SYSCTL_SAVED"
	rm -f "$SYSCTL_SAVED"
}

remove_outside_paths() {
	[ -f "$OUTSIDE_CREATED" ] || return 0
	local p
	while read -r p; do
		case "$p" in
		/run/containerd* | /run/mount | /var/lib/cni | /var/lib/kubelet* | /var/log/containers | /var/log/pods) rm -rf "$p" ;;
		esac
	done <"$OUTSIDE_CREATED"
	rm -f "$OUTSIDE_CREATED"
}

apiserver_up() {
	[ -n "$(pid_of kube-apiserver || true)" ] && [ -f "$CLUSTER_DIR/admin.kubeconfig" ] &&
		"$KUBECTL" --kubeconfig "$CLUSTER_DIR/admin.kubeconfig" --request-timeout=3s get --raw /readyz >/dev/null 2>&1
}

# delete_all_pods: true when every pod is gone through the API (kubelet tore them down).
delete_all_pods() {
	local k=("$KUBECTL" --kubeconfig "$CLUSTER_DIR/admin.kubeconfig" --request-timeout=10s) n
	# Nothing may recreate pods meanwhile.
	stop_component kube-controller-manager 10
	stop_component kube-scheduler 10
	n=$("${k[@]}" get pods -A --no-headers 2>/dev/null | wc -l) || return 1
	[ "$n" -gt 0 ] || return 0
	[ -n "$(pid_of kubelet || true)" ] || return 1
	log "deleting $n pods through the API"
	"${k[@]}" delete pods --all --all-namespaces --grace-period=1 --wait=true --timeout=60s >/dev/null
}

# cluster_cleanup: stop everything of ours and undo every side effect (also after an unclean stop).
cluster_cleanup() {
	local clean=1 c
	if apiserver_up; then
		delete_all_pods || { clean=0; log "warning: could not delete all pods through the API"; }
	else
		[ -z "$(pid_of kubelet || true)" ] && [ -z "$(pid_of containerd || true)" ] || clean=0
	fi
	for c in "${COMPONENTS[@]}"; do
		case "$c" in
		kubelet | containerd) stop_component "$c" 15 ;;
		*) stop_component "$c" 10 ;;
		esac
		if [ "$c" = containerd ]; then
			kill_strays shims || clean=0
			# containers' rootfs, shm and netns mounts left: containerd did not tear them down
			[ -z "$(mounts_under "$CTRD_DIR")" ] || clean=0
		fi
	done
	kill_strays || true
	unmount_all
	delete_bridge
	bash "$REPO_ROOT/e2e/cluster/egress.sh" off || log "warning: could not remove the pod egress rule"
	registry_guard_off
	remove_kubepods_cgroups
	if [ "$clean" = 0 ] && [ -d "$CTRD_DIR/root" ]; then
		log "unclean stop: wiping containerd's store (images are pulled again from the registry)"
		rm -rf "$CTRD_DIR/root"
	fi
	rm -rf "$CTRD_DIR/state" "$CTRD_DIR/runc" "$CTRD_SOCK" "$CTRD_SOCK.ttrpc" "$ETCD_DATA" "$KUBELET_DIR" "$CNI_DIR/networks" \
		"$POD_LOGS_DIR" "$CLUSTER_DIR" "$PID_DIR"
	# the kubelet's links to container logs, if /var/log/containers was there before us
	local l
	for l in /var/log/containers/*.log; do
		[ -L "$l" ] || continue
		case "$(readlink "$l")" in "$POD_LOGS_DIR"/*) rm -f "$l" ;; esac
	done
	remove_outside_paths
	restore_sysctls
	wait_reaped 5
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	t0=$SECONDS
	log "down: stopping the e2e cluster under $KUBECC_E2E_ROOT"
	cluster_cleanup
	log "down: done in $((SECONDS - t0))s"
fi
