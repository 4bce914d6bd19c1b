# sandbox-check.sh: sourced by shell tests that run kiln's sandbox; the shell twin of
# sandbox_check.h. Exits 77 (skip, reason printed) in a chroot whose / is not a mount point,
# unless KILN_TEST_MUST_WORK is set.
if ! awk '$5 == "/" { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    echo "skip: / is not a mount point (a chroot): kiln's sandbox, like runc and bubblewrap, needs the root directory to be a mount"
    [ -n "${KILN_TEST_MUST_WORK:-}" ] && exit 1
    exit 77
fi
