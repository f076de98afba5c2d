#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Pod egress through the host, so that in-cluster build Jobs can reach the package
# registries (the Go module proxy, the npm registry) the way the host does:
#
#   egress.sh on      net.ipv4.ip_forward=1 and one masquerade rule for the pod CIDR:
#                     iptables -t nat -A POSTROUTING -s $POD_CIDR ! -d $POD_CIDR
#                       -m comment --comment kubecc-e2e-egress -j MASQUERADE
#   egress.sh off     removes exactly that rule (and every copy of it)
#   egress.sh status  prints whether the rule is there and the value of ip_forward
#
# Idempotent: `on` checks with iptables -C before -A; `off` is a no-op without the rule.
# Traffic from pods to the host itself (the peer, the registry at the node IP) is delivered
# locally and never reaches POSTROUTING, so it keeps the pod's source address; pod-to-pod
# traffic stays on the bridge. Pods get DNS only where they are told a server (the kubelet
# runs with resolvConf: ""): a build pod sets dnsPolicy: None and dnsConfig.nameservers
# from the host's /etc/resolv.conf; those queries leave through the same rule.
#
# ip_forward: up.sh saves it with the other host sysctls before anything starts and
# down.sh restores it. When that record ($SYSCTL_SAVED) does not exist (no harness up),
# `on` keeps the old value in $KUBECC_E2E_ROOT/egress.ip_forward and `off` restores it.
#
# Sourced (by up.sh or down.sh, after the cluster layout is defined), it only defines
# egress_on, egress_off and egress_status.
set -euo pipefail

EGRESS_COMMENT="kubecc-e2e-egress"

# egress_rule: the rule's match and target, after the chain name.
egress_rule() {
	echo "-s $POD_CIDR ! -d $POD_CIDR -m comment --comment $EGRESS_COMMENT -j MASQUERADE"
}

egress_present() {
	# shellcheck disable=SC2046 # the rule is split into words on purpose
	iptables -w 5 -t nat -C POSTROUTING $(egress_rule) 2>/dev/null
}

egress_on() {
	command -v iptables >/dev/null || die "missing iptables: run e2e/cluster/install.sh first"
	local fwd saved_own="$KUBECC_E2E_ROOT/egress.ip_forward"
	fwd=$(sysctl -n net.ipv4.ip_forward)
	if [ "$fwd" != 1 ]; then
		if [ ! -f "$SYSCTL_SAVED" ] && [ ! -f "$saved_own" ]; then
			mkdir -p "$KUBECC_E2E_ROOT"
			echo "$fwd" >"$saved_own"
		fi
		sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
	fi
	if egress_present; then
		log "egress: masquerade for $POD_CIDR already on"
	else
		# shellcheck disable=SC2046
		iptables -w 5 -t nat -A POSTROUTING $(egress_rule)
		log "egress: masquerade for $POD_CIDR on (ip_forward was $fwd)"
	fi
	local policy
	policy=$(iptables -w 5 -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}')
	[ "$policy" = ACCEPT ] || log "egress: warning: the FORWARD chain's policy is ${policy:-unknown}, not ACCEPT: forwarded pod traffic may be dropped"
}

egress_off() {
	local n=0 saved_own="$KUBECC_E2E_ROOT/egress.ip_forward"
	if command -v iptables >/dev/null; then
		while egress_present; do
			# shellcheck disable=SC2046
			iptables -w 5 -t nat -D POSTROUTING $(egress_rule)
			n=$((n + 1))
		done
	fi
	[ "$n" -eq 0 ] || log "egress: masquerade for $POD_CIDR off"
	if [ -f "$saved_own" ]; then
		sysctl -q -w "net.ipv4.ip_forward=$(cat "$saved_own")" >/dev/null || log "egress: warning: could not restore net.ipv4.ip_forward"
		rm -f "$saved_own"
	fi
}

egress_status() {
	if egress_present; then echo "egress: on ($POD_CIDR)"; else echo "egress: off ($POD_CIDR)"; fi
	echo "net.ipv4.ip_forward=$(sysctl -n net.ipv4.ip_forward)"
}

# Run as a script (not sourced, also not re-sourced through down.sh): the layout, then act.
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${#BASH_SOURCE[@]}" -eq 1 ]; then
	# shellcheck source=down.sh
	. "$(dirname "${BASH_SOURCE[0]}")/down.sh" # the cluster layout (POD_CIDR, SYSCTL_SAVED) only
	case "${1:-}" in
	on) egress_on ;;
	off) egress_off ;;
	status) egress_status ;;
	*)
		echo "usage: $0 on|off|status" >&2
		exit 2
		;;
	esac
fi
