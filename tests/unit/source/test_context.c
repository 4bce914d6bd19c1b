/*
 * test_context.c: unit tests of the build-context walker, its checksums, the stat cache and the
 * copy (source/context.h).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/map.h"
#include "base/path.h"
#include "source/context.h"
#include "test_source.h"

static int
setup_tree(void **state)
{
    char *root = test_mkdtemp();
    cleanup_free char *link = kiln_path_join(root, "src/link");
    test_write(root, "Dockerfile", "FROM scratch\n", 0644);
    test_write(root, "src/main.c", "int main(void) { return 0; }\n", 0644);
    test_write(root, "src/run.sh", "#!/bin/sh\n", 0755);
    test_write(root, "src.txt", "sibling sorted after src/ in tree order\n", 0600);
    test_write(root, "build/out.o", "object\n", 0644);
    test_write(root, "build/keep/notes.txt", "keep me\n", 0644);
    test_write(root, "node_modules/x/index.js", "js\n", 0644);
    assert_int_equal(symlink("../Dockerfile", link), 0);
    *state = root;
    return 0;
}

static int
teardown_tree(void **state)
{
    test_rm_rf(*state);
    free(*state);
    return 0;
}

static kiln_ctx_list *
walk(const char *root, const char *ignore, const char *include, const kiln_ctx_cache_ops *cache)
{
    kiln_ignore *ex = NULL, *in = NULL;
    kiln_ctx_list *l = NULL;
    kiln_error *err = NULL;
    kiln_ctx_opts opts = {.checksum = true, .cache = cache};
    if (ignore)
        assert_int_equal(kiln_ignore_new_from_file(&ex, ignore, strlen(ignore), "ign", &err), 0);
    if (include)
        assert_int_equal(kiln_ignore_new_from_file(&in, include, strlen(include), "inc", &err), 0);
    opts.exclude = ex;
    opts.include = in;
    if (kiln_ctx_walk(&l, root, &opts, &err) < 0)
        fail_msg("walk: %s", err->msg);
    kiln_ignore_free(ex);
    kiln_ignore_free(in);
    return l;
}

static char *
paths_of(const kiln_ctx_list *l)
{
    kiln_buf b = KILN_BUF_INIT;
    for (size_t i = 0; i < l->len; i++)
        kiln_buf_printf(&b, NULL, "%s%s", i ? " " : "", l->entries[i].path);
    return kiln_buf_detach(&b);
}

static void
test_source_context__order_and_types(void **state)
{
    kiln_ctx_list *l = walk(*state, NULL, NULL, NULL);
    cleanup_free char *paths = paths_of(l);
    const kiln_ctx_entry *e;
    assert_string_equal(paths, "Dockerfile build build/keep build/keep/notes.txt build/out.o "
                               "node_modules node_modules/x node_modules/x/index.js src "
                               "src/link src/main.c src/run.sh src.txt");
    e = kiln_ctx_list_find(l, "src/link");
    assert_non_null(e);
    assert_true(S_ISLNK(e->mode));
    assert_string_equal(e->link, "../Dockerfile");
    e = kiln_ctx_list_find(l, "src/run.sh");
    assert_int_equal(e->mode & 07777, 0755);
    assert_int_equal(e->size, strlen("#!/bin/sh\n"));
    assert_null(kiln_ctx_list_find(l, "nope"));
    for (size_t i = 1; i < l->len; i++)
        assert_true(kiln_ctx_path_cmp(l->entries[i - 1].path, l->entries[i].path) < 0);
    kiln_ctx_list_free(l);
}

static void
test_source_context__dockerignore(void **state)
{
    kiln_ctx_list *l = walk(*state, "node_modules\nbuild\n!build/keep\n*.txt\n", NULL, NULL);
    cleanup_free char *paths = paths_of(l);
    /* build/ is listed only as the way to build/keep; "*.txt" is anchored at the root, so it
     * excludes src.txt but not build/keep/notes.txt */
    assert_string_equal(paths, "Dockerfile build build/keep build/keep/notes.txt src src/link "
                               "src/main.c src/run.sh");
    kiln_ctx_list_free(l);
}

static void
test_source_context__include_patterns(void **state)
{
    kiln_ctx_list *l = walk(*state, "**/*.sh\n", "src\nbuild/keep/*.txt\n", NULL);
    cleanup_free char *paths = paths_of(l);
    assert_string_equal(paths, "build build/keep build/keep/notes.txt src src/link src/main.c");
    kiln_ctx_list_free(l);
}

static void
test_source_context__digest_rules(void **state)
{
    const char *root = *state;
    kiln_ctx_list *a = walk(root, NULL, NULL, NULL);
    kiln_ctx_list *b, *c, *d;
    cleanup_free char *main_c = kiln_path_join(root, "src/main.c");
    cleanup_free char *moved = kiln_path_join(root, "src/renamed.c");
    kiln_xxh128 file_a = kiln_ctx_list_find(a, "src/main.c")->digest;
    kiln_xxh128 src_a = kiln_ctx_list_find(a, "src")->digest;
    struct timespec ts[2] = {{12345, 0}, {12345, 0}};

    /* mtime is not part of any digest */
    assert_int_equal(utimensat(AT_FDCWD, main_c, ts, 0), 0);
    b = walk(root, NULL, NULL, NULL);
    assert_memory_equal(&kiln_ctx_list_find(b, "src/main.c")->digest, &file_a, sizeof(file_a));
    assert_memory_equal(&b->root_digest, &a->root_digest, sizeof(file_a));

    /* the name is not in a file's digest, but is in its directory's */
    assert_int_equal(rename(main_c, moved), 0);
    c = walk(root, NULL, NULL, NULL);
    assert_memory_equal(&kiln_ctx_list_find(c, "src/renamed.c")->digest, &file_a, sizeof(file_a));
    assert_memory_not_equal(&kiln_ctx_list_find(c, "src")->digest, &src_a, sizeof(src_a));
    assert_memory_not_equal(&c->root_digest, &a->root_digest, sizeof(src_a));
    assert_int_equal(rename(moved, main_c), 0);

    /* permissions are */
    assert_int_equal(chmod(main_c, 0600), 0);
    d = walk(root, NULL, NULL, NULL);
    assert_memory_not_equal(&kiln_ctx_list_find(d, "src/main.c")->digest, &file_a, sizeof(file_a));
    assert_int_equal(chmod(main_c, 0644), 0);
    kiln_ctx_list_free(a);
    kiln_ctx_list_free(b);
    kiln_ctx_list_free(c);
    kiln_ctx_list_free(d);
}

typedef struct fake_cache {
    kiln_map map;
    int lookups, hits, puts;
} fake_cache;

static bool
cache_get(void *payload, const void *key, size_t keylen, kiln_xxh128 *out)
{
    fake_cache *c = payload;
    cleanup_free char *k = xmalloc(keylen * 2 + 1);
    kiln_xxh128 *v;
    kiln_hex_encode(k, key, keylen);
    c->lookups++;
    v = kiln_map_get(&c->map, k);
    if (!v)
        return false;
    c->hits++;
    *out = *v;
    return true;
}

static void
cache_put(void *payload, const void *key, size_t keylen, kiln_xxh128 value)
{
    fake_cache *c = payload;
    cleanup_free char *k = xmalloc(keylen * 2 + 1);
    kiln_hex_encode(k, key, keylen);
    c->puts++;
    free(kiln_map_put(&c->map, k, xmemdup(&value, sizeof(value))));
}

static void
test_source_context__stat_cache(void **state)
{
    const char *root = *state;
    fake_cache fc = {.map = KILN_MAP_INIT};
    kiln_ctx_cache_ops ops = {cache_get, cache_put, &fc};
    kiln_ctx_list *cold = walk(root, NULL, NULL, &ops);
    kiln_ctx_list *warm, *changed;
    assert_int_equal(cold->hashed, 7);
    assert_int_equal(fc.puts, 7);
    warm = walk(root, NULL, NULL, &ops);
    assert_int_equal(warm->hashed, 0);
    assert_int_equal(fc.hits, 7);
    assert_memory_equal(&warm->root_digest, &cold->root_digest, sizeof(kiln_xxh128));
    /* a content change with a new size misses the cache and changes the digest */
    test_write(root, "src/main.c", "int main(void) { return 1; } /* changed */\n", 0644);
    changed = walk(root, NULL, NULL, &ops);
    assert_int_equal(changed->hashed, 1);
    assert_memory_not_equal(&changed->root_digest, &cold->root_digest, sizeof(kiln_xxh128));
    kiln_ctx_list_free(cold);
    kiln_ctx_list_free(warm);
    kiln_ctx_list_free(changed);
    kiln_map_dispose(&fc.map, free);
}

static void
test_source_context__copy(void **state)
{
    const char *root = *state;
    cleanup_free char *dst_parent = test_mkdtemp();
    cleanup_free char *dst = kiln_path_join(dst_parent, "out");
    cleanup_free char *run = kiln_path_join(dst, "src/run.sh");
    cleanup_free char *srcdir = kiln_path_join(dst, "src");
    cleanup_free char *link = kiln_path_join(dst, "src/link");
    cleanup_free char *content = NULL;
    kiln_ctx_list *l = walk(root, "node_modules\nbuild\n", NULL, NULL);
    kiln_ctx_list *again;
    kiln_error *err = NULL;
    char target[64] = {0};
    struct stat st;
    struct timespec ts[2] = {{1000000, 0}, {1000000, 0}};
    cleanup_free char *srcsrc = kiln_path_join(root, "src");
    assert_int_equal(utimensat(AT_FDCWD, srcsrc, ts, 0), 0);
    kiln_ctx_list_free(l);
    l = walk(root, "node_modules\nbuild\n", NULL, NULL);
    if (kiln_ctx_copy(l, root, dst, KILN_CTX_COPY_OWNER | KILN_CTX_COPY_XATTRS, &err) < 0)
        fail_msg("copy: %s", err->msg);
    content = test_read(dst, "src/main.c");
    assert_string_equal(content, "int main(void) { return 0; }\n");
    assert_false(test_exists(dst, "build"));
    assert_false(test_exists(dst, "node_modules"));
    assert_int_equal(stat(run, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(readlink(link, target, sizeof(target) - 1), strlen("../Dockerfile"));
    assert_string_equal(target, "../Dockerfile");
    assert_int_equal(stat(srcdir, &st), 0);
    assert_int_equal(st.st_mtim.tv_sec, 1000000);
    /* the copy checksums the same as its source selection */
    again = walk(dst, NULL, NULL, NULL);
    assert_memory_equal(&again->root_digest, &l->root_digest, sizeof(kiln_xxh128));
    /* copying again over the result merges and replaces */
    if (kiln_ctx_copy(l, root, dst, 0, &err) < 0)
        fail_msg("copy again: %s", err->msg);
    kiln_ctx_list_free(l);
    kiln_ctx_list_free(again);
    test_rm_rf(dst_parent);
}

/* KILN_CTX_COPY_LINK: regular files become hardlinks of the source's (same inode, so the same
 * owner, mode, times), everything else is copied, and the copy walks to the same digest */
static void
test_source_context__copy_link(void **state)
{
    const char *root = *state;
    cleanup_free char *dst_parent = test_mkdtemp();
    cleanup_free char *dst = kiln_path_join(dst_parent, "out");
    cleanup_free char *src_main = kiln_path_join(root, "src/main.c");
    cleanup_free char *dst_main = kiln_path_join(dst, "src/main.c");
    cleanup_free char *dst_link = kiln_path_join(dst, "src/link");
    kiln_ctx_list *l = walk(root, "node_modules\nbuild\n", NULL, NULL);
    kiln_ctx_list *again;
    kiln_error *err = NULL;
    struct stat a, b;

    if (kiln_ctx_copy(l, root, dst, KILN_CTX_COPY_OWNER | KILN_CTX_COPY_XATTRS | KILN_CTX_COPY_LINK,
                      &err) < 0)
        fail_msg("copy: %s", err->msg);
    assert_int_equal(stat(src_main, &a), 0);
    assert_int_equal(stat(dst_main, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    assert_int_equal(b.st_nlink, 2);
    assert_int_equal(lstat(dst_link, &b), 0); /* a symlink is recreated, not linked */
    assert_true(S_ISLNK(b.st_mode));
    assert_false(test_exists(dst, "node_modules"));
    again = walk(dst, NULL, NULL, NULL);
    assert_memory_equal(&again->root_digest, &l->root_digest, sizeof(kiln_xxh128));
    kiln_ctx_list_free(again);
    kiln_ctx_list_free(l);
    test_rm_rf(dst_parent);
    assert_int_equal(stat(src_main, &a), 0);
    assert_int_equal(a.st_nlink, 1);
}

static bool
only_main(const kiln_ctx_entry *e, void *payload)
{
    (void)payload;
    return strcmp(e->path, "src/main.c") == 0;
}

/* kiln_ctx_copy_linked: files the callback accepts are linked from the other tree, the rest
 * copied from the source */
static void
test_source_context__copy_linked(void **state)
{
    const char *root = *state;
    cleanup_free char *dst_parent = test_mkdtemp();
    cleanup_free char *prev = kiln_path_join(dst_parent, "prev");
    cleanup_free char *dst = kiln_path_join(dst_parent, "out");
    cleanup_free char *prev_main = kiln_path_join(prev, "src/main.c");
    cleanup_free char *dst_main = kiln_path_join(dst, "src/main.c");
    cleanup_free char *src_run = kiln_path_join(root, "src/run.sh");
    cleanup_free char *prev_run = kiln_path_join(prev, "src/run.sh");
    cleanup_free char *dst_run = kiln_path_join(dst, "src/run.sh");
    kiln_ctx_list *l = walk(root, "node_modules\nbuild\n", NULL, NULL);
    kiln_ctx_link_src ls = {.root = prev, .linkable = only_main};
    kiln_error *err = NULL;
    struct stat a, b;

    if (kiln_ctx_copy(l, root, prev, KILN_CTX_COPY_XATTRS, &err) < 0)
        fail_msg("copy: %s", err->msg);
    if (kiln_ctx_copy_linked(l, root, dst, KILN_CTX_COPY_XATTRS, &ls, &err) < 0)
        fail_msg("copy linked: %s", err->msg);
    assert_int_equal(stat(prev_main, &a), 0);
    assert_int_equal(stat(dst_main, &b), 0);
    assert_true(a.st_ino == b.st_ino); /* linked from prev */
    assert_int_equal(stat(prev_run, &a), 0);
    assert_int_equal(stat(dst_run, &b), 0);
    assert_true(a.st_ino != b.st_ino); /* copied */
    assert_int_equal(stat(src_run, &a), 0);
    assert_true(a.st_ino != b.st_ino);
    kiln_ctx_list_free(l);
    test_rm_rf(dst_parent);
}

static void
test_source_context__xattrs(void **state)
{
    const char *root = *state;
    cleanup_free char *file = kiln_path_join(root, "src/main.c");
    cleanup_free char *dst_parent = test_mkdtemp();
    cleanup_free char *dst = kiln_path_join(dst_parent, "out");
    cleanup_free char *copied = kiln_path_join(dst, "src/main.c");
    kiln_ctx_list *before = walk(root, NULL, NULL, NULL);
    kiln_ctx_list *after;
    const kiln_ctx_entry *e;
    kiln_error *err = NULL;
    char val[16] = {0};
    if (setxattr(file, "user.kiln.test", "v1", 2, 0) < 0) {
        kiln_ctx_list_free(before);
        test_rm_rf(dst_parent);
        skip(); /* no user xattrs on this filesystem */
        return;
    }
    after = walk(root, NULL, NULL, NULL);
    e = kiln_ctx_list_find(after, "src/main.c");
    assert_int_equal(e->nxattrs, 1);
    assert_string_equal(e->xattrs[0].name, "user.kiln.test");
    assert_int_equal(e->xattrs[0].len, 2);
    assert_memory_equal(e->xattrs[0].value, "v1", 2);
    /* xattrs are part of the file digest */
    assert_memory_not_equal(&e->digest, &kiln_ctx_list_find(before, "src/main.c")->digest,
                            sizeof(kiln_xxh128));
    if (kiln_ctx_copy(after, root, dst, KILN_CTX_COPY_XATTRS, &err) < 0)
        fail_msg("copy: %s", err->msg);
    assert_int_equal(getxattr(copied, "user.kiln.test", val, sizeof(val)), 2);
    assert_string_equal(val, "v1");
    kiln_ctx_list_free(before);
    kiln_ctx_list_free(after);
    test_rm_rf(dst_parent);
}

/* The stat cache must not hide an xattr change: setting one leaves size and mtime alone but
 * changes ctime, which is in the key. */
static void
test_source_context__stat_cache_xattrs(void **state)
{
    const char *root = *state;
    cleanup_free char *file = kiln_path_join(root, "src/main.c");
    fake_cache fc = {.map = KILN_MAP_INIT};
    kiln_ctx_cache_ops ops = {cache_get, cache_put, &fc};
    kiln_ctx_list *cold = walk(root, NULL, NULL, &ops);
    kiln_ctx_list *warm = NULL, *again = NULL, *uncached = NULL, *removed = NULL;
    const kiln_ctx_entry *e;
    if (setxattr(file, "user.kiln.test", "v1", 2, 0) < 0) {
        kiln_ctx_list_free(cold);
        kiln_map_dispose(&fc.map, free);
        skip(); /* no user xattrs on this filesystem */
        return;
    }
    warm = walk(root, NULL, NULL, &ops);
    uncached = walk(root, NULL, NULL, NULL);
    e = kiln_ctx_list_find(warm, "src/main.c");
    assert_int_equal(e->nxattrs, 1);
    assert_string_equal(e->xattrs[0].name, "user.kiln.test");
    assert_memory_equal(&e->digest, &kiln_ctx_list_find(uncached, "src/main.c")->digest,
                        sizeof(kiln_xxh128));
    assert_memory_equal(&warm->root_digest, &uncached->root_digest, sizeof(kiln_xxh128));
    assert_memory_not_equal(&warm->root_digest, &cold->root_digest, sizeof(kiln_xxh128));
    assert_int_equal(warm->hashed, 1);
    /* a file with xattrs is found in the cache too, its xattrs listed again */
    again = walk(root, NULL, NULL, &ops);
    assert_int_equal(again->hashed, 0);
    assert_int_equal(kiln_ctx_list_find(again, "src/main.c")->nxattrs, 1);
    assert_memory_equal(&again->root_digest, &uncached->root_digest, sizeof(kiln_xxh128));
    /* removing it brings the first digest back */
    assert_int_equal(removexattr(file, "user.kiln.test"), 0);
    removed = walk(root, NULL, NULL, &ops);
    assert_int_equal(kiln_ctx_list_find(removed, "src/main.c")->nxattrs, 0);
    assert_memory_equal(&removed->root_digest, &cold->root_digest, sizeof(kiln_xxh128));
    kiln_ctx_list_free(cold);
    kiln_ctx_list_free(warm);
    kiln_ctx_list_free(again);
    kiln_ctx_list_free(uncached);
    kiln_ctx_list_free(removed);
    kiln_map_dispose(&fc.map, free);
}

/* A directory wide enough to be stat'ed by helper threads comes out complete and in order. */
static void
test_source_context__wide_dir(void **state)
{
    const char *root = *state;
    kiln_ctx_list *l, *cached, *warm;
    fake_cache fc = {.map = KILN_MAP_INIT};
    kiln_ctx_cache_ops ops = {cache_get, cache_put, &fc};
    size_t files = 0;
    for (int i = 0; i < 500; i++) {
        char name[64], data[64];
        snprintf(name, sizeof(name), "wide/f%d", i);
        memset(data, 'a' + i % 26, sizeof(data));
        data[i % 50 + 1] = '\0';
        test_write(root, name, data, i % 2 ? 0644 : 0600);
    }
    l = walk(root, NULL, NULL, NULL);
    for (size_t i = 1; i < l->len; i++)
        assert_true(kiln_ctx_path_cmp(l->entries[i - 1].path, l->entries[i].path) < 0);
    for (size_t i = 0; i < l->len; i++) {
        const kiln_ctx_entry *e = &l->entries[i];
        int n;
        if (strncmp(e->path, "wide/f", 6) != 0)
            continue;
        files++;
        n = (int)strtol(e->path + 6, NULL, 10);
        assert_int_equal(e->size, (uint64_t)(n % 50 + 1));
        assert_int_equal(e->mode & 07777, n % 2 ? 0644 : 0600);
    }
    assert_int_equal(files, 500);
    cached = walk(root, NULL, NULL, &ops);
    warm = walk(root, NULL, NULL, &ops);
    assert_int_equal(warm->hashed, 0);
    assert_memory_equal(&cached->root_digest, &l->root_digest, sizeof(kiln_xxh128));
    assert_memory_equal(&warm->root_digest, &l->root_digest, sizeof(kiln_xxh128));
    kiln_ctx_list_free(l);
    kiln_ctx_list_free(cached);
    kiln_ctx_list_free(warm);
    kiln_map_dispose(&fc.map, free);
}

static void
test_source_context__errors(void **state)
{
    kiln_ctx_list *l = NULL;
    kiln_error *err = NULL;
    cleanup_free char *file = kiln_path_join(*state, "Dockerfile");
    (void)state;
    assert_int_equal(kiln_ctx_walk(&l, "/nonexistent/kiln/ctx", NULL, &err), KILN_ENOTFOUND);
    assert_non_null(strstr(err->msg, "/nonexistent/kiln/ctx"));
    kiln_error_free(&err);
    assert_int_equal(kiln_ctx_walk(&l, file, NULL, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "not a directory"));
    kiln_error_free(&err);
    assert_null(l);
}

int
test_source_run_context(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_source_context__order_and_types, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__dockerignore, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__include_patterns, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__digest_rules, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__stat_cache, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__copy, setup_tree, teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__xattrs, setup_tree, teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__stat_cache_xattrs, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__wide_dir, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__copy_link, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__copy_linked, setup_tree,
                                            teardown_tree),
            cmocka_unit_test_setup_teardown(test_source_context__errors, setup_tree, teardown_tree),
    };
    return cmocka_run_group_tests_name("source_context", tests, NULL, NULL);
}
