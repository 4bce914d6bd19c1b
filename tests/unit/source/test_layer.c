/*
 * test_layer.c: unit tests of layer application (source/layer.h): compression detection,
 * attributes, whiteouts, overlay whiteouts, and hostile archives that must be refused without
 * touching anything outside the target directory. The tars are built here with libarchive.
 */
#include <archive.h>
#include <archive_entry.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/path.h"
#include "source/layer.h"
#include "test_source.h"

typedef struct tent {
    const char *name;
    char type;        /* f file, d dir, l symlink, h hardlink, c char device, p fifo */
    const char *data; /* file content, or link target */
    unsigned mode;
} tent;

enum { PLAIN, GZIP, ZSTD };

typedef struct fixture {
    char *top;  /* temp dir holding root/ and outside/ */
    char *root; /* the layer target */
    char *outside;
} fixture;

static size_t
build_tar(unsigned char **out, const tent *ents, size_t n, int filter)
{
    struct archive *a = archive_write_new();
    size_t cap = 1 << 20, used = 0;
    unsigned char *buf = xmalloc(cap);
    archive_write_set_format_pax_restricted(a);
    if (filter == GZIP)
        archive_write_add_filter_gzip(a);
    else if (filter == ZSTD)
        archive_write_add_filter_zstd(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        const tent *t = &ents[i];
        archive_entry_set_pathname(e, t->name);
        archive_entry_set_perm(e, t->mode ? t->mode : 0644);
        archive_entry_set_uid(e, 1000 + (int)i);
        archive_entry_set_gid(e, 2000 + (int)i);
        archive_entry_set_mtime(e, 1600000000 + (time_t)i, 0);
        switch (t->type) {
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)strlen(t->data));
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, t->data);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, t->data);
            break;
        case 'c':
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdevmajor(e, 1);
            archive_entry_set_rdevminor(e, 3);
            break;
        case 'p':
            archive_entry_set_filetype(e, AE_IFIFO);
            break;
        default:
            fail_msg("bad test entry type %c", t->type);
        }
        if (t->type == 'f' && strcmp(t->name, "xattr-file") == 0)
            archive_entry_xattr_add_entry(e, "user.kiln", "yes", 3);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (t->type == 'f')
            assert_int_equal(archive_write_data(a, t->data, strlen(t->data)),
                             (la_ssize_t)strlen(t->data));
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    *out = buf;
    return used;
}

static int
apply(const fixture *f, const tent *ents, size_t n, int filter, const kiln_layer_opts *opts,
      kiln_error **err)
{
    cleanup_free unsigned char *tar = NULL;
    size_t len = build_tar(&tar, ents, n, filter);
    return kiln_layer_apply_mem(tar, len, f->root, opts, NULL, err);
}

static void
apply_ok(const fixture *f, const tent *ents, size_t n, int filter, const kiln_layer_opts *opts)
{
    kiln_error *err = NULL;
    if (apply(f, ents, n, filter, opts, &err) < 0)
        fail_msg("apply: %s", err->msg);
}

static int
setup(void **state)
{
    fixture *f = xnew(fixture);
    f->top = test_mkdtemp();
    f->root = kiln_path_join(f->top, "root");
    f->outside = kiln_path_join(f->top, "outside");
    test_write(f->top, "outside/victim", "original\n", 0644);
    assert_int_equal(mkdir(f->root, 0755), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    test_rm_rf(f->top);
    free(f->top);
    free(f->root);
    free(f->outside);
    free(f);
    return 0;
}

/* Nothing outside the root changed: only `victim` is there, unchanged. */
static void
assert_outside_intact(const fixture *f)
{
    cleanup_free char *v = test_read(f->outside, "victim");
    cleanup_dir DIR *d = opendir(f->outside);
    cleanup_dir DIR *t = opendir(f->top);
    int n = 0;
    assert_non_null(v);
    assert_string_equal(v, "original\n");
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    assert_int_equal(n, 1);
    n = 0;
    for (struct dirent *de; (de = readdir(t)) != NULL;)
        n += de->d_name[0] != '.';
    assert_int_equal(n, 2); /* root and outside */
}

static void
expect_reject(const fixture *f, const tent *ents, size_t n, const char *needle)
{
    kiln_error *err = NULL;
    int rc = apply(f, ents, n, PLAIN, NULL, &err);
    if (rc == 0)
        fail_msg("hostile layer was accepted (expecting \"%s\")", needle);
    assert_int_equal(rc, KILN_EINVAL);
    if (!strstr(err->msg, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err->msg, needle);
    kiln_error_free(&err);
    assert_outside_intact(f);
}

static void
test_source_layer__compressions_and_attrs(void **state)
{
    const fixture *f = *state;
    const tent ents[] = {
            {"./etc/", 'd', NULL, 0750},
            {"./etc/hosts", 'f', "127.0.0.1 localhost\n", 0640},
            {"bin/tool", 'f', "#!/bin/sh\n", 04755},
            {"bin/alias", 'l', "tool", 0},
            {"bin/hard", 'h', "bin/tool", 0},
            {"dev/null", 'c', NULL, 0666},
            {"run/fifo", 'p', NULL, 0600},
    };
    for (int filter = PLAIN; filter <= ZSTD; filter++) {
        kiln_layer_stats stats;
        cleanup_free unsigned char *tar = NULL;
        size_t len = build_tar(&tar, ents, sizeof(ents) / sizeof(ents[0]), filter);
        cleanup_free char *hosts = NULL;
        cleanup_free char *etc = kiln_path_join(f->root, "etc");
        cleanup_free char *tool = kiln_path_join(f->root, "bin/tool");
        cleanup_free char *hard = kiln_path_join(f->root, "bin/hard");
        cleanup_free char *dev = kiln_path_join(f->root, "dev/null");
        cleanup_free char *fifo = kiln_path_join(f->root, "run/fifo");
        cleanup_free char *alias = kiln_path_join(f->root, "bin/alias");
        kiln_error *err = NULL;
        struct stat st, st2;
        char target[16] = {0};
        if (kiln_layer_apply_mem(tar, len, f->root, NULL, &stats, &err) < 0)
            fail_msg("apply (filter %d): %s", filter, err->msg);
        assert_int_equal(stats.entries, 7);
        hosts = test_read(f->root, "etc/hosts");
        assert_string_equal(hosts, "127.0.0.1 localhost\n");
        assert_int_equal(stat(etc, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0750);
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_mtim.tv_sec, 1600000000);
        assert_int_equal(stat(tool, &st), 0);
        assert_int_equal(st.st_mode & 07777, 04755);
        assert_int_equal(st.st_uid, 1002);
        assert_int_equal(st.st_gid, 2002);
        assert_int_equal(st.st_mtim.tv_sec, 1600000002);
        assert_int_equal(stat(hard, &st2), 0);
        assert_int_equal(st.st_ino, st2.st_ino);
        assert_int_equal(readlink(alias, target, sizeof(target) - 1), 4);
        assert_string_equal(target, "tool");
        assert_int_equal(lstat(dev, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(major(st.st_rdev), 1);
        assert_int_equal(minor(st.st_rdev), 3);
        assert_int_equal(lstat(fifo, &st), 0);
        assert_true(S_ISFIFO(st.st_mode));
    }
}

static void
test_source_layer__replaces_and_keeps_dirs(void **state)
{
    const fixture *f = *state;
    const tent lower[] = {{"a/", 'd', NULL, 0755}, {"a/old", 'f', "old", 0}, {"b", 'f', "x", 0}};
    const tent upper[] = {{"a/", 'd', NULL, 0700}, {"b/", 'd', NULL, 0755}, {"b/c", 'f', "c", 0}};
    cleanup_free char *old = NULL;
    cleanup_free char *c = NULL;
    cleanup_free char *a = kiln_path_join(f->root, "a");
    struct stat st;
    apply_ok(f, lower, 3, PLAIN, NULL);
    apply_ok(f, upper, 3, GZIP, NULL);
    old = test_read(f->root, "a/old");
    assert_string_equal(old, "old"); /* existing dir + dir entry: attributes only */
    assert_int_equal(stat(a, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    c = test_read(f->root, "b/c"); /* file replaced by a directory */
    assert_string_equal(c, "c");
}

static void
test_source_layer__whiteouts(void **state)
{
    const fixture *f = *state;
    const tent lower[] = {
            {"keep", 'f', "k", 0},      {"gone", 'f', "g", 0},  {"dir/a", 'f', "a", 0},
            {"dir/sub/b", 'f', "b", 0}, {"opq/x", 'f', "x", 0}, {"opq/deep/y", 'f', "y", 0},
            {"tree/t1", 'f', "t", 0},
    };
    /* the opaque marker comes after this layer's own opq/new and opq/deep/z: they must stay */
    const tent upper[] = {
            {".wh.gone", 'f', "", 0},         {"dir/.wh.sub", 'f', "", 0},
            {"opq/new", 'f', "n", 0},         {"opq/deep/z", 'f', "z", 0},
            {"opq/.wh..wh..opq", 'f', "", 0}, {"same", 'f', "s", 0},
            {".wh.same", 'f', "", 0},         {".wh.tree", 'f', "", 0},
            {"nothere/.wh.x", 'f', "", 0},
    };
    apply_ok(f, lower, 7, PLAIN, NULL);
    apply_ok(f, upper, 9, ZSTD, NULL);
    assert_true(test_exists(f->root, "keep"));
    assert_false(test_exists(f->root, "gone"));
    assert_false(test_exists(f->root, ".wh.gone"));
    assert_true(test_exists(f->root, "dir/a"));
    assert_false(test_exists(f->root, "dir/sub"));
    assert_false(test_exists(f->root, "opq/x"));
    assert_false(test_exists(f->root, "opq/deep/y"));
    assert_true(test_exists(f->root, "opq/new"));
    assert_true(test_exists(f->root, "opq/deep/z"));
    assert_false(test_exists(f->root, "opq/.wh..wh..opq"));
    assert_true(test_exists(f->root, "same")); /* same-layer files are not hidden */
    assert_false(test_exists(f->root, "tree"));
    assert_false(test_exists(f->root, "nothere"));
}

static void
test_source_layer__overlay_whiteouts(void **state)
{
    const fixture *f = *state;
    const tent upper[] = {
            {".wh.gone", 'f', "", 0}, {"opq/.wh..wh..opq", 'f', "", 0}, {"opq/new", 'f', "n", 0}};
    kiln_layer_opts opts = {.overlay_whiteouts = true};
    cleanup_free char *gone = kiln_path_join(f->root, "gone");
    cleanup_free char *opq = kiln_path_join(f->root, "opq");
    char val[4] = {0};
    struct stat st;
    if (geteuid() != 0) {
        skip(); /* mknod and trusted.* xattrs need root */
        return;
    }
    apply_ok(f, upper, 3, PLAIN, &opts);
    assert_int_equal(lstat(gone, &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(0, 0));
    assert_int_equal(getxattr(opq, "trusted.overlay.opaque", val, sizeof(val)), 1);
    assert_string_equal(val, "y");
    assert_true(test_exists(f->root, "opq/new"));
}

static void
test_source_layer__rejects_dotdot_and_absolute(void **state)
{
    const fixture *f = *state;
    const tent dotdot[] = {{"../outside/victim", 'f', "pwned", 0}};
    const tent hidden[] = {{"a/../../outside/victim", 'f', "pwned", 0}};
    const tent abs[] = {{"/etc/kiln-test-should-not-exist", 'f', "pwned", 0}};
    expect_reject(f, dotdot, 1, "`..` component");
    expect_reject(f, hidden, 1, "`..` component");
    expect_reject(f, abs, 1, "absolute path");
    assert_false(test_exists("/etc", "kiln-test-should-not-exist"));
}

static void
test_source_layer__rejects_symlink_escape(void **state)
{
    const fixture *f = *state;
    const tent rel[] = {{"link", 'l', "../outside", 0}, {"link/victim", 'f', "pwned", 0}};
    const tent chain[] = {{"d/", 'd', NULL, 0755},
                          {"d/up", 'l', "../../outside", 0},
                          {"d/up/new", 'f', "pwned", 0}};
    expect_reject(f, rel, 2, "outside the layer root");
    expect_reject(f, chain, 3, "outside the layer root");
}

static void
test_source_layer__absolute_symlink_stays_inside(void **state)
{
    const fixture *f = *state;
    cleanup_free char *abs_outside = xasprintf("%s", f->outside);
    tent ents[] = {{"esc", 'l', abs_outside, 0}, {"esc/victim", 'f', "contained", 0}};
    cleanup_free char *inside = NULL;
    /* an absolute link is resolved from the layer root, as in the container */
    apply_ok(f, ents, 2, PLAIN, NULL);
    assert_outside_intact(f);
    {
        cleanup_free char *rel = xasprintf("%s/victim", abs_outside + 1);
        inside = test_read(f->root, rel);
    }
    assert_non_null(inside);
    assert_string_equal(inside, "contained");
}

static void
test_source_layer__rejects_hardlink_escape(void **state)
{
    const fixture *f = *state;
    const tent up[] = {{"h", 'h', "../outside/victim", 0}};
    const tent abs[] = {{"h", 'h', "/etc/passwd", 0}};
    const tent via[] = {{"link", 'l', "../outside", 0}, {"h", 'h', "link/victim", 0}};
    const tent missing[] = {{"h", 'h', "no/such/file", 0}};
    expect_reject(f, up, 1, "target outside the layer root");
    expect_reject(f, abs, 1, "target outside the layer root");
    expect_reject(f, via, 2, "outside the layer root");
    expect_reject(f, missing, 1, "does not exist");
}

static void
test_source_layer__rejects_bad_whiteout(void **state)
{
    const fixture *f = *state;
    const tent ents[] = {{"dir/.wh.", 'f', "", 0}};
    expect_reject(f, ents, 1, "empty whiteout name");
}

/* A ustar header claiming 10 GB of data, followed by a few bytes and EOF. */
static void
test_source_layer__truncated_huge_entry(void **state)
{
    const fixture *f = *state;
    unsigned char tar[1024] = {0};
    unsigned sum = 0;
    kiln_error *err = NULL;
    memcpy(tar, "big", 3);
    memcpy(tar + 100, "0000644", 7);
    memcpy(tar + 108, "0000000", 7);
    memcpy(tar + 116, "0000000", 7);
    memcpy(tar + 124, "120000000000", 12); /* 10 GiB in octal */
    memcpy(tar + 136, "00000000000", 11);
    tar[156] = '0';
    memcpy(tar + 257,
           "ustar\0"
           "00",
           8);
    memset(tar + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += tar[i];
    snprintf((char *)tar + 148, 8, "%06o", sum);
    memset(tar + 512, 'A', 512);
    assert_int_equal(kiln_layer_apply_mem(tar, sizeof(tar), f->root, NULL, NULL, &err),
                     KILN_EPARSE);
    assert_non_null(strstr(err->msg, "big"));
    kiln_error_free(&err);
    assert_outside_intact(f);
}

static void
test_source_layer__truncated_gzip(void **state)
{
    const fixture *f = *state;
    const tent ents[] = {{"a", 'f', "some content that will be cut off in the middle", 0},
                         {"b", 'f', "more", 0}};
    cleanup_free unsigned char *tar = NULL;
    size_t len = build_tar(&tar, ents, 2, GZIP);
    kiln_error *err = NULL;
    assert_int_equal(kiln_layer_apply_mem(tar, len / 2, f->root, NULL, NULL, &err), KILN_EPARSE);
    kiln_error_free(&err);
    /* garbage that is neither tar nor a known compression */
    assert_int_equal(
            kiln_layer_apply_mem("hello world, not a tar at all", 29, f->root, NULL, NULL, &err),
            KILN_EPARSE);
    kiln_error_free(&err);
    assert_outside_intact(f);
}

static void
test_source_layer__max_bytes_and_xattrs(void **state)
{
    const fixture *f = *state;
    const tent ents[] = {{"xattr-file", 'f', "0123456789", 0}};
    kiln_layer_opts small = {.max_bytes = 5};
    cleanup_free char *path = kiln_path_join(f->root, "xattr-file");
    kiln_error *err = NULL;
    char val[8] = {0};
    assert_int_equal(apply(f, ents, 1, PLAIN, &small, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "exceeds 5 bytes"));
    kiln_error_free(&err);
    apply_ok(f, ents, 1, PLAIN, NULL);
    if (getxattr(path, "user.kiln", val, sizeof(val)) < 0 && errno == ENOTSUP)
        return; /* filesystem without user xattrs (tmpfs on old kernels) */
    assert_string_equal(val, "yes");
}

static void
test_source_layer__digests(void **state)
{
    const fixture *f = *state;
    const tent ents[] = {{"a", 'f', "alpha", 0}, {"d/", 'd', NULL, 0755}, {"d/b", 'f', "beta", 0}};
    cleanup_free unsigned char *plain = NULL;
    size_t plain_len = build_tar(&plain, ents, 3, PLAIN);
    kiln_sha256 want_diff;
    kiln_sha256_buf(&want_diff, plain, plain_len);
    for (int filter = PLAIN; filter <= ZSTD; filter++) {
        cleanup_free unsigned char *tar = NULL;
        size_t len = build_tar(&tar, ents, 3, filter);
        kiln_sha256 want_blob;
        kiln_layer_stats st;
        kiln_error *err = NULL;
        kiln_sha256_buf(&want_blob, tar, len);
        if (kiln_layer_apply_mem(tar, len, f->root, NULL, &st, &err) < 0)
            fail_msg("apply (filter %d): %s", filter, err->msg);
        assert_memory_equal(&st.diff_id, &want_diff, sizeof(want_diff));
        assert_memory_equal(&st.blob_digest, &want_blob, sizeof(want_blob));
        if (filter == GZIP) {
            /* a gzip stream missing its trailer: every entry reads fine, the end does not */
            assert_int_equal(kiln_layer_apply_mem(tar, len - 4, f->root, NULL, &st, &err),
                             KILN_EPARSE);
            kiln_error_free(&err);
        }
    }
}

static void
test_source_layer__clean_name(void **state)
{
    char *out = NULL;
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_layer_clean_name(&out, "./a//b/", &err), 0);
    assert_string_equal(out, "a/b");
    free(out);
    assert_int_equal(kiln_layer_clean_name(&out, "./", &err), 0);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(kiln_layer_clean_name(&out, "", &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_layer_clean_name(&out, "a/..", &err), KILN_EINVAL);
    kiln_error_free(&err);
}

int
test_source_run_layer(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_source_layer__compressions_and_attrs, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__replaces_and_keeps_dirs, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__whiteouts, setup, teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__overlay_whiteouts, setup, teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__rejects_dotdot_and_absolute, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__rejects_symlink_escape, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__absolute_symlink_stays_inside, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__rejects_hardlink_escape, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__rejects_bad_whiteout, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__truncated_huge_entry, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__truncated_gzip, setup, teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__max_bytes_and_xattrs, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_source_layer__digests, setup, teardown),
            cmocka_unit_test(test_source_layer__clean_name),
    };
    return cmocka_run_group_tests_name("source_layer", tests, NULL, NULL);
}
