/*
 * test_base.c: unit tests of base/: errors, buffers, vectors, maps, paths (including hostile input
 * to the in-root resolver), file helpers, digests, JSON and the thread pool.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/map.h"
#include "base/path.h"
#include "base/threadpool.h"
#include "base/vec.h"

/* ---- errors ---- */

static int
failing_open(const char *path, kiln_error **err)
{
    return kiln_error_errno(err, ENOENT, "open `%s`", path);
}

static void
test_base_error__set_wrap_format(void **state)
{
    kiln_error *err = NULL;
    char *s;
    (void)state;

    assert_int_equal(failing_open("/x", &err), KILN_ESYS);
    assert_int_equal(err->sys_errno, ENOENT);
    assert_int_equal(kiln_error_wrap(&err, "load %s", "thing"), KILN_ESYS);
    assert_string_equal(err->msg, "load thing: open `/x`: No such file or directory");
    kiln_error_set_location(&err, "Dockerfile", 12, 3);
    s = kiln_error_format(err);
    assert_string_equal(s, "Dockerfile:12:3: load thing: open `/x`: No such file or directory");
    free(s);
    kiln_error_free(&err);
    assert_null(err);
    /* a NULL err still returns the code */
    assert_int_equal(kiln_error_set(NULL, KILN_EINVAL, "x"), KILN_EINVAL);
    /* a non-negative code is a bug and becomes EINTERNAL */
    assert_int_equal(kiln_error_set(&err, 5, "bad"), KILN_EINTERNAL);
    kiln_error_free(&err);
}

static void
test_base_error__move_copy(void **state)
{
    kiln_error *a = NULL, *b = NULL, *c;
    (void)state;

    kiln_error_set(&a, KILN_ENOTFOUND, "missing %d", 7);
    c = kiln_error_copy(a);
    assert_int_equal(kiln_error_move(&b, &a), KILN_ENOTFOUND);
    assert_null(a);
    assert_string_equal(b->msg, "missing 7");
    assert_string_equal(c->msg, "missing 7");
    assert_ptr_not_equal(c->msg, b->msg);
    kiln_error_free(&b);
    kiln_error_free(&c);
    assert_string_equal(kiln_errcode_str(KILN_EDIGEST), "digest mismatch");
}

/* ---- buffers, vectors, maps, strings ---- */

static void
test_base_buf__cap(void **state)
{
    kiln_buf b;
    kiln_error *err = NULL;
    (void)state;

    kiln_buf_init(&b, 8);
    assert_int_equal(kiln_buf_puts(&b, "12345", &err), 0);
    assert_int_equal(kiln_buf_printf(&b, &err, "%d", 678), 0);
    assert_string_equal(kiln_buf_cstr(&b), "12345678");
    assert_int_equal(kiln_buf_putc(&b, '9', &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "too big"));
    assert_int_equal(b.len, 8);
    kiln_error_free(&err);
    char *s = kiln_buf_detach(&b);
    assert_string_equal(s, "12345678");
    free(s);
    assert_string_equal(kiln_buf_cstr(&b), "");
    kiln_buf_dispose(&b);
}

static int
cmp_first_char(const void *a, const void *b)
{
    return *(const char *)a - *(const char *)b;
}

static void
test_base_vec__sort_stable(void **state)
{
    kiln_vec v = KILN_VEC_INIT;
    const char *in[] = {"b1", "a1", "b2", "a2", "c1", "a3"};
    const char *want[] = {"a1", "a2", "a3", "b1", "b2", "c1"};
    char *joined;
    (void)state;

    for (size_t i = 0; i < 6; i++)
        kiln_strvec_push(&v, in[i]);
    kiln_vec_sort(&v, cmp_first_char);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(kiln_vec_get(&v, i), want[i]);
    free(kiln_vec_remove(&v, 0));
    kiln_vec_insert(&v, 0, xstrdup("z"));
    joined = kiln_strvec_join(&v, ",");
    assert_string_equal(joined, "z,a2,a3,b1,b2,c1");
    free(joined);
    kiln_strvec_dispose(&v);
    assert_int_equal(v.len, 0);
}

static void
test_base_map__put_get_remove(void **state)
{
    kiln_map m = KILN_MAP_INIT;
    kiln_vec keys;
    char key[32];
    (void)state;

    for (intptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%ld", (long)i);
        assert_null(kiln_map_put(&m, key, (void *)(i + 1)));
    }
    assert_int_equal(m.len, 5000);
    for (intptr_t i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof(key), "k%ld", (long)i);
        assert_ptr_equal(kiln_map_remove(&m, key), (void *)(i + 1));
    }
    for (intptr_t i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%ld", (long)i);
        if (i % 2)
            assert_ptr_equal(kiln_map_get(&m, key), (void *)(i + 1));
        else
            assert_false(kiln_map_has(&m, key));
    }
    /* re-insert over tombstones, replace returns the old value */
    assert_null(kiln_map_put(&m, "k0", (void *)7));
    assert_ptr_equal(kiln_map_put(&m, "k0", (void *)8), (void *)7);
    kiln_map_sorted_keys(&m, &keys);
    assert_int_equal(keys.len, 2501);
    assert_string_equal(keys.items[0], "k0");
    assert_string_equal(keys.items[1], "k1");
    kiln_vec_dispose(&keys, NULL);
    kiln_map_dispose(&m, NULL);
}

static void
test_base_str__parse(void **state)
{
    int64_t i;
    uint64_t u;
    unsigned mode;
    kiln_error *err = NULL;
    (void)state;

    assert_int_equal(kiln_parse_i64("-42", &i, "n", NULL), 0);
    assert_int_equal(i, -42);
    assert_int_equal(kiln_parse_i64("42x", &i, "count", &err), KILN_EINVAL);
    assert_string_equal(err->msg, "count: invalid number `42x`");
    kiln_error_free(&err);
    assert_int_equal(kiln_parse_i64("99999999999999999999", &i, "n", NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_u64("-1", &u, "n", NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_mode("0755", &mode, NULL), 0);
    assert_int_equal(mode, 0755);
    assert_int_equal(kiln_parse_mode("0758", &mode, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_mode("77777", &mode, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("64m", &u, NULL), 0);
    assert_int_equal(u, 64ULL << 20);
    assert_int_equal(kiln_parse_size("1GiB", &u, NULL), 0);
    assert_int_equal(u, 1ULL << 30);
    assert_int_equal(kiln_parse_size("12q", &u, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("512MB", &u, NULL), 0);
    assert_int_equal(u, 512ULL << 20);
    assert_int_equal(kiln_parse_size("2GiB", &u, NULL), 0);
    assert_int_equal(u, 2ULL << 30);
    assert_int_equal(kiln_parse_size("1.5g", &u, NULL), 0);
    assert_int_equal(u, 3ULL << 29);
    assert_int_equal(kiln_parse_size("0.5K", &u, NULL), 0);
    assert_int_equal(u, 512);
    assert_int_equal(kiln_parse_size("100", &u, NULL), 0);
    assert_int_equal(u, 100);
    assert_int_equal(kiln_parse_size("7b", &u, NULL), 0);
    assert_int_equal(u, 7);
    assert_int_equal(kiln_parse_size("16384T", &u, NULL), 0);
    assert_int_equal(u, 16384ULL << 40);
    assert_int_equal(kiln_parse_size("16384.1T", &u, NULL), 0);
    assert_int_equal(kiln_parse_size("16777216T", &u, NULL), KILN_EINVAL); /* 2^64 */
    assert_int_equal(kiln_parse_size("99999999999999999999", &u, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("nonsense", &u, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "nonsense"));
    kiln_error_free(&err);
    assert_int_equal(kiln_parse_size("", &u, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("-1g", &u, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("1.g", &u, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("1.5", &u, NULL), 0);
    assert_int_equal(u, 1);
    assert_int_equal(kiln_parse_size("1gb ", &u, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("1kk", &u, NULL), KILN_EINVAL);
    assert_int_equal(kiln_parse_size("1ib", &u, NULL), KILN_EINVAL);
    assert_true(kiln_str_has_prefix("docker-image://x", "docker-image://"));
    assert_true(kiln_str_has_suffix("a.tar.gz", ".gz"));
    assert_false(kiln_str_has_suffix("gz", ".gz"));
}

static void
test_base_str__go_quote(void **state)
{
    struct {
        const char *in;
        const char *want;
    } cases[] = {
            {"a b", "\"a b\""},
            {"say \"hi\"\\", "\"say \\\"hi\\\"\\\\\""},
            {"tab\there\n", "\"tab\\there\\n\""},
            {"\x01\x7f", "\"\\x01\\x7f\""},
            {"한국어", "\"한국어\""},
            {"\xff", "\"\\xff\""},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *q = kiln_str_go_quote(cases[i].in, strlen(cases[i].in));
        assert_string_equal(q, cases[i].want);
        free(q);
    }
}

/* ---- paths ---- */

static void
test_base_path__clean(void **state)
{
    /* Go's filepath.Clean test table (the behaviour, not the code). */
    const char *cases[][2] = {
            {"", "."},
            {"abc", "abc"},
            {"abc/def", "abc/def"},
            {"a/b/c", "a/b/c"},
            {".", "."},
            {"..", ".."},
            {"../..", "../.."},
            {"../../abc", "../../abc"},
            {"/abc", "/abc"},
            {"/", "/"},
            {"abc/", "abc"},
            {"abc/def/", "abc/def"},
            {"/abc/", "/abc"},
            {"//abc", "/abc"},
            {"abc//def//ghi", "abc/def/ghi"},
            {"abc/./def", "abc/def"},
            {"/./abc/def", "/abc/def"},
            {"abc/.", "abc"},
            {"abc/def/..", "abc"},
            {"abc/def/../..", "."},
            {"/abc/def/../..", "/"},
            {"abc/def/../../..", ".."},
            {"/abc/def/../../..", "/"},
            {"abc/def/../ghi/../jkl", "abc/jkl"},
            {"/../abc", "/abc"},
            {"abc/./../def", "def"},
            {"../abc/../def", "../def"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *c = kiln_path_clean(cases[i][0]);
        assert_string_equal(c, cases[i][1]);
        free(c);
    }
}

static void
test_base_path__join_base_dir(void **state)
{
    char *s;
    (void)state;

    s = kiln_path_join("/root", "/etc/../passwd");
    assert_string_equal(s, "/root/passwd");
    free(s);
    s = kiln_path_join("a", "");
    assert_string_equal(s, "a");
    free(s);
    s = kiln_path_base("/a/b/");
    assert_string_equal(s, "b");
    free(s);
    s = kiln_path_base("/");
    assert_string_equal(s, "/");
    free(s);
    s = kiln_path_dir("/a/b");
    assert_string_equal(s, "/a");
    free(s);
    s = kiln_path_dir("b");
    assert_string_equal(s, ".");
    free(s);
    assert_true(kiln_path_has_prefix("/a/b/c", "/a/b"));
    assert_false(kiln_path_has_prefix("/a/bc", "/a/b"));
    assert_true(kiln_path_has_prefix("/a/b/../b", "/a/b"));
    assert_false(kiln_path_has_prefix("/a/b/../c", "/a/b"));
}

static char tmp_root[256];

static int
setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/kiln-test-base-XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int
teardown_tmp(void **state)
{
    (void)state;
    return kiln_fs_rm_rf(tmp_root, NULL);
}

static void
make_link(const char *target, const char *rel)
{
    char *p = xasprintf("%s/%s", tmp_root, rel);
    assert_int_equal(symlink(target, p), 0);
    free(p);
}

static void
expect_resolve(const char *root, const char *path, unsigned flags, const char *want_rel)
{
    char *got = NULL, *want = kiln_path_join(root, want_rel);
    kiln_error *err = NULL;

    assert_int_equal(kiln_path_resolve_in_root(&got, root, path, flags, &err), 0);
    assert_string_equal(got, want);
    free(got);
    free(want);
}

static void
test_base_path__resolve_in_root_hostile(void **state)
{
    char *root = xasprintf("%s/rootfs", tmp_root);
    char *got = NULL;
    kiln_error *err = NULL;
    (void)state;

    assert_int_equal(kiln_fs_mkdir_p(root, 0755, NULL), 0);
    char *usrlib = xasprintf("%s/usr/lib", root);
    assert_int_equal(kiln_fs_mkdir_p(usrlib, 0755, NULL), 0);
    free(usrlib);
    make_link("/etc", "rootfs/abs-etc");              /* absolute link to a host path */
    make_link("../../../../../etc", "rootfs/rel-up"); /* relative link climbing out */
    make_link("loop2", "rootfs/loop1");
    make_link("loop1", "rootfs/loop2");
    make_link("usr/lib", "rootfs/lib");
    make_link("/", "rootfs/slash");

    expect_resolve(root, "../../../etc/passwd", 0, "etc/passwd");
    expect_resolve(root, "/abs-etc/passwd", 0, "etc/passwd");
    expect_resolve(root, "rel-up/shadow", 0, "etc/shadow");
    expect_resolve(root, "lib/x.so", 0, "usr/lib/x.so");
    expect_resolve(root, "slash/../../tmp", 0, "tmp");
    expect_resolve(root, "abs-etc", KILN_RESOLVE_NOFOLLOW, "abs-etc");
    expect_resolve(root, "missing/../../x", 0, "x");
    assert_int_equal(kiln_path_resolve_in_root(&got, root, "loop1/x", 0, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "too many levels"));
    kiln_error_free(&err);
    free(root);
}

static void
test_base_path__open_in_root_hostile(void **state)
{
    char *root = xasprintf("%s/rootfs2", tmp_root);
    char *secret = xasprintf("%s/outside-secret", tmp_root);
    int rootfd, fd;
    char buf[16] = {0};
    (void)state;

    assert_int_equal(kiln_fs_mkdir_p(root, 0755, NULL), 0);
    assert_int_equal(kiln_fs_write_atomic(secret, "host", 4, 0600, NULL), 0);
    make_link(secret, "rootfs2/evil");
    make_link("../outside-secret", "rootfs2/evil-rel");
    char *own = xasprintf("%s/own", root);
    assert_int_equal(kiln_fs_write_atomic(own, "mine", 4, 0644, NULL), 0);
    free(own);
    rootfd = open(root, O_RDONLY | O_DIRECTORY);
    assert_true(rootfd >= 0);
    /* both links resolve inside the root, where no such file exists */
    assert_int_equal(kiln_path_open_in_root(rootfd, "evil", O_RDONLY, 0, NULL), KILN_ENOTFOUND);
    assert_int_equal(kiln_path_open_in_root(rootfd, "evil-rel", O_RDONLY, 0, NULL), KILN_ENOTFOUND);
    fd = kiln_path_open_in_root(rootfd, "../../outside-secret/../own", O_RDONLY, 0, NULL);
    assert_true(fd < 0);
    fd = kiln_path_open_in_root(rootfd, "/../own", O_RDONLY, 0, NULL);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf) - 1), 4);
    assert_string_equal(buf, "mine");
    close(fd);
    close(rootfd);
    free(root);
    free(secret);
}

/* ---- files ---- */

static void
test_base_fs__atomic_read_mkdir(void **state)
{
    char *dir = xasprintf("%s/a/b/c", tmp_root);
    char *file = xasprintf("%s/a/b/c/f", tmp_root);
    char *data = NULL;
    size_t len = 0;
    kiln_error *err = NULL;
    struct stat st;
    (void)state;

    assert_int_equal(kiln_fs_mkdir_p(dir, 0755, &err), 0);
    assert_int_equal(kiln_fs_mkdir_p(dir, 0755, &err), 0);
    assert_int_equal(kiln_fs_write_atomic(file, "hello", 5, 0640, &err), 0);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(kiln_fs_read_file(&data, &len, file, 0, &err), 0);
    assert_string_equal(data, "hello");
    assert_int_equal(len, 5);
    free(data);
    assert_int_equal(kiln_fs_read_file(&data, &len, file, 4, &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_fs_mkdir_p(file, 0755, &err), KILN_EEXISTS);
    kiln_error_free(&err);
    assert_int_equal(kiln_fs_read_file(&data, &len, "/nonexistent/x", 0, &err), KILN_ENOTFOUND);
    kiln_error_free(&err);
    free(dir);
    free(file);
}

static void
test_base_fs__rm_rf_does_not_follow(void **state)
{
    char *victim = xasprintf("%s/victim", tmp_root);
    char *keep = xasprintf("%s/victim/keep", tmp_root);
    char *tree = xasprintf("%s/tree/sub", tmp_root);
    char *link = xasprintf("%s/tree/sub/link", tmp_root);
    char *top = xasprintf("%s/tree", tmp_root);
    (void)state;

    assert_int_equal(kiln_fs_mkdir_p(victim, 0755, NULL), 0);
    assert_int_equal(kiln_fs_write_atomic(keep, "x", 1, 0644, NULL), 0);
    assert_int_equal(kiln_fs_mkdir_p(tree, 0755, NULL), 0);
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(kiln_fs_rm_rf(top, NULL), 0);
    assert_false(kiln_fs_exists(top));
    assert_true(kiln_fs_exists(keep));
    assert_int_equal(kiln_fs_rm_rf(top, NULL), 0); /* missing is fine */
    free(victim);
    free(keep);
    free(tree);
    free(link);
    free(top);
}

static void
test_base_fs__copy_tree(void **state)
{
    char *src = xasprintf("%s/src", tmp_root), *dst = xasprintf("%s/dst", tmp_root);
    char *p;
    struct stat a, b;
    char target[64] = {0};
    (void)state;

    p = xasprintf("%s/d", src);
    assert_int_equal(kiln_fs_mkdir_p(p, 0750, NULL), 0);
    free(p);
    p = xasprintf("%s/d/f", src);
    assert_int_equal(kiln_fs_write_atomic(p, "data", 4, 0751, NULL), 0);
    char *h = xasprintf("%s/hard", src);
    assert_int_equal(link(p, h), 0);
    free(h);
    free(p);
    p = xasprintf("%s/ln", src);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    free(p);
    assert_int_equal(
            kiln_fs_copy_tree(src, dst, KILN_COPY_PRESERVE_OWNER | KILN_COPY_HARDLINKS, NULL), 0);
    p = xasprintf("%s/d/f", dst);
    assert_int_equal(stat(p, &a), 0);
    assert_int_equal(a.st_mode & 0777, 0751);
    free(p);
    p = xasprintf("%s/hard", dst);
    assert_int_equal(stat(p, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    free(p);
    p = xasprintf("%s/d", dst);
    assert_int_equal(stat(p, &a), 0);
    assert_int_equal(a.st_mode & 0777, 0750);
    free(p);
    p = xasprintf("%s/ln", dst);
    assert_int_equal(readlink(p, target, sizeof(target) - 1), 11);
    assert_string_equal(target, "/etc/passwd");
    free(p);
    free(src);
    free(dst);
}

/* ---- digests, JSON ---- */

static void
test_base_digest__sha256_xxh(void **state)
{
    kiln_sha256 d, d2;
    kiln_sha256_ctx *c = NULL;
    char s[KILN_DIGEST_STRLEN + 1];
    kiln_error *err = NULL;
    (void)state;

    /* FIPS 180-2 test vector for "abc" */
    kiln_sha256_buf(&d, "abc", 3);
    kiln_digest_format(s, &d);
    assert_string_equal(s,
                        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    kiln_sha256_ctx_new(&c);
    kiln_sha256_ctx_update(c, "a", 1);
    kiln_sha256_ctx_update(c, "bc", 2);
    kiln_sha256_ctx_final(c, &d2);
    kiln_sha256_ctx_free(c);
    assert_memory_equal(d.bytes, d2.bytes, 32);
    assert_int_equal(kiln_digest_parse(&d2, s, &err), 0);
    assert_memory_equal(d.bytes, d2.bytes, 32);
    assert_int_equal(kiln_digest_parse(&d2, "sha512:abcd", &err), KILN_EUNSUPPORTED);
    kiln_error_free(&err);
    s[10] = 'G';
    assert_false(kiln_digest_valid(s));
    assert_false(kiln_digest_valid("sha256:abc"));
    assert_int_equal(kiln_xxh3_64("abc", 3), kiln_xxh3_64("abc", 3));
    assert_int_not_equal(kiln_xxh3_64("abc", 3), kiln_xxh3_64("abd", 3));
    kiln_xxh_ctx *x = NULL;
    kiln_xxh_ctx_new(&x);
    kiln_xxh_ctx_update(x, "ab", 2);
    kiln_xxh_ctx_update(x, "c", 1);
    kiln_xxh128 h = kiln_xxh_ctx_final128(x), h2 = kiln_xxh3_128("abc", 3);
    assert_true(h.lo == h2.lo && h.hi == h2.hi);
    kiln_xxh_ctx_free(x);
}

static void
test_base_json__parse_get(void **state)
{
    const char *doc = "{\"b\":1,\"a\":\"x\",\"o\":{},\"t\":true}";
    json_t *j = NULL;
    const char *s = NULL;
    int64_t i = 0;
    bool t = false;
    kiln_error *err = NULL;
    char *out;
    (void)state;

    assert_int_equal(kiln_json_parse(&j, doc, strlen(doc), 0, "config", &err), 0);
    assert_int_equal(kiln_json_get_str(j, "a", true, &s, &err), 0);
    assert_string_equal(s, "x");
    assert_int_equal(kiln_json_get_int(j, "b", true, &i, &err), 0);
    assert_int_equal(i, 1);
    assert_int_equal(kiln_json_get_bool(j, "t", true, &t, &err), 0);
    assert_true(t);
    assert_int_equal(kiln_json_get_str(j, "b", true, &s, &err), KILN_EPARSE);
    assert_string_equal(err->msg, "field `b`: expected a string");
    kiln_error_free(&err);
    assert_int_equal(kiln_json_get_str(j, "zz", true, &s, &err), KILN_ENOTFOUND);
    kiln_error_free(&err);
    assert_int_equal(kiln_json_get_str(j, "zz", false, &s, &err), 0);
    out = kiln_json_dump_canonical(j);
    assert_string_equal(out, "{\"a\":\"x\",\"b\":1,\"o\":{},\"t\":true}");
    free(out);
    json_decref(j);
    assert_int_equal(kiln_json_parse(&j, "{\"a\":", 5, 0, "manifest", &err), KILN_EPARSE);
    assert_non_null(strstr(err->msg, "manifest: invalid JSON"));
    kiln_error_free(&err);
    assert_int_equal(kiln_json_parse(&j, doc, strlen(doc), 4, "manifest", &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_json_parse(&j, "{\"a\":1,\"a\":2}", 13, 0, "dup", &err), KILN_EPARSE);
    kiln_error_free(&err);
}

/* ---- thread pool ---- */

struct counter {
    pthread_mutex_t lock;
    int n;
    kiln_threadpool *pool;
};

static void
bump(void *arg)
{
    struct counter *c = arg;
    pthread_mutex_lock(&c->lock);
    c->n++;
    pthread_mutex_unlock(&c->lock);
}

static void
bump_and_spawn(void *arg)
{
    struct counter *c = arg;
    bump(c);
    kiln_threadpool_submit(c->pool, bump, c);
}

static void
test_base_threadpool__runs_all(void **state)
{
    struct counter c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    (void)state;

    assert_int_equal(kiln_threadpool_new(&c.pool, 4, NULL), 0);
    assert_int_equal(kiln_threadpool_size(c.pool), 4);
    for (int i = 0; i < 1000; i++)
        kiln_threadpool_submit(c.pool, i % 2 ? bump : bump_and_spawn, &c);
    kiln_threadpool_wait(c.pool);
    assert_int_equal(c.n, 1500);
    kiln_threadpool_free(c.pool);
    assert_true(kiln_ncpus() >= 1);
}

/* ---- logging ---- */

static int log_lines;
static void
count_handler(kiln_log_level level, const char *domain, const char *line, void *payload)
{
    (void)level;
    (void)line;
    (void)payload;
    if (strcmp(domain, "kiln") == 0)
        log_lines++;
}

static void
test_base_log__levels(void **state)
{
    kiln_error *err = NULL;
    (void)state;

    kiln_log_set_handler(count_handler, NULL);
    assert_int_equal(kiln_log_configure("warn,kiln=debug", &err), 0);
    kiln_log_debug("shown %d", 1);
    kiln_log_trace("hidden");
    assert_int_equal(log_lines, 1);
    assert_int_equal(kiln_log_configure("error", &err), 0);
    kiln_log_warn("hidden");
    assert_int_equal(log_lines, 1);
    assert_int_equal(kiln_log_configure("loud", &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_log_configure("=x", &err), KILN_EINVAL);
    kiln_error_free(&err);
    kiln_log_set_handler(NULL, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_base_error__set_wrap_format),
            cmocka_unit_test(test_base_error__move_copy),
            cmocka_unit_test(test_base_buf__cap),
            cmocka_unit_test(test_base_vec__sort_stable),
            cmocka_unit_test(test_base_map__put_get_remove),
            cmocka_unit_test(test_base_str__parse),
            cmocka_unit_test(test_base_str__go_quote),
            cmocka_unit_test(test_base_path__clean),
            cmocka_unit_test(test_base_path__join_base_dir),
            cmocka_unit_test_setup_teardown(test_base_path__resolve_in_root_hostile, setup_tmp,
                                            teardown_tmp),
            cmocka_unit_test_setup_teardown(test_base_path__open_in_root_hostile, setup_tmp,
                                            teardown_tmp),
            cmocka_unit_test_setup_teardown(test_base_fs__atomic_read_mkdir, setup_tmp,
                                            teardown_tmp),
            cmocka_unit_test_setup_teardown(test_base_fs__rm_rf_does_not_follow, setup_tmp,
                                            teardown_tmp),
            cmocka_unit_test_setup_teardown(test_base_fs__copy_tree, setup_tmp, teardown_tmp),
            cmocka_unit_test(test_base_digest__sha256_xxh),
            cmocka_unit_test(test_base_json__parse_get),
            cmocka_unit_test(test_base_threadpool__runs_all),
            cmocka_unit_test(test_base_log__levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
