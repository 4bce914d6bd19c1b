#!/bin/sh
# test_rootless.sh KILN: `kiln debug run` as an unprivileged user (rootless: user namespace mapped
# with newuidmap/newgidmap from the user's /etc/subuid range). Run as root: the harness creates
# the user `kiln-rootless` when missing (useradd allocates its subordinate ids). Exit 77 = skip.
set -u
KILN=$1
U=kiln-rootless
skip() {
    echo "skip: $1"
    [ -n "${KILN_TEST_MUST_WORK:-}" ] && exit 1
    exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to set up the unprivileged user"
for t in setpriv useradd /usr/bin/newuidmap /bin/busybox; do
    command -v "$t" >/dev/null || skip "needs $t"
done
[ "$(cat /proc/sys/user/max_user_namespaces)" -gt 0 ] || skip "user namespaces disabled"
# the kernel refuses to create a user namespace from a chrooted process (EPERM), whatever the
# caller's privileges; a chroot shows as a root directory that is not a mount point
awk '$5 == "/" { found = 1 } END { exit !found }' /proc/self/mountinfo ||
    skip "running in a chroot, where the kernel refuses to create user namespaces"
id "$U" >/dev/null 2>&1 || useradd -m -s /bin/sh "$U" || skip "cannot create user $U"
grep -q "^$U:" /etc/subuid || skip "$U has no subordinate uids"

T=$(mktemp -d /tmp/kiln-rootless-XXXXXX)
trap 'rm -rf "$T"' EXIT
R=$T/rootfs
mkdir -p "$R/bin" "$R/etc" "$T/upper" "$T/work"
cp /bin/busybox "$R/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$R/etc/group"
chown -R "$U:" "$T"
chmod 755 "$T"
# the binary must be reachable by the user: a build tree under /root is not, so use a copy
if ! setpriv --reuid "$U" --regid "$U" --init-groups test -x "$KILN"; then
    cp "$KILN" "$T/kiln" && chmod 755 "$T/kiln" && KILN=$T/kiln
fi
setpriv --reuid "$U" --regid "$U" --init-groups test -x "$KILN" || skip "$KILN not executable by $U"
fails=0
run() { setpriv --reuid "$U" --regid "$U" --init-groups env -u XDG_RUNTIME_DIR HOME="$T" \
        "$KILN" debug run "$@"; }
check() {
    if [ "$2" = "$3" ]; then echo "ok - $1"; else
        echo "not ok - $1: expected [$2] got [$3]"; fails=$((fails + 1)); fi
}

out=$(run --rootfs "$R" -- sh -c 'id -u; hostname; grep -E "^(CapEff|Seccomp):" /proc/self/status;
      ps -o comm > /ps.txt; tail -n +2 /ps.txt | tr "\n" ,; ls /sys 2>/dev/null | wc -l' 2>&1)
check "root in userns, sandboxed" "0 buildkitsandbox CapEff: 00000000a80425fb Seccomp: 2 kiln-init,sh,ps,0" \
      "$(echo $out)"

out=$(run --rootfs "$R" --user nobody -- sh -c 'id -u; touch /x 2>/dev/null || echo denied')
check "nobody via the subordinate range" "65534 denied" "$(echo $out)"

out=$(run --lower "$R" --upper "$T/upper" --work "$T/work" -- sh -c 'echo hi > /new; ls /sys/class/net 2>/dev/null; ip -o link | cut -d: -f2')
check "overlay + network none" "lo" "$(echo $out)"
check "overlay upper owned by the user" "$U hi" "$(stat -c %U "$T/upper/new") $(cat "$T/upper/new")"

out=$(run --rootfs "$R" --mount "type=bind,src=$T/upper,dst=/u,ro" -- sh -c 'cat /u/new; touch /u/x 2>/dev/null || echo ro')
check "read-only bind" "hi ro" "$(echo $out)"

start=$(date +%s)
run --rootfs "$R" --timeout 1 -- sleep 1000 2>/dev/null
rc=$?
check "timeout kills the sandbox" "1 0" "$rc $(pgrep -c -f 'sleep 1000')"
[ $(( $(date +%s) - start )) -le 3 ] || { echo "not ok - timeout took too long"; fails=$((fails + 1)); }

[ "$fails" = 0 ]
