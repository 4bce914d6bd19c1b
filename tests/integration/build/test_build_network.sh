#!/bin/bash
# test_build_network.sh KILN MAKE_BASE_IMAGE: RUN's network and the entitlements, as buildx has
# them: by default a step shares the host's network (buildkitd without CNI; RUN apt-get reaches
# the network), `--network none` gives every RUN a private namespace with only loopback, RUN
# --network=host and RUN --security=insecure are refused before anything runs unless granted with
# `--allow network.host` / `--allow security.insecure` (`--network host` grants network.host), and
# an insecure step really has every capability and no seccomp filter.
set -eu # no pipefail: `... | grep -q` closes the pipe early by design
KILN=$1
MKIMG=$2

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the sandbox)"; exit 77; }

. "$(dirname "$0")/harness.sh"
harness_start net
HOSTNET=$(readlink /proc/self/ns/net)
HOSTCAP=$(awk '/^CapBnd/ {print $2}' /proc/self/status)

mkdir -p "$T/net"
cat >"$T/net/Dockerfile" <<'EOF'
FROM base
RUN readlink /proc/self/ns/net > /default.ns && ls /sys/class/net > /default.if
RUN --network=none readlink /proc/self/ns/net > /none.ns && ls /sys/class/net > /none.if
EOF

# ---- the default network is the host's; RUN --network=none is private ---------------------------
kb -o "type=local,dest=$T/net.out" "$T/net" >"$T/net.log" 2>"$T/net.err" || fail "network build"
[ "$(cat "$T/net.out/default.ns")" = "$HOSTNET" ] || fail "default RUN is not in the host's network"
[ "$(cat "$T/net.out/none.ns")" != "$HOSTNET" ] || fail "RUN --network=none shares the host's network"
[ "$(cat "$T/net.out/none.if")" = lo ] || fail "RUN --network=none sees: $(cat "$T/net.out/none.if")"

# ---- --network none: every RUN without its own --network is private ---------------------------
kb --network none --no-cache -o "type=local,dest=$T/net2.out" "$T/net" >"$T/net2.log" 2>"$T/net2.err" ||
    fail "--network none build"
[ "$(cat "$T/net2.out/default.ns")" != "$HOSTNET" ] || fail "--network none: RUN shares the host's network"
[ "$(cat "$T/net2.out/default.if")" = lo ] || fail "--network none: RUN sees $(cat "$T/net2.out/default.if")"
if kb --network bridge "$T/net" >"$T/bridge.log" 2>"$T/bridge.err"; then fail "--network bridge accepted"; fi
grep -q 'expected default, none or host' "$T/bridge.err" || fail "--network bridge: unclear error"

# ---- RUN --network=host needs network.host ----------------------------------------------------
mkdir -p "$T/host"
printf 'FROM base\nRUN --network=host echo ran-host-step && readlink /proc/self/ns/net > /host.ns\n' >"$T/host/Dockerfile"
if kb "$T/host" >"$T/host1.log" 2>"$T/host1.err"; then fail "RUN --network=host ran without --allow"; fi
grep -q 'network.host is not allowed' "$T/host1.err" || fail "network.host refusal unclear"
grep -q -- '--allow network.host' "$T/host1.err" || fail "refusal does not say how to grant it"
! grep -q 'ran-host-step$' "$T/host1.err" || fail "the refused step ran"
kb --allow network.host -o "type=local,dest=$T/host.out" "$T/host" >"$T/host2.log" 2>"$T/host2.err" ||
    fail "RUN --network=host with --allow network.host"
[ "$(cat "$T/host.out/host.ns")" = "$HOSTNET" ] || fail "RUN --network=host is not in the host's network"
kb --network host --no-cache -o "type=local,dest=$T/host3.out" "$T/host" >"$T/host3.log" 2>"$T/host3.err" ||
    fail "--network host does not grant network.host"

# ---- RUN --security=insecure needs security.insecure ------------------------------------------
mkdir -p "$T/ins"
cat >"$T/ins/Dockerfile" <<'EOF'
FROM base
RUN --security=insecure awk '/^CapEff|^Seccomp:/ {print $2}' /proc/self/status > /insecure.st
RUN awk '/^CapEff|^Seccomp:/ {print $2}' /proc/self/status > /sandbox.st
EOF
if kb "$T/ins" >"$T/ins1.log" 2>"$T/ins1.err"; then fail "RUN --security=insecure ran without --allow"; fi
grep -q 'security.insecure is not allowed' "$T/ins1.err" || fail "security.insecure refusal unclear"
kb --allow security.insecure -o "type=local,dest=$T/ins.out" "$T/ins" >"$T/ins2.log" 2>"$T/ins2.err" ||
    fail "RUN --security=insecure with --allow security.insecure"
[ "$(sed -n 1p "$T/ins.out/insecure.st")" = "$HOSTCAP" ] ||
    fail "insecure step caps $(sed -n 1p "$T/ins.out/insecure.st"), want the full set $HOSTCAP"
[ "$(sed -n 2p "$T/ins.out/insecure.st")" = 0 ] || fail "insecure step has a seccomp filter"
[ "$(sed -n 1p "$T/ins.out/sandbox.st")" = 00000000a80425fb ] ||
    fail "sandboxed step caps $(sed -n 1p "$T/ins.out/sandbox.st"), want Docker's default set"
[ "$(sed -n 2p "$T/ins.out/sandbox.st")" = 2 ] || fail "sandboxed step has no seccomp filter"

rc=0
"$KILN" build --allow network.everything "$T/ins" >/dev/null 2>"$T/allow.err" || rc=$?
[ $rc = 2 ] || fail "--allow with a bad entitlement: exit $rc, want 2"
grep -q 'invalid entitlement' "$T/allow.err" || fail "bad entitlement error unclear"

echo "PASS"
