/*
 * test_cache.c: unit tests of the state store (cache/): opening and schema checks, the simple
 * tables, the content store, the snapshotter (overlay and naive), flattening, diffs, GC/prune/du,
 * the crash sweep and fsck. Overlay tests need root and a filesystem where overlay mounts; when
 * they cannot run the rest still runs and the suite exits 77 (KILN_TEST_MUST_WORK=1 makes that a
 * failure).
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <cmocka.h>
#include <lmdb.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/path.h"
#include "base/vec.h"
#include "cache/cache.h"

typedef struct fixture {
    char *dir;
    kiln_cache *c;
    kiln_error *err;
} fixture;

static kiln_cache_snapshotter g_mode = KILN_CACHE_SNAPSHOTTER_AUTO;

#define assert_ok(expr)                                                          \
    do {                                                                         \
        int rc_ = (expr);                                                        \
        if (rc_ != 0)                                                            \
            fail_msg("%s failed: %d %s", #expr, rc_, f->err ? f->err->msg : ""); \
    } while (0)

#define assert_code(expr, code)        \
    do {                               \
        int rc_ = (expr);              \
        assert_int_equal(rc_, (code)); \
        assert_non_null(f->err);       \
        kiln_error_free(&f->err);      \
    } while (0)

static int
open_store(fixture *f, kiln_cache_snapshotter mode, unsigned max_depth)
{
    kiln_cache_opts o = KILN_CACHE_OPTS_INIT;

    o.snapshotter = mode;
    o.max_depth = max_depth;
    kiln_cache_free(f->c);
    f->c = NULL;
    return kiln_cache_open(&f->c, f->dir, &o, &f->err);
}

static int
setup(void **state)
{
    fixture *f = xnew(fixture);
    char tmpl[] = "/tmp/kiln-cache-test-XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return -1;
    f->dir = xasprintf("%s/state", tmpl);
    if (open_store(f, g_mode, 0) < 0) {
        fprintf(stderr, "open: %s\n", f->err->msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    cleanup_free char *parent = kiln_path_dir(f->dir);
    kiln_error *tmp = NULL;

    kiln_cache_free(f->c);
    kiln_fs_rm_rf(parent, &tmp);
    kiln_error_free(&tmp);
    kiln_error_free(&f->err);
    free(f->dir);
    free(f);
    return 0;
}

static void
write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static char *
read_text(const char *path)
{
    char *out = NULL;
    kiln_error *tmp = NULL;

    if (kiln_fs_read_file(&out, NULL, path, 0, &tmp) < 0) {
        kiln_error_free(&tmp);
        return NULL;
    }
    return out;
}

static void
assert_file(const char *dir, const char *name, const char *content)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    cleanup_free char *got = read_text(p);
    if (content == NULL) {
        if (got != NULL)
            fail_msg("`%s` exists with `%s`", p, got);
        return;
    }
    if (got == NULL)
        fail_msg("`%s` is missing", p);
    assert_string_equal(got, content);
}

/* Prepare on parent, write files (name=content pairs) into the upper dir, commit. */
static void
make_layer(fixture *f, char *id, const char *parent, const char *name, const char *content)
{
    kiln_cache_mounts m = {0};
    cleanup_free char *p = NULL;

    assert_ok(kiln_cache_snapshot_prepare(id, f->c, parent, &f->err));
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, id, &f->err));
    assert_non_null(m.upper);
    p = xasprintf("%s/%s", m.upper, name);
    write_file(p, content);
    kiln_cache_mounts_dispose(&m);
    assert_ok(kiln_cache_snapshot_commit(f->c, id, &f->err));
}

static size_t
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void
assert_fsck_clean(fixture *f, bool deep)
{
    kiln_cache_fsck_report r = {0};

    assert_ok(kiln_cache_fsck(&r, f->c, deep, &f->err));
    for (size_t i = 0; i < r.len; i++)
        fprintf(stderr, "fsck: %s\n", r.problems[i]);
    assert_int_equal(r.len, 0);
    kiln_cache_fsck_report_dispose(&r);
}

static size_t
fsck_problems(fixture *f, bool deep, const char *needle)
{
    kiln_cache_fsck_report r = {0};
    size_t hits = 0;

    assert_ok(kiln_cache_fsck(&r, f->c, deep, &f->err));
    for (size_t i = 0; i < r.len; i++)
        hits += strstr(r.problems[i], needle) != NULL;
    kiln_cache_fsck_report_dispose(&r);
    return hits;
}

/* ---- store ------------------------------------------------------------------------------- */

static void
test_cache_store__reopen_keeps_data(void **state)
{
    fixture *f = *state;
    kiln_cache_result r = {0};
    char id[33];

    make_layer(f, id, NULL, "a", "1");
    assert_ok(kiln_cache_key_put(f->c, "key-1", id, &f->err));
    assert_ok(open_store(f, g_mode, 0));
    assert_ok(kiln_cache_key_get(&r, f->c, "key-1", &f->err));
    assert_string_equal(r.snapshot_id, id);
    assert_true(r.created > 0);
    kiln_cache_result_dispose(&r);
    assert_fsck_clean(f, true);
}

/* Write a raw record into table `db` of a closed store. */
static void
raw_put(const char *dir, const char *db, const char *key, const char *value)
{
    cleanup_free char *env_dir = xasprintf("%s/meta.mdb", dir);
    MDB_env *env = NULL;
    MDB_txn *t = NULL;
    MDB_dbi dbi;
    MDB_val k = {strlen(key), (void *)key}, v = {strlen(value), (void *)value};

    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, env_dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, db, 0, &dbi), 0);
    assert_int_equal(mdb_put(t, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

static void
set_schema(const char *dir, const char *value)
{
    raw_put(dir, "meta", "schema", value);
}

static void
test_cache_store__corrupt_records_are_errors(void **state)
{
    fixture *f = *state;
    kiln_cache_snapshot_info info = {0};
    kiln_cache_blob_info bi = {0};
    kiln_cache_result r = {0};
    kiln_cache_usage_list l = {0};
    char id[33], d[KILN_DIGEST_STRLEN + 1];
    const char *bad[] = {"",
                         "{",
                         "[]",
                         "{\"kind\":\"zombie\"}",
                         "{\"kind\":\"committed\",\"size\":-1,\"created\":1,\"last_used\":1}",
                         ("{\"kind\":\"committed\",\"size\":1,\"created\":1,\"last_used\":1,"
                          "\"parent\":\"../../etc\"}")};

    make_layer(f, id, NULL, "a", "1");
    assert_ok(kiln_cache_blob_put(f->c, "x", 1, NULL, d, &f->err));
    assert_ok(kiln_cache_key_put(f->c, "k", id, &f->err));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_cache_free(f->c);
        f->c = NULL;
        raw_put(f->dir, "snapshots", id, bad[i]);
        raw_put(f->dir, "blobs", d, bad[i]);
        raw_put(f->dir, "keys", "k", bad[i]);
        assert_ok(open_store(f, g_mode, 0));
        assert_code(kiln_cache_snapshot_info_get(&info, f->c, id, &f->err), KILN_EPARSE);
        assert_true(kiln_cache_blob_info_get(&bi, f->c, d, &f->err) < 0);
        kiln_error_free(&f->err);
        assert_true(kiln_cache_key_get(&r, f->c, "k", &f->err) < 0);
        kiln_error_free(&f->err);
        assert_true(kiln_cache_prune(&l, f->c, NULL, &f->err) < 0); /* refuses to guess */
        kiln_error_free(&f->err);
        assert_true(fsck_problems(f, false, "") >= 3);
    }
}

static void
test_cache_store__newer_schema_unsupported(void **state)
{
    fixture *f = *state;

    kiln_cache_free(f->c);
    f->c = NULL;
    set_schema(f->dir, "99");
    assert_code(open_store(f, g_mode, 0), KILN_EUNSUPPORTED);
    set_schema(f->dir, "banana");
    assert_code(open_store(f, g_mode, 0), KILN_EUNSUPPORTED);
    set_schema(f->dir, "1");
    assert_ok(open_store(f, g_mode, 0));
}

static void
test_cache_store__snapshotter_is_recorded(void **state)
{
    fixture *f = *state;
    bool overlay = kiln_cache_uses_overlay(f->c);
    kiln_cache_snapshotter other =
            overlay ? KILN_CACHE_SNAPSHOTTER_NAIVE : KILN_CACHE_SNAPSHOTTER_OVERLAY;

    assert_code(open_store(f, other, 0), KILN_EUNSUPPORTED);
    assert_ok(open_store(f, KILN_CACHE_SNAPSHOTTER_AUTO, 0));
    assert_int_equal(kiln_cache_uses_overlay(f->c), overlay);
}

static void
test_cache_store__default_root(void **state)
{
    cleanup_free char *root = kiln_cache_default_root();
    (void)state;
    if (geteuid() == 0)
        assert_string_equal(root, "/var/lib/kiln");
    else
        assert_true(kiln_str_has_suffix(root, "/kiln"));
}

static void
test_cache_store__bad_opts(void **state)
{
    fixture *f = *state;
    kiln_cache_opts o = KILN_CACHE_OPTS_INIT;
    kiln_cache *c = NULL;

    o.version = 42;
    assert_code(kiln_cache_open(&c, f->dir, &o, &f->err), KILN_EINVAL);
    assert_code(kiln_cache_open(&c, "", NULL, &f->err), KILN_EINVAL);
    assert_null(c);
}

/* ---- tables ------------------------------------------------------------------------------ */

static void
test_cache_keys__put_get_delete(void **state)
{
    fixture *f = *state;
    kiln_cache_result r = {0};
    char id[33], active[33];

    make_layer(f, id, NULL, "a", "1");
    assert_code(kiln_cache_key_get(&r, f->c, "nope", &f->err), KILN_ENOTFOUND);
    assert_code(kiln_cache_key_put(f->c, "k", "0123456789abcdef0123456789abcdef", &f->err),
                KILN_ENOTFOUND);
    assert_code(kiln_cache_key_put(f->c, "k", "../etc", &f->err), KILN_EINVAL);
    assert_ok(kiln_cache_snapshot_prepare(active, f->c, NULL, &f->err));
    assert_code(kiln_cache_key_put(f->c, "k", active, &f->err), KILN_EINVAL);
    assert_ok(kiln_cache_key_put(f->c, "k", id, &f->err));
    assert_ok(kiln_cache_key_get(&r, f->c, "k", &f->err));
    assert_string_equal(r.snapshot_id, id);
    kiln_cache_result_dispose(&r);
    assert_ok(kiln_cache_key_delete(f->c, "k", &f->err));
    assert_code(kiln_cache_key_delete(f->c, "k", &f->err), KILN_ENOTFOUND);
}

static void
test_cache_tables__images_history_checksums(void **state)
{
    fixture *f = *state;
    char *got = NULL;
    void *val = NULL;
    size_t len = 0;
    char d[KILN_DIGEST_STRLEN + 1];
    cleanup_free char *desc = NULL;
    kiln_cache_blob_info bi = {0};

    assert_ok(kiln_cache_blob_put(f->c, "{}", 2, "application/json", d, &f->err));
    desc = xasprintf("{\"digest\":\"%s\",\"size\":2}", d);
    assert_code(kiln_cache_image_put(f->c, "img", "{not json", NULL, &f->err), KILN_EPARSE);
    assert_code(kiln_cache_image_put(f->c, "img", "[1]", NULL, &f->err), KILN_EPARSE);
    assert_ok(kiln_cache_image_put(f->c, "img", desc, NULL, &f->err));
    assert_ok(kiln_cache_image_get(&got, f->c, "img", &f->err));
    assert_string_equal(got, desc);
    free(got);
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d, &f->err));
    assert_int_equal(bi.refcount, 1);
    kiln_cache_blob_info_dispose(&bi);
    /* replacing the image does not count its refs twice */
    assert_ok(kiln_cache_image_put(f->c, "img", desc, NULL, &f->err));
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d, &f->err));
    assert_int_equal(bi.refcount, 1);
    kiln_cache_blob_info_dispose(&bi);
    assert_code(kiln_cache_blob_delete(f->c, d, &f->err), KILN_EEXISTS);
    assert_ok(kiln_cache_image_delete(f->c, "img", &f->err));
    assert_code(kiln_cache_image_get(&got, f->c, "img", &f->err), KILN_ENOTFOUND);
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d, &f->err));
    assert_int_equal(bi.refcount, 0);
    kiln_cache_blob_info_dispose(&bi);

    assert_ok(kiln_cache_history_put(f->c, "h1", "{\"ref\":\"x\"}", NULL, &f->err));
    assert_ok(kiln_cache_history_get(&got, f->c, "h1", &f->err));
    assert_string_equal(got, "{\"ref\":\"x\"}");
    free(got);
    assert_ok(kiln_cache_history_delete(f->c, "h1", &f->err));

    assert_ok(kiln_cache_checksum_put(f->c, "ctx/a", "\0\1\2", 3, &f->err));
    assert_ok(kiln_cache_checksum_get(&val, &len, f->c, "ctx/a", &f->err));
    assert_int_equal(len, 3);
    assert_memory_equal(val, "\0\1\2", 3);
    free(val);
    assert_ok(kiln_cache_checksum_delete(f->c, "ctx/a", &f->err));
    assert_code(kiln_cache_checksum_get(&val, &len, f->c, "ctx/a", &f->err), KILN_ENOTFOUND);
    assert_code(kiln_cache_checksum_put(f->c, "", "x", 1, &f->err), KILN_EINVAL);
    {
        char longkey[2000];
        memset(longkey, 'p', sizeof(longkey) - 1);
        longkey[sizeof(longkey) - 1] = 0;
        assert_ok(kiln_cache_checksum_put(f->c, longkey, "v", 1, &f->err));
        longkey[1000] = 'q'; /* a different long key must not collide */
        assert_code(kiln_cache_checksum_get(&val, &len, f->c, longkey, &f->err), KILN_ENOTFOUND);
        longkey[1000] = 'p';
        assert_ok(kiln_cache_checksum_get(&val, &len, f->c, longkey, &f->err));
        assert_int_equal(len, 1);
        free(val);
    }
    assert_fsck_clean(f, true);
}

/* A checksum batch: one read snapshot, writes queued until commit and seen by its own lookups,
 * rows shared with the single-call API (long keys hashed the same way). */
static void
test_cache_tables__checksum_batch(void **state)
{
    fixture *f = *state;
    kiln_cache_checksum_batch *b = NULL;
    char buf[16], longkey[1000];
    void *val = NULL;
    size_t len = 0;
    bool found = true;

    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = 0;
    assert_ok(kiln_cache_checksum_put(f->c, "ctx/old", "0123", 4, &f->err));
    assert_ok(kiln_cache_checksum_put(f->c, longkey, "long", 4, &f->err));
    kiln_cache_checksum_batch_new(&b, f->c);
    len = sizeof(buf);
    assert_ok(kiln_cache_checksum_batch_get(&found, buf, &len, b, "ctx/old", &f->err));
    assert_true(found);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "0123", 4);
    len = sizeof(buf);
    assert_ok(kiln_cache_checksum_batch_get(&found, buf, &len, b, longkey, &f->err));
    assert_true(found);
    assert_memory_equal(buf, "long", 4);
    /* a value larger than the buffer: its size is reported, the buffer filled */
    len = 2;
    assert_ok(kiln_cache_checksum_batch_get(&found, buf, &len, b, "ctx/old", &f->err));
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "01", 2);
    /* a miss is no error */
    len = sizeof(buf);
    assert_ok(kiln_cache_checksum_batch_get(&found, buf, &len, b, "ctx/new", &f->err));
    assert_false(found);
    assert_null(f->err);
    /* queued writes: seen by the batch, not by others until commit */
    kiln_cache_checksum_batch_put(b, "ctx/new", "abc", 3);
    kiln_cache_checksum_batch_put(b, "ctx/new", "abcd", 4);
    len = sizeof(buf);
    assert_ok(kiln_cache_checksum_batch_get(&found, buf, &len, b, "ctx/new", &f->err));
    assert_true(found);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "abcd", 4);
    assert_code(kiln_cache_checksum_get(&val, &len, f->c, "ctx/new", &f->err), KILN_ENOTFOUND);
    assert_ok(kiln_cache_checksum_batch_commit(b, &f->err));
    assert_ok(kiln_cache_checksum_get(&val, &len, f->c, "ctx/new", &f->err));
    assert_int_equal(len, 4);
    assert_memory_equal(val, "abcd", 4);
    free(val);
    /* after commit the batch reads a fresh snapshot */
    assert_ok(kiln_cache_checksum_put(f->c, "ctx/later", "L", 1, &f->err));
    len = sizeof(buf);
    assert_ok(kiln_cache_checksum_batch_get(&found, buf, &len, b, "ctx/later", &f->err));
    assert_true(found);
    assert_code(kiln_cache_checksum_batch_get(&found, buf, &len, b, "", &f->err), KILN_EINVAL);
    /* uncommitted writes are dropped with the batch */
    kiln_cache_checksum_batch_put(b, "ctx/dropped", "x", 1);
    kiln_cache_checksum_batch_free(b);
    assert_code(kiln_cache_checksum_get(&val, &len, f->c, "ctx/dropped", &f->err), KILN_ENOTFOUND);
    kiln_cache_checksum_batch_free(NULL);
    assert_fsck_clean(f, true);
}

static void
test_cache_tables__refs_validate_targets(void **state)
{
    fixture *f = *state;
    const char *bad1[] = {"blob:sha256:"
                          "0000000000000000000000000000000000000000000000000000000000000000",
                          NULL};
    const char *bad2[] = {"weird:thing", NULL};

    assert_code(kiln_cache_image_put(f->c, "i", "{}", bad1, &f->err), KILN_ENOTFOUND);
    assert_code(kiln_cache_image_put(f->c, "i", "{}", bad2, &f->err), KILN_EINVAL);
    assert_code(kiln_cache_lease_add(f->c, "l", "snapshot:nothex", &f->err), KILN_EINVAL);
    /* nothing was stored by the failed puts */
    assert_code(kiln_cache_image_get(&(char *){NULL}, f->c, "i", &f->err), KILN_ENOTFOUND);
}

/* ---- content store ----------------------------------------------------------------------- */

static void
test_cache_blob__write_read_verify(void **state)
{
    fixture *f = *state;
    kiln_cache_blob_writer *w = NULL;
    kiln_cache_blob_info bi = {0};
    char d[KILN_DIGEST_STRLEN + 1], want[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 sum;
    char buf[64];
    cleanup_free char *ingest = xasprintf("%s/ingest", f->dir);
    int fd = -1;
    ssize_t n;

    kiln_sha256_buf(&sum, "hello world", 11);
    kiln_digest_format(want, &sum);
    assert_ok(kiln_cache_blob_writer_new(&w, f->c, want, &f->err));
    assert_ok(kiln_cache_blob_writer_write(w, "hello ", 6, &f->err));
    assert_ok(kiln_cache_blob_writer_write(w, "world", 5, &f->err));
    assert_int_equal(count_entries(ingest), 1);
    assert_ok(kiln_cache_blob_writer_commit(w, "text/plain", d, &f->err));
    assert_code(kiln_cache_blob_writer_write(w, "x", 1, &f->err), KILN_EINVAL);
    kiln_cache_blob_writer_free(w);
    assert_string_equal(d, want);
    assert_int_equal(count_entries(ingest), 0);
    assert_true(kiln_cache_blob_exists(f->c, d));
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d, &f->err));
    assert_int_equal(bi.size, 11);
    assert_string_equal(bi.media_type, "text/plain");
    kiln_cache_blob_info_dispose(&bi);
    assert_ok(kiln_cache_blob_open(&fd, f->c, d, &f->err));
    n = read(fd, buf, sizeof(buf));
    close(fd);
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "hello world", 11);
    /* writing it again succeeds and keeps one file */
    assert_ok(kiln_cache_blob_put(f->c, "hello world", 11, NULL, NULL, &f->err));
    assert_ok(kiln_cache_blob_delete(f->c, d, &f->err));
    assert_false(kiln_cache_blob_exists(f->c, d));
    assert_code(kiln_cache_blob_open(&fd, f->c, d, &f->err), KILN_ENOTFOUND);
    assert_code(kiln_cache_blob_delete(f->c, d, &f->err), KILN_ENOTFOUND);
    assert_code(kiln_cache_blob_open(&fd, f->c, "md5:abc", &f->err), KILN_EINVAL);
}

static void
test_cache_blob__digest_mismatch_stores_nothing(void **state)
{
    fixture *f = *state;
    kiln_cache_blob_writer *w = NULL;
    cleanup_free char *ingest = xasprintf("%s/ingest", f->dir);
    cleanup_free char *blobs = xasprintf("%s/blobs/sha256", f->dir);
    const char *wrong = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    assert_code(kiln_cache_blob_writer_new(&w, f->c, "sha256:zz", &f->err), KILN_EINVAL);
    assert_ok(kiln_cache_blob_writer_new(&w, f->c, wrong, &f->err));
    assert_ok(kiln_cache_blob_writer_write(w, "data", 4, &f->err));
    assert_code(kiln_cache_blob_writer_commit(w, NULL, NULL, &f->err), KILN_EDIGEST);
    kiln_cache_blob_writer_free(w);
    assert_int_equal(count_entries(ingest), 0);
    assert_int_equal(count_entries(blobs), 0);
    assert_false(kiln_cache_blob_exists(f->c, wrong));
    /* an abandoned writer leaves no temp file either */
    assert_ok(kiln_cache_blob_writer_new(&w, f->c, NULL, &f->err));
    kiln_cache_blob_writer_free(w);
    assert_int_equal(count_entries(ingest), 0);
}

typedef struct writer_arg {
    kiln_cache *c;
    int rc;
    char digest[KILN_DIGEST_STRLEN + 1];
} writer_arg;

static void *
writer_thread(void *p)
{
    writer_arg *a = p;
    kiln_error *e = NULL;
    char data[100000];

    memset(data, 'z', sizeof(data));
    for (int i = 0; i < 20 && a->rc == 0; i++)
        a->rc = kiln_cache_blob_put(a->c, data, sizeof(data), NULL, a->digest, &e);
    kiln_error_free(&e);
    return NULL;
}

static void
test_cache_blob__concurrent_writers(void **state)
{
    fixture *f = *state;
    pthread_t th[4];
    writer_arg args[4];
    cleanup_free char *blobs = xasprintf("%s/blobs/sha256", f->dir);

    for (int i = 0; i < 4; i++) {
        args[i] = (writer_arg){f->c, 0, {0}};
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, 0);
        assert_string_equal(args[i].digest, args[0].digest);
    }
    assert_int_equal(count_entries(blobs), 1);
    assert_fsck_clean(f, true);
}

typedef struct prune_arg {
    kiln_cache *c;
    volatile int stop;
    int rc, runs;
} prune_arg;

static void *
prune_thread(void *p)
{
    prune_arg *a = p;
    kiln_error *e = NULL;
    kiln_cache_usage_list l = {0};

    while (!a->stop && a->rc == 0) {
        a->rc = kiln_cache_prune(&l, a->c, NULL, &e);
        kiln_cache_usage_list_dispose(&l);
        a->runs++;
    }
    kiln_error_free(&e);
    return NULL;
}

/* A blob written under a lease survives prunes running concurrently; once released, it goes. */
static void
test_cache_gc__leased_writes_race_prune(void **state)
{
    fixture *f = *state;
    prune_arg pa = {f->c, 0, 0, 0};
    pthread_t th;
    char d[KILN_DIGEST_STRLEN + 1], buf[16];
    kiln_cache_usage_list l = {0};

    assert_int_equal(pthread_create(&th, NULL, prune_thread, &pa), 0);
    for (int i = 0; i < 40; i++) {
        kiln_cache_blob_writer *w = NULL;
        int fd = -1;
        assert_ok(kiln_cache_blob_writer_new(&w, f->c, NULL, &f->err));
        kiln_cache_blob_writer_set_lease(w, "build");
        assert_ok(kiln_cache_blob_writer_write(w, "same bytes", 10, &f->err));
        assert_ok(kiln_cache_blob_writer_commit(w, NULL, d, &f->err));
        kiln_cache_blob_writer_free(w);
        assert_ok(kiln_cache_blob_open(&fd, f->c, d, &f->err));
        assert_int_equal(read(fd, buf, sizeof(buf)), 10);
        close(fd);
        assert_ok(kiln_cache_lease_release(f->c, "build", &f->err));
    }
    pa.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(pa.rc, 0);
    assert_true(pa.runs > 0);
    assert_ok(kiln_cache_prune(&l, f->c, NULL, &f->err));
    kiln_cache_usage_list_dispose(&l);
    assert_false(kiln_cache_blob_exists(f->c, d));
    assert_fsck_clean(f, true);
}

/* Work done by one of several processes sharing a store. Exits 0 when every call succeeded. */
static __attribute__((noreturn)) void
process_worker(const char *dir, int n)
{
    kiln_cache *c = NULL;
    kiln_error *e = NULL;
    char id[33], key[32], data[64];
    int ret = kiln_cache_open(&c, dir, NULL, &e);

    for (int i = 0; ret == 0 && i < 15; i++) {
        snprintf(data, sizeof(data), "blob %d", i % 5); /* both processes write the same blobs */
        snprintf(key, sizeof(key), "p%d-%d", n, i);
        ret = kiln_cache_blob_put(c, data, strlen(data), NULL, NULL, &e);
        if (ret == 0)
            ret = kiln_cache_snapshot_prepare(id, c, NULL, &e);
        if (ret == 0)
            ret = kiln_cache_snapshot_commit(c, id, &e);
        if (ret == 0)
            ret = kiln_cache_key_put(c, key, id, &e);
    }
    if (ret < 0)
        fprintf(stderr, "worker %d: %s\n", n, e->msg);
    kiln_cache_free(c);
    _exit(ret < 0 ? 1 : 0);
}

static void
test_cache_store__several_processes(void **state)
{
    fixture *f = *state;
    kiln_cache_result r = {0};
    kiln_cache_usage_list l = {0};
    pid_t pids[3];
    int status;

    kiln_cache_free(f->c); /* LMDB: never use an environment across fork() */
    f->c = NULL;
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            process_worker(f->dir, i);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_ok(open_store(f, g_mode, 0));
    assert_ok(kiln_cache_key_get(&r, f->c, "p2-14", &f->err));
    kiln_cache_result_dispose(&r);
    assert_ok(kiln_cache_du(&l, f->c, &f->err));
    assert_int_equal(l.len, 45 + 5); /* 45 snapshots, 5 distinct blobs */
    kiln_cache_usage_list_dispose(&l);
    assert_fsck_clean(f, true);
}

/* ---- snapshots --------------------------------------------------------------------------- */

static void
test_cache_snapshot__lifecycle(void **state)
{
    fixture *f = *state;
    kiln_cache_snapshot_info info = {0};
    kiln_cache_mounts m = {0};
    char base[33], child[33], view[33];

    make_layer(f, base, NULL, "a", "1");
    assert_ok(kiln_cache_snapshot_info_get(&info, f->c, base, &f->err));
    assert_int_equal(info.kind, KILN_CACHE_SNAPSHOT_COMMITTED);
    assert_null(info.parent);
    assert_int_equal(info.size, 1);
    kiln_cache_snapshot_info_dispose(&info);
    assert_code(kiln_cache_snapshot_commit(f->c, base, &f->err), KILN_EINVAL);

    assert_ok(kiln_cache_snapshot_prepare(child, f->c, base, &f->err));
    assert_code(kiln_cache_snapshot_prepare(view, f->c, child, &f->err), KILN_EINVAL);
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, child, &f->err));
    assert_non_null(m.upper);
    if (kiln_cache_uses_overlay(f->c)) {
        assert_int_equal(m.nlower, 1);
        assert_non_null(m.work);
        assert_true(kiln_str_has_suffix(m.lower[0], base + 0) || strstr(m.lower[0], base) != NULL);
    } else {
        assert_int_equal(m.nlower, 0);
        assert_file(m.upper, "a", "1"); /* naive: a full copy of the parent */
    }
    assert_null(m.lower[m.nlower]);
    kiln_cache_mounts_dispose(&m);
    assert_ok(kiln_cache_snapshot_commit(f->c, child, &f->err));

    assert_ok(kiln_cache_snapshot_view(view, f->c, child, &f->err));
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, view, &f->err));
    assert_null(m.upper);
    assert_true(m.nlower >= 1);
    kiln_cache_mounts_dispose(&m);
    assert_code(kiln_cache_snapshot_view(view, f->c, NULL, &f->err), KILN_EINVAL);

    assert_ok(kiln_cache_snapshot_set_label(f->c, child, "kiln.internal", "1", &f->err));
    assert_ok(kiln_cache_snapshot_info_get(&info, f->c, child, &f->err));
    assert_string_equal(info.parent, base);
    assert_string_equal(info.labels[0], "kiln.internal");
    assert_string_equal(info.labels[1], "1");
    assert_null(info.labels[2]);
    kiln_cache_snapshot_info_dispose(&info);

    assert_code(kiln_cache_snapshot_remove(f->c, base, &f->err), KILN_EEXISTS);
    assert_code(kiln_cache_snapshot_remove(f->c, child, &f->err), KILN_EEXISTS);
    assert_ok(kiln_cache_snapshot_remove(f->c, view, &f->err));
    assert_ok(kiln_cache_snapshot_remove(f->c, child, &f->err));
    assert_ok(kiln_cache_snapshot_remove(f->c, base, &f->err));
    assert_code(kiln_cache_snapshot_remove(f->c, base, &f->err), KILN_ENOTFOUND);
    assert_code(kiln_cache_snapshot_info_get(&info, f->c, base, &f->err), KILN_ENOTFOUND);
    assert_fsck_clean(f, false);
}

static void
test_cache_snapshot__blob_refcount(void **state)
{
    fixture *f = *state;
    kiln_cache_blob_info bi = {0};
    char id[33], d1[KILN_DIGEST_STRLEN + 1], d2[KILN_DIGEST_STRLEN + 1];

    make_layer(f, id, NULL, "a", "1");
    assert_ok(kiln_cache_blob_put(f->c, "layer1", 6, "application/x-tar", d1, &f->err));
    assert_ok(kiln_cache_blob_put(f->c, "layer2", 6, "application/x-tar", d2, &f->err));
    assert_ok(kiln_cache_snapshot_set_blob(f->c, id, d1, &f->err));
    assert_ok(kiln_cache_snapshot_set_blob(f->c, id, d2, &f->err));
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d1, &f->err));
    assert_int_equal(bi.refcount, 0);
    kiln_cache_blob_info_dispose(&bi);
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d2, &f->err));
    assert_int_equal(bi.refcount, 1);
    kiln_cache_blob_info_dispose(&bi);
    assert_fsck_clean(f, true);
    assert_ok(kiln_cache_snapshot_remove(f->c, id, &f->err));
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d2, &f->err));
    assert_int_equal(bi.refcount, 0);
    kiln_cache_blob_info_dispose(&bi);
    assert_fsck_clean(f, true);
}

/* ---- overlay: mounts, whiteouts, diff, flattening ----------------------------------------- */

/* Mount what kiln_cache_snapshot_mounts returned at target, as the executor would. */
static void
mount_snapshot(const kiln_cache_mounts *m, const char *target)
{
    cleanup_free char *lower = NULL;
    cleanup_free char *opts = NULL;
    kiln_vec v = {(void **)m->lower, m->nlower, m->nlower};

    if (m->nlower == 0) {
        assert_int_equal(mount(m->upper, target, NULL, MS_BIND, NULL), 0);
        return;
    }
    lower = kiln_strvec_join(&v, ":");
    if (m->upper)
        opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, m->upper, m->work);
    else if (m->nlower == 1)
        opts = NULL;
    else
        opts = xasprintf("lowerdir=%s", lower);
    if (opts == NULL)
        assert_int_equal(mount(m->lower[0], target, NULL, MS_BIND | MS_RDONLY, NULL), 0);
    else if (mount("overlay", target, "overlay", 0, opts) != 0)
        fail_msg("mount overlay %s: %s", opts, strerror(errno));
}

static void
write_in(const char *dir, const char *name, const char *content)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    write_file(p, content);
}

static void
mkdir_in(const char *dir, const char *name)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    if (mkdir(p, 0755) != 0)
        fail_msg("mkdir `%s`: %s", p, strerror(errno));
}

static void
unlink_in(const char *dir, const char *name)
{
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    if (unlink(p) != 0)
        fail_msg("unlink `%s`: %s", p, strerror(errno));
}

typedef struct change {
    kiln_cache_change_kind kind;
    char path[64];
} change;

typedef struct changes {
    change items[32];
    size_t len;
} changes;

static int
collect_change(kiln_cache_change_kind kind, const char *path, const char *full,
               const struct stat *st, void *payload, kiln_error **err)
{
    changes *c = payload;
    (void)err;
    if (kind == KILN_CACHE_CHANGE_DELETE)
        assert_true(full == NULL && st == NULL);
    else
        assert_true(full != NULL && st != NULL);
    if (c->len < 32) {
        c->items[c->len].kind = kind;
        kiln_strlcpy(c->items[c->len].path, path, sizeof(c->items[0].path));
        c->len++;
    }
    return 0;
}

static void
test_cache_overlay__whiteouts_and_diff(void **state)
{
    fixture *f = *state;
    kiln_cache_mounts m = {0};
    cleanup_free char *mnt = xasprintf("%s/mounts/t", f->dir);
    changes ch = {0};
    char base[33], child[33], top[33];

    make_layer(f, base, NULL, "a", "A");
    /* child: delete a, add c and d/x, through an overlay mount */
    assert_ok(kiln_cache_snapshot_prepare(child, f->c, base, &f->err));
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, child, &f->err));
    assert_int_equal(mkdir(mnt, 0755), 0);
    mount_snapshot(&m, mnt);
    kiln_cache_mounts_dispose(&m);
    assert_file(mnt, "a", "A");
    unlink_in(mnt, "a");
    mkdir_in(mnt, "d");
    write_in(mnt, "d/x", "X");
    write_in(mnt, "c", "C");
    assert_int_equal(umount2(mnt, 0), 0);
    assert_ok(kiln_cache_snapshot_commit(f->c, child, &f->err));
    assert_ok(kiln_cache_snapshot_diff(f->c, child, collect_change, &ch, &f->err));
    assert_int_equal(ch.len, 4);
    assert_int_equal(ch.items[0].kind, KILN_CACHE_CHANGE_DELETE);
    assert_string_equal(ch.items[0].path, "a");
    assert_string_equal(ch.items[1].path, "c");
    assert_string_equal(ch.items[2].path, "d");
    assert_string_equal(ch.items[3].path, "d/x");

    /* top: delete d entirely and recreate it: overlay marks the new d opaque */
    assert_ok(kiln_cache_snapshot_prepare(top, f->c, child, &f->err));
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, top, &f->err));
    assert_int_equal(m.nlower, 2);
    mount_snapshot(&m, mnt);
    kiln_cache_mounts_dispose(&m);
    unlink_in(mnt, "d/x");
    {
        cleanup_free char *d = xasprintf("%s/d", mnt);
        assert_int_equal(rmdir(d), 0);
    }
    mkdir_in(mnt, "d");
    write_in(mnt, "d/y", "Y");
    assert_int_equal(umount2(mnt, 0), 0);
    assert_ok(kiln_cache_snapshot_commit(f->c, top, &f->err));
    ch.len = 0;
    assert_ok(kiln_cache_snapshot_diff(f->c, top, collect_change, &ch, &f->err));
    assert_int_equal(ch.len, 2);
    assert_int_equal(ch.items[0].kind, KILN_CACHE_CHANGE_OPAQUE_DIR);
    assert_string_equal(ch.items[0].path, "d");
    assert_string_equal(ch.items[1].path, "d/y");

    /* the committed chain mounts read-only to the merged view */
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, top, &f->err));
    assert_int_equal(m.nlower, 3);
    assert_null(m.upper);
    mount_snapshot(&m, mnt);
    kiln_cache_mounts_dispose(&m);
    assert_file(mnt, "a", NULL);
    assert_file(mnt, "c", "C");
    assert_file(mnt, "d/x", NULL);
    assert_file(mnt, "d/y", "Y");
    assert_int_equal(umount2(mnt, 0), 0);
    assert_fsck_clean(f, false);
}

static int
stop_at_first(kiln_cache_change_kind kind, const char *path, const char *full,
              const struct stat *st, void *payload, kiln_error **err)
{
    (void)kind, (void)path, (void)full, (void)st, (void)err;
    ++*(int *)payload;
    return 7;
}

static void
test_cache_snapshot__diff_naive(void **state)
{
    fixture *f = *state;
    kiln_cache_mounts m = {0};
    changes ch = {0};
    cleanup_free char *p = NULL;
    kiln_error *tmp = NULL;
    char base[33], child[33];
    int calls = 0;

    if (kiln_cache_uses_overlay(f->c))
        skip(); /* overlay diffs are covered by test_cache_overlay__whiteouts_and_diff */
    make_layer(f, base, NULL, "a", "A");
    assert_ok(kiln_cache_snapshot_prepare(child, f->c, base, &f->err));
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, child, &f->err));
    write_in(m.upper, "a", "changed");
    write_in(m.upper, "c", "C");
    mkdir_in(m.upper, "d");
    kiln_cache_mounts_dispose(&m);
    assert_ok(kiln_cache_snapshot_commit(f->c, child, &f->err));
    assert_ok(kiln_cache_snapshot_diff(f->c, base, collect_change, &ch, &f->err));
    assert_int_equal(ch.len, 1); /* a base snapshot: everything is new */
    ch.len = 0;
    assert_ok(kiln_cache_snapshot_diff(f->c, child, collect_change, &ch, &f->err));
    assert_int_equal(ch.len, 3);
    assert_string_equal(ch.items[0].path, "a");
    assert_string_equal(ch.items[1].path, "c");
    assert_string_equal(ch.items[2].path, "d");
    /* a layer on top that deletes: reported as deletions, the unchanged entries are not */
    assert_ok(kiln_cache_snapshot_prepare(base, f->c, child, &f->err));
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, base, &f->err));
    unlink_in(m.upper, "c");
    p = xasprintf("%s/d", m.upper);
    assert_int_equal(kiln_fs_rm_rf(p, &tmp), 0);
    kiln_cache_mounts_dispose(&m);
    ch.len = 0;
    assert_ok(kiln_cache_snapshot_diff(f->c, base, collect_change, &ch, &f->err));
    assert_int_equal(ch.len, 2);
    assert_int_equal(ch.items[0].kind, KILN_CACHE_CHANGE_DELETE);
    assert_string_equal(ch.items[0].path, "c");
    assert_int_equal(ch.items[1].kind, KILN_CACHE_CHANGE_DELETE);
    assert_string_equal(ch.items[1].path, "d");
    assert_int_equal(kiln_cache_snapshot_diff(f->c, child, stop_at_first, &calls, &f->err), 7);
    assert_int_equal(calls, 1);
}

/* Write a whiteout for `name` straight into an active snapshot's upper dir. */
static void
make_whiteout_layer(fixture *f, char *id, const char *parent, const char *add, const char *del)
{
    kiln_cache_mounts m = {0};
    cleanup_free char *p = NULL;
    cleanup_free char *w = NULL;

    assert_ok(kiln_cache_snapshot_prepare(id, f->c, parent, &f->err));
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, id, &f->err));
    p = xasprintf("%s/%s", m.upper, add);
    write_file(p, add);
    if (del) {
        w = xasprintf("%s/%s", m.upper, del);
        assert_int_equal(mknod(w, S_IFCHR | 0600, makedev(0, 0)), 0);
    }
    kiln_cache_mounts_dispose(&m);
    assert_ok(kiln_cache_snapshot_commit(f->c, id, &f->err));
}

static void
test_cache_overlay__deep_chain_is_flattened(void **state)
{
    fixture *f = *state;
    kiln_cache_mounts m = {0};
    kiln_cache_usage_list du = {0};
    cleanup_free char *mnt = NULL;
    cleanup_free char *snaps = NULL;
    char l[6][33];
    size_t before;

    assert_ok(open_store(f, KILN_CACHE_SNAPSHOTTER_OVERLAY, 3));
    mnt = xasprintf("%s/mounts/t", f->dir);
    snaps = xasprintf("%s/snapshots", f->dir);
    make_whiteout_layer(f, l[0], NULL, "f0", NULL);
    make_whiteout_layer(f, l[1], l[0], "f1", NULL);
    make_whiteout_layer(f, l[2], l[1], "f2", "f0");
    assert_int_equal(count_entries(snaps), 3);
    make_whiteout_layer(f, l[3], l[2], "f3", NULL); /* flattens l[2]'s chain */
    assert_int_equal(count_entries(snaps), 5);
    make_whiteout_layer(f, l[4], l[3], "f4", "f1");
    before = count_entries(snaps);
    assert_ok(kiln_cache_snapshot_mounts(&m, f->c, l[4], &f->err));
    assert_true(m.nlower <= 3);
    assert_int_equal(mkdir(mnt, 0755), 0);
    mount_snapshot(&m, mnt);
    kiln_cache_mounts_dispose(&m);
    assert_file(mnt, "f0", NULL);
    assert_file(mnt, "f1", NULL);
    assert_file(mnt, "f2", "f2");
    assert_file(mnt, "f3", "f3");
    assert_file(mnt, "f4", "f4");
    assert_int_equal(umount2(mnt, 0), 0);
    /* a second child of a flattened parent reuses the flattened copy */
    make_whiteout_layer(f, l[5], l[2], "g", NULL);
    assert_int_equal(count_entries(snaps), before + 1);
    assert_fsck_clean(f, false);
    /* the flattened copy lives as long as its source: nothing is referenced, so all goes */
    assert_ok(kiln_cache_prune(&du, f->c, NULL, &f->err));
    kiln_cache_usage_list_dispose(&du);
    assert_int_equal(count_entries(snaps), 0);
    assert_fsck_clean(f, false);
}

/* ---- GC ---------------------------------------------------------------------------------- */

static bool
usage_has(const kiln_cache_usage_list *l, const char *kind, const char *id)
{
    for (size_t i = 0; i < l->len; i++) {
        if (strcmp(l->items[i].kind, kind) == 0 && strcmp(l->items[i].id, id) == 0)
            return true;
    }
    return false;
}

static void
snapshot_exists(fixture *f, const char *id, bool want)
{
    kiln_cache_snapshot_info info = {0};
    kiln_error *e = NULL;
    int rc = kiln_cache_snapshot_info_get(&info, f->c, id, &e);
    cleanup_free char *dir = xasprintf("%s/snapshots/%s", f->dir, id);

    kiln_error_free(&e);
    kiln_cache_snapshot_info_dispose(&info);
    assert_int_equal(rc == 0, want);
    assert_int_equal(kiln_fs_exists(dir), want);
}

static void
test_cache_gc__prune_keeps_referenced(void **state)
{
    fixture *f = *state;
    kiln_cache_prune_opts o = {0};
    kiln_cache_usage_list l = {0};
    char a[33], b[33], active[33], leased[33], imgsnap[33];
    char x[KILN_DIGEST_STRLEN + 1], y[KILN_DIGEST_STRLEN + 1];
    cleanup_free char *leasetarget = NULL;
    cleanup_free char *imgref = NULL;
    const char *refs[2] = {NULL, NULL};

    make_layer(f, a, NULL, "a", "aaaa");
    assert_ok(kiln_cache_key_put(f->c, "key-a", a, &f->err));
    make_layer(f, b, a, "b", "bb");
    assert_ok(kiln_cache_snapshot_prepare(active, f->c, b, &f->err));
    make_layer(f, leased, NULL, "l", "l");
    leasetarget = xasprintf("snapshot:%s", leased);
    assert_ok(kiln_cache_lease_add(f->c, "build-1", leasetarget, &f->err));
    assert_ok(kiln_cache_lease_add(f->c, "build-1", leasetarget, &f->err));
    make_layer(f, imgsnap, NULL, "i", "i");
    imgref = xasprintf("snapshot:%s", imgsnap);
    refs[0] = imgref;
    assert_ok(kiln_cache_blob_put(f->c, "manifest", 8, NULL, x, &f->err));
    assert_ok(kiln_cache_blob_put(f->c, "garbage", 7, NULL, y, &f->err));
    {
        cleanup_free char *desc = xasprintf("{\"digest\":\"%s\"}", x);
        assert_ok(kiln_cache_image_put(f->c, "img", desc, refs, &f->err));
    }

    o.dry_run = true;
    assert_ok(kiln_cache_prune(&l, f->c, &o, &f->err));
    assert_true(usage_has(&l, "key", "key-a"));
    assert_true(usage_has(&l, "blob", y));
    assert_false(usage_has(&l, "blob", x));
    assert_false(usage_has(&l, "snapshot", a)); /* parent of the active snapshot's chain */
    assert_int_equal(l.len, 2);
    kiln_cache_usage_list_dispose(&l);
    assert_true(kiln_cache_blob_exists(f->c, y));

    assert_ok(kiln_cache_prune(&l, f->c, NULL, &f->err));
    assert_int_equal(l.len, 2);
    assert_int_equal(l.total, 7);
    kiln_cache_usage_list_dispose(&l);
    assert_false(kiln_cache_blob_exists(f->c, y));
    assert_true(kiln_cache_blob_exists(f->c, x));
    snapshot_exists(f, a, true);
    snapshot_exists(f, b, true);
    snapshot_exists(f, leased, true);
    snapshot_exists(f, imgsnap, true);
    assert_fsck_clean(f, true);

    /* drop every root: everything goes */
    assert_ok(kiln_cache_lease_release(f->c, "build-1", &f->err));
    assert_ok(kiln_cache_image_delete(f->c, "img", &f->err));
    assert_ok(kiln_cache_snapshot_remove(f->c, active, &f->err));
    assert_ok(kiln_cache_prune(&l, f->c, NULL, &f->err));
    assert_true(usage_has(&l, "snapshot", a));
    assert_true(usage_has(&l, "snapshot", b));
    assert_true(usage_has(&l, "snapshot", leased));
    assert_true(usage_has(&l, "snapshot", imgsnap));
    assert_true(usage_has(&l, "blob", x));
    kiln_cache_usage_list_dispose(&l);
    snapshot_exists(f, a, false);
    snapshot_exists(f, leased, false);
    assert_fsck_clean(f, true);
}

static void
test_cache_gc__keep_storage_until_internal(void **state)
{
    fixture *f = *state;
    kiln_cache_prune_opts o = {0};
    kiln_cache_usage_list l = {0};
    kiln_cache_result r = {0};
    char s1[33], s2[33], s3[33];
    char big[301];

    memset(big, 'x', 300);
    big[300] = 0;
    make_layer(f, s1, NULL, "f", big + 200); /* 100 bytes */
    make_layer(f, s2, NULL, "f", big + 100); /* 200 bytes */
    make_layer(f, s3, NULL, "f", big);       /* 300 bytes */
    assert_ok(kiln_cache_key_put(f->c, "k1", s1, &f->err));
    assert_ok(kiln_cache_key_put(f->c, "k2", s2, &f->err));
    assert_ok(kiln_cache_key_put(f->c, "k3", s3, &f->err));

    o.until = 3600; /* nothing is an hour old */
    assert_ok(kiln_cache_prune(&l, f->c, &o, &f->err));
    assert_int_equal(l.len, 0);
    kiln_cache_usage_list_dispose(&l);

    o.until = 0;
    o.keep_storage = 350; /* LRU: k1 then k2 go, 300 bytes remain */
    assert_ok(kiln_cache_prune(&l, f->c, &o, &f->err));
    assert_true(usage_has(&l, "key", "k1"));
    assert_true(usage_has(&l, "key", "k2"));
    assert_false(usage_has(&l, "key", "k3"));
    assert_int_equal(l.total, 300);
    kiln_cache_usage_list_dispose(&l);
    assert_ok(kiln_cache_key_get(&r, f->c, "k3", &f->err));
    kiln_cache_result_dispose(&r);

    assert_ok(kiln_cache_snapshot_set_label(f->c, s3, "kiln.internal", "frontend", &f->err));
    o.keep_storage = 0;
    assert_ok(kiln_cache_prune(&l, f->c, &o, &f->err));
    assert_int_equal(l.len, 0);
    kiln_cache_usage_list_dispose(&l);
    o.all = true;
    assert_ok(kiln_cache_prune(&l, f->c, &o, &f->err));
    assert_true(usage_has(&l, "snapshot", s3));
    kiln_cache_usage_list_dispose(&l);
    assert_fsck_clean(f, true);
}

static void
test_cache_gc__du(void **state)
{
    fixture *f = *state;
    kiln_cache_usage_list l = {0};
    char s[33], act[33], d[KILN_DIGEST_STRLEN + 1];

    make_layer(f, s, NULL, "f", "12345");
    assert_ok(kiln_cache_snapshot_prepare(act, f->c, s, &f->err));
    assert_ok(kiln_cache_blob_put(f->c, "abc", 3, NULL, d, &f->err));
    assert_ok(kiln_cache_du(&l, f->c, &f->err));
    assert_int_equal(l.len, 3);
    assert_int_equal(l.total, 8);
    for (size_t i = 0; i < l.len; i++) {
        if (strcmp(l.items[i].id, s) == 0) {
            assert_int_equal(l.items[i].size, 5);
            assert_true(l.items[i].in_use); /* parent of an active snapshot */
        } else if (strcmp(l.items[i].id, d) == 0) {
            assert_false(l.items[i].in_use);
        }
    }
    kiln_cache_usage_list_dispose(&l);
}

/* ---- crash sweep and fsck ------------------------------------------------------------------ */

static bool
mounted_under(const char *dir)
{
    FILE *fp = fopen("/proc/self/mountinfo", "r");
    char line[4096];
    bool found = false;

    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp))
        found |= strstr(line, dir) != NULL;
    fclose(fp);
    return found;
}

static void
test_cache_sweep__removes_debris(void **state)
{
    fixture *f = *state;
    kiln_cache_result r = {0};
    kiln_cache_blob_info bi = {0};
    char keep[33], stale[33], cachemount[33], d[KILN_DIGEST_STRLEN + 1];
    cleanup_free char *leased = NULL;
    cleanup_free char *ingest = xasprintf("%s/ingest/partial", f->dir);
    cleanup_free char *orphan = xasprintf("%s/snapshots/0123456789abcdef0123456789abcdef", f->dir);
    cleanup_free char *orphan_fs = xasprintf("%s/fs", orphan);
    cleanup_free char *junk = xasprintf("%s/snapshots/junk", f->dir);
    cleanup_free char *blob = xasprintf(
            "%s/blobs/sha256/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            f->dir);
    cleanup_free char *trash = xasprintf("%s/trash/old", f->dir);
    cleanup_free char *mnt = xasprintf("%s/mounts/stale", f->dir);
    cleanup_free char *snaps = xasprintf("%s/snapshots", f->dir);
    cleanup_free char *blobs = xasprintf("%s/blobs/sha256", f->dir);
    bool can_mount = geteuid() == 0;

    make_layer(f, keep, NULL, "a", "1");
    assert_ok(kiln_cache_key_put(f->c, "k", keep, &f->err));
    assert_ok(kiln_cache_blob_put(f->c, "kept", 4, NULL, d, &f->err));
    /* a crashed build's lease and active snapshot, and a persistent (kiln.keep) active one */
    leased = xasprintf("blob:%s", d);
    assert_ok(kiln_cache_lease_add(f->c, "dead-build", leased, &f->err));
    assert_ok(kiln_cache_snapshot_prepare(stale, f->c, keep, &f->err));
    assert_ok(kiln_cache_snapshot_prepare(cachemount, f->c, NULL, &f->err));
    assert_ok(kiln_cache_snapshot_set_label(f->c, cachemount, "kiln.keep", "cache-mount", &f->err));
    write_file(ingest, "half a blob");
    assert_int_equal(mkdir(orphan, 0700), 0);
    assert_int_equal(mkdir(orphan_fs, 0700), 0);
    assert_int_equal(mkdir(junk, 0700), 0);
    write_file(blob, "unrecorded");
    assert_int_equal(mkdir(trash, 0700), 0);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (can_mount)
        assert_int_equal(mount("tmpfs", mnt, "tmpfs", 0, NULL), 0);
    assert_int_equal(fsck_problems(f, false, "has no record"), 3);

    assert_ok(open_store(f, g_mode, 0)); /* the sweep runs here */
    assert_false(kiln_fs_exists(ingest));
    assert_false(kiln_fs_exists(orphan));
    assert_false(kiln_fs_exists(junk));
    assert_false(kiln_fs_exists(blob));
    assert_false(kiln_fs_exists(trash));
    assert_false(kiln_fs_exists(mnt));
    assert_false(mounted_under(mnt));
    assert_int_equal(count_entries(snaps), 2);
    snapshot_exists(f, stale, false);
    snapshot_exists(f, cachemount, true);
    assert_ok(kiln_cache_blob_info_get(&bi, f->c, d, &f->err));
    assert_int_equal(bi.refcount, 0); /* the lease is gone */
    kiln_cache_blob_info_dispose(&bi);
    assert_int_equal(count_entries(blobs), 1);
    assert_ok(kiln_cache_key_get(&r, f->c, "k", &f->err));
    kiln_cache_result_dispose(&r);
    assert_true(kiln_cache_blob_exists(f->c, d));
    assert_fsck_clean(f, true);
}

static void
test_cache_fsck__finds_damage(void **state)
{
    fixture *f = *state;
    char s[33], d[KILN_DIGEST_STRLEN + 1];
    cleanup_free char *fs = NULL;
    cleanup_free char *bp = NULL;
    kiln_error *tmp = NULL;

    make_layer(f, s, NULL, "a", "1");
    assert_ok(kiln_cache_blob_put(f->c, "good", 4, NULL, d, &f->err));
    assert_fsck_clean(f, true);
    bp = xasprintf("%s/blobs/sha256/%s", f->dir, d + 7);
    write_file(bp, "evil");
    assert_int_equal(fsck_problems(f, false, "hashes to"), 0);
    assert_int_equal(fsck_problems(f, true, "hashes to"), 1);
    write_file(bp, "longer");
    assert_int_equal(fsck_problems(f, false, "bytes, record says"), 1);
    fs = xasprintf("%s/snapshots/%s/fs", f->dir, s);
    assert_int_equal(kiln_fs_rm_rf(fs, &tmp), 0);
    assert_int_equal(fsck_problems(f, false, "is missing"), 1);
}

/* ---- main -------------------------------------------------------------------------------- */

static bool
overlay_available(void)
{
    char tmpl[] = "/tmp/kiln-cache-probe-XXXXXX";
    kiln_cache *c = NULL;
    kiln_error *e = NULL;
    bool ok = false;

    if (mkdtemp(tmpl) == NULL)
        return false;
    if (kiln_cache_open(&c, tmpl, NULL, &e) == 0)
        ok = kiln_cache_uses_overlay(c);
    kiln_cache_free(c);
    kiln_error_free(&e);
    kiln_fs_rm_rf(tmpl, &e);
    kiln_error_free(&e);
    return ok;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
    const struct CMUnitTest common[] = {
            T(test_cache_store__reopen_keeps_data),
            T(test_cache_store__newer_schema_unsupported),
            T(test_cache_store__snapshotter_is_recorded),
            T(test_cache_store__corrupt_records_are_errors),
            T(test_cache_store__default_root),
            T(test_cache_store__bad_opts),
            T(test_cache_keys__put_get_delete),
            T(test_cache_tables__images_history_checksums),
            T(test_cache_tables__checksum_batch),
            T(test_cache_tables__refs_validate_targets),
            T(test_cache_blob__write_read_verify),
            T(test_cache_blob__digest_mismatch_stores_nothing),
            T(test_cache_blob__concurrent_writers),
            T(test_cache_store__several_processes),
            T(test_cache_snapshot__lifecycle),
            T(test_cache_snapshot__blob_refcount),
            T(test_cache_snapshot__diff_naive),
            T(test_cache_gc__prune_keeps_referenced),
            T(test_cache_gc__keep_storage_until_internal),
            T(test_cache_gc__du),
            T(test_cache_gc__leased_writes_race_prune),
            T(test_cache_sweep__removes_debris),
            T(test_cache_fsck__finds_damage),
    };
    const struct CMUnitTest overlay[] = {
            T(test_cache_overlay__whiteouts_and_diff),
            T(test_cache_overlay__deep_chain_is_flattened),
    };
    const char *must = getenv("KILN_TEST_MUST_WORK");
    int failed;

    /* Everything that does not need overlay runs with the naive snapshotter too. */
    g_mode = KILN_CACHE_SNAPSHOTTER_NAIVE;
    failed = cmocka_run_group_tests_name("cache_naive", common, NULL, NULL);
    if (!overlay_available()) {
        fprintf(stderr, "skip: overlay mounts are not available here (need root and a "
                        "filesystem overlay can use as upper dir)\n");
        if (failed)
            return 1;
        return must && strcmp(must, "1") == 0 ? 1 : 77;
    }
    g_mode = KILN_CACHE_SNAPSHOTTER_OVERLAY;
    failed += cmocka_run_group_tests_name("cache_overlay", common, NULL, NULL);
    failed += cmocka_run_group_tests_name("cache_overlay_only", overlay, NULL, NULL);
    return failed ? 1 : 0;
}
