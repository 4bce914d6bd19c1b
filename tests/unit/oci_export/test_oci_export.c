/*
 * test_oci_export.c: unit tests of layer creation and the image exporters (oci/export.h). Each
 * test builds small trees in a fresh temporary directory, writes layers or exports, and reads the
 * results back with libarchive (an independent tar/gzip/zstd reader) and jansson.
 * Whiteout and opaque-directory tests need root (mknod, trusted.* xattrs) and skip otherwise.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <cmocka.h>
#include <zlib.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/vec.h"
#include "oci/export.h"
#include "oci/export_internal.h"
#include "oci/oci.h"

#define EPOCH 1700000000

/* ---- fixtures and helpers ------------------------------------------------------------------ */

typedef struct tctx {
    char *tmp; /* fresh per test */
} tctx;

static int
setup(void **state)
{
    tctx *t = xnew(tctx);
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_mkdtemp(&t->tmp, "/tmp", "kiln-export-test.", &err), 0);
    *state = t;
    return 0;
}

static int
teardown(void **state)
{
    tctx *t = *state;
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_rm_rf(t->tmp, &err), 0);
    free(t->tmp);
    free(t);
    return 0;
}

static char *
tpath(const tctx *t, const char *rel)
{
    return xasprintf("%s/%s", t->tmp, rel);
}

static void
mkdir_in(const tctx *t, const char *rel, mode_t mode)
{
    char *p = tpath(t, rel);

    assert_int_equal(mkdir(p, mode), 0);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static void
write_in(const tctx *t, const char *rel, const char *content, mode_t mode)
{
    char *p = tpath(t, rel);
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_write_atomic(p, content, strlen(content), mode, &err), 0);
    free(p);
}

static void
set_mtime(const tctx *t, const char *rel, time_t sec)
{
    char *p = tpath(t, rel);
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};

    assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
    free(p);
}

/* One tar entry as read back. */
typedef struct rentry {
    char *path;
    mode_t type;
    mode_t perm;
    int64_t size, uid, gid, mtime;
    char *hardlink, *symlink, *content, *xattrs; /* xattrs: "name=value;" sorted by writer */
    unsigned rmajor, rminor;
} rentry;

static void
rentry_free(void *p)
{
    rentry *e = p;

    free(e->path);
    free(e->hardlink);
    free(e->symlink);
    free(e->content);
    free(e->xattrs);
    free(e);
}

static rentry *
read_one(struct archive *a, struct archive_entry *ae)
{
    rentry *e = xnew(rentry);
    kiln_buf xb = KILN_BUF_INIT;
    const char *name;
    const void *val;
    size_t vlen;
    la_ssize_t n;

    e->path = xstrdup(archive_entry_pathname(ae));
    e->type = archive_entry_filetype(ae);
    e->perm = archive_entry_perm(ae);
    e->size = archive_entry_size(ae);
    e->uid = archive_entry_uid(ae);
    e->gid = archive_entry_gid(ae);
    e->mtime = archive_entry_mtime(ae);
    e->hardlink = xstrdup(archive_entry_hardlink(ae));
    e->symlink = xstrdup(archive_entry_symlink(ae));
    e->rmajor = archive_entry_rdevmajor(ae);
    e->rminor = archive_entry_rdevminor(ae);
    archive_entry_xattr_reset(ae);
    while (archive_entry_xattr_next(ae, &name, &val, &vlen) == ARCHIVE_OK)
        kiln_buf_printf(&xb, NULL, "%s=%.*s;", name, (int)vlen, (const char *)val);
    e->xattrs = kiln_buf_detach(&xb);
    e->content = xzalloc((size_t)e->size + 1);
    if (e->size > 0) {
        n = archive_read_data(a, e->content, (size_t)e->size);
        assert_int_equal(n, e->size);
    }
    return e;
}

/* Read a (possibly compressed) tar file into a vector of rentry. */
static void
read_tar(kiln_vec *out, const char *file)
{
    struct archive *a = archive_read_new();
    struct archive_entry *ae;
    int r;

    /* Read names under C.UTF-8, as the writer does, so non-ASCII names need no conversion. */
    locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    locale_t old = uselocale(utf8);

    kiln_vec_init(out);
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, file, 10240), ARCHIVE_OK);
    while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK)
        kiln_vec_push(out, read_one(a, ae));
    uselocale(old);
    freelocale(utf8);
    assert_int_equal(r, ARCHIVE_EOF);
    archive_read_free(a);
}

static rentry *
find_entry(const kiln_vec *v, const char *path)
{
    rentry *e;

    kiln_vec_foreach(v, i, e) {
        if (strcmp(e->path, path) == 0)
            return e;
    }
    return NULL;
}

/* The paths of the entries, joined with ",". Owned by caller. */
static char *
paths_of(const kiln_vec *v)
{
    kiln_buf b = KILN_BUF_INIT;
    rentry *e;

    kiln_vec_foreach(v, i, e) {
        kiln_buf_printf(&b, NULL, "%s%s", i ? "," : "", e->path);
    }
    return kiln_buf_detach(&b);
}

static void
sha256_file(char out[KILN_DIGEST_STRLEN + 1], const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    kiln_sha256 d;
    kiln_error *err = NULL;

    assert_true(fd >= 0);
    assert_int_equal(kiln_sha256_fd(&d, fd, &err), 0);
    close(fd);
    kiln_digest_format(out, &d);
}

/* sha256 of the decompressed content of `file` (libarchive's raw format + all filters). */
static void
sha256_decompressed(char out[KILN_DIGEST_STRLEN + 1], const char *file)
{
    struct archive *a = archive_read_new();
    struct archive_entry *ae;
    kiln_sha256_ctx *c;
    kiln_sha256 d;
    char buf[8192];
    la_ssize_t n;

    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    assert_int_equal(archive_read_open_filename(a, file, 10240), ARCHIVE_OK);
    assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
    kiln_sha256_ctx_new(&c);
    while ((n = archive_read_data(a, buf, sizeof(buf))) > 0)
        kiln_sha256_ctx_update(c, buf, (size_t)n);
    assert_int_equal(n, 0);
    kiln_sha256_ctx_final(c, &d);
    kiln_sha256_ctx_free(c);
    archive_read_free(a);
    kiln_digest_format(out, &d);
}

/* Write the layer of `dir` into `file`; returns the kiln code. */
static int
write_layer(kiln_layer_result *r, const char *dir, const char *file, const kiln_layer_opts *o,
            kiln_error **err)
{
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ret;

    assert_true(fd >= 0);
    ret = kiln_layer_write(r, dir, fd, o, err);
    close(fd);
    return ret;
}

static char *
slurp(const char *file, size_t *len)
{
    char *data = NULL;
    kiln_error *err = NULL;

    assert_int_equal(kiln_fs_read_file(&data, len, file, 0, &err), 0);
    return data;
}

/* A small tree with every entry kind a layer holds, under <tmp>/src. */
static void
make_tree(const tctx *t)
{
    char *a = tpath(t, "src/a/file"), *b = tpath(t, "src/a/link2");
    char *fifo = tpath(t, "src/fifo"), *sym = tpath(t, "src/sym");
    char long_name[200];

    mkdir_in(t, "src", 0755);
    mkdir_in(t, "src/b", 0700);
    mkdir_in(t, "src/a", 0755);
    write_in(t, "src/a/file", "hello\n", 0640);
    write_in(t, "src/a.txt", "dot sorts before slash\n", 0644);
    write_in(t, "src/b/x", "x", 0600);
    assert_int_equal(link(a, b), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(symlink("a/file", sym), 0);
    assert_int_equal(lsetxattr(a, "user.kiln", "v1", 2, 0), 0);
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = 0;
    {
        char *rel = xasprintf("src/b/%s", long_name);

        write_in(t, rel, "long", 0644);
        free(rel);
    }
    free(a);
    free(b);
    free(fifo);
    free(sym);
}

/* ---- layer writer ---------------------------------------------------------------------------- */

static void
test_oci_export_layer__entries_sorted_with_types(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *out = tpath(t, "layer.tar");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r;
    kiln_error *err = NULL;
    kiln_vec v;
    char *paths;
    rentry *e;

    make_tree(t);
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    read_tar(&v, out);
    paths = paths_of(&v);
    /* Byte order per directory, parents first: "a" < "a.txt" as names, so a/ and its children
     * come before a.txt; the long name starts with 'n' < 'x'. */
    assert_true(kiln_str_has_prefix(paths, "a/,a/file,a/link2,a.txt,b/,b/nnnn"));
    assert_true(kiln_str_has_suffix(paths, ",b/x,fifo,sym"));
    assert_int_equal(v.len, 9);
    e = find_entry(&v, "a/file");
    assert_non_null(e);
    assert_int_equal(e->type, AE_IFREG);
    assert_int_equal(e->perm, 0640);
    assert_string_equal(e->content, "hello\n");
    assert_string_equal(e->xattrs, "user.kiln=v1;");
    assert_int_equal(e->uid, getuid());
    e = find_entry(&v, "a/link2");
    assert_non_null(e->hardlink);
    assert_string_equal(e->hardlink, "a/file");
    assert_int_equal(e->size, 0);
    e = find_entry(&v, "sym");
    assert_int_equal(e->type, AE_IFLNK);
    assert_string_equal(e->symlink, "a/file");
    assert_int_equal(find_entry(&v, "fifo")->type, AE_IFIFO);
    assert_int_equal(find_entry(&v, "b/")->perm, 0700);
    assert_int_equal(r.tar_size % 512, 0);
    assert_string_equal(r.media_type, KILN_OCI_MT_LAYER_TAR);
    kiln_vec_dispose(&v, rentry_free);
    free(paths);
    free(src);
    free(out);
}

static bool
have_root(void)
{
    return geteuid() == 0;
}

static void
test_oci_export_layer__whiteouts_and_opaque(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "up"), *out = tpath(t, "layer.tar");
    char *wh = tpath(t, "up/gone"), *wh2 = tpath(t, "up/d/gone2"), *opq = tpath(t, "up/o");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r;
    kiln_error *err = NULL;
    kiln_vec v;
    char *paths;

    if (!have_root())
        skip();
    mkdir_in(t, "up", 0755);
    mkdir_in(t, "up/d", 0755);
    mkdir_in(t, "up/o", 0755);
    write_in(t, "up/o/new", "n", 0644);
    assert_int_equal(mknod(wh, S_IFCHR | 0, makedev(0, 0)), 0);
    assert_int_equal(mknod(wh2, S_IFCHR | 0, makedev(0, 0)), 0);
    assert_int_equal(lsetxattr(opq, "trusted.overlay.opaque", "y", 1, 0), 0);
    o.mode = KILN_LAYER_OVERLAY_UPPER;
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    read_tar(&v, out);
    paths = paths_of(&v);
    assert_string_equal(paths, "d/,d/.wh.gone2,.wh.gone,o/,o/.wh..wh..opq,o/new");
    assert_int_equal(find_entry(&v, ".wh.gone")->type, AE_IFREG);
    assert_int_equal(find_entry(&v, ".wh.gone")->size, 0);
    /* overlay's private xattr never reaches the layer */
    assert_string_equal(find_entry(&v, "o/")->xattrs, "");
    kiln_vec_dispose(&v, rentry_free);
    free(paths);

    /* The same tree read as a full tree keeps the devices as devices and no markers. */
    o.mode = KILN_LAYER_FULL;
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    read_tar(&v, out);
    assert_int_equal(find_entry(&v, "gone")->type, AE_IFCHR);
    assert_null(find_entry(&v, "o/.wh..wh..opq"));
    kiln_vec_dispose(&v, rentry_free);
    free(src);
    free(out);
    free(wh);
    free(wh2);
    free(opq);
}

static void
test_oci_export_layer__rejects_bad_input(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *out = tpath(t, "layer.tar"), *missing = tpath(t, "nope");
    char *redir = tpath(t, "src/r");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r;
    kiln_error *err = NULL;

    mkdir_in(t, "src", 0755);
    write_in(t, "src/.wh.sneaky", "", 0644);
    assert_int_equal(write_layer(&r, src, out, &o, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, ".wh.sneaky"));
    kiln_error_free(&err);

    assert_int_equal(write_layer(&r, missing, out, &o, &err), KILN_ENOTFOUND);
    kiln_error_free(&err);

    o.version = 99;
    assert_int_equal(write_layer(&r, src, out, &o, &err), KILN_EINVAL);
    kiln_error_free(&err);
    o.version = KILN_LAYER_OPTS_VERSION;
    o.compression = KILN_OCI_COMP_GZIP;
    o.level = 42;
    assert_int_equal(write_layer(&r, src, out, &o, &err), KILN_EINVAL);
    kiln_error_free(&err);
    o.level = 0;
    o.time = KILN_LAYER_TIME_SET;
    o.epoch = -5;
    assert_int_equal(write_layer(&r, src, out, &o, &err), KILN_EINVAL);
    kiln_error_free(&err);

    if (have_root()) {
        char *wh = tpath(t, "src/.wh.sneaky");

        unlink(wh);
        free(wh);
        mkdir_in(t, "src/r", 0755);
        assert_int_equal(lsetxattr(redir, "trusted.overlay.redirect", "/x", 2, 0), 0);
        o = (kiln_layer_opts)KILN_LAYER_OPTS_INIT;
        o.mode = KILN_LAYER_OVERLAY_UPPER;
        assert_int_equal(write_layer(&r, src, out, &o, &err), KILN_EUNSUPPORTED);
        kiln_error_free(&err);
    }
    free(src);
    free(out);
    free(missing);
    free(redir);
}

static void
check_digests(const tctx *t, kiln_oci_compression c, const char *media_type)
{
    char *src = tpath(t, "src"), *out = tpath(t, "layer.blob");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r;
    kiln_error *err = NULL;
    char want[KILN_DIGEST_STRLEN + 1];
    struct stat st;
    kiln_vec v;

    o.compression = c;
    o.level = c == KILN_OCI_COMP_ZSTD ? 9 : 0;
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    assert_string_equal(r.media_type, media_type);
    sha256_file(want, out);
    assert_string_equal(r.digest, want);
    sha256_decompressed(want, out);
    assert_string_equal(r.diff_id, want);
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(r.size, st.st_size);
    if (c == KILN_OCI_COMP_NONE)
        assert_string_equal(r.diff_id, r.digest);
    else
        assert_string_not_equal(r.diff_id, r.digest);
    read_tar(&v, out);
    assert_int_equal(v.len, 9);
    assert_string_equal(find_entry(&v, "b/x")->content, "x");
    kiln_vec_dispose(&v, rentry_free);
    free(src);
    free(out);
}

static void
test_oci_export_layer__digests_and_round_trip(void **state)
{
    tctx *t = *state;
    const unsigned char gz_magic[] = {0x1f, 0x8b};
    char *out = tpath(t, "layer.blob");
    size_t len;
    char *data;

    make_tree(t);
    check_digests(t, KILN_OCI_COMP_NONE, KILN_OCI_MT_LAYER_TAR);
    check_digests(t, KILN_OCI_COMP_ZSTD, KILN_OCI_MT_LAYER_ZSTD);
    check_digests(t, KILN_OCI_COMP_GZIP, KILN_OCI_MT_LAYER_GZIP);
    /* gzip header: magic, deflate, no flags (no name), mtime 0 */
    data = slurp(out, &len);
    assert_true(len > 10);
    assert_memory_equal(data, gz_magic, 2);
    assert_int_equal(data[2], 8);
    assert_int_equal(data[3], 0);
    assert_int_equal(data[4] | data[5] | data[6] | data[7], 0);
    free(data);
    free(out);
}

static void
test_oci_export_layer__reproducible_with_epoch(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *o1 = tpath(t, "l1"), *o2 = tpath(t, "l2");
    kiln_oci_compression comps[] = {KILN_OCI_COMP_NONE, KILN_OCI_COMP_GZIP, KILN_OCI_COMP_ZSTD};
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r1, r2;
    kiln_error *err = NULL;
    size_t l1, l2;
    char *d1, *d2;

    make_tree(t);
    o.time = KILN_LAYER_TIME_SET;
    o.epoch = EPOCH;
    for (size_t i = 0; i < 3; i++) {
        o.compression = comps[i];
        set_mtime(t, "src/a/file", 1000);
        assert_int_equal(write_layer(&r1, src, o1, &o, &err), 0);
        set_mtime(t, "src/a/file", 2000);
        set_mtime(t, "src/b", 3000);
        assert_int_equal(write_layer(&r2, src, o2, &o, &err), 0);
        d1 = slurp(o1, &l1);
        d2 = slurp(o2, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(d1, d2, l1);
        assert_string_equal(r1.digest, r2.digest);
        assert_string_equal(r1.diff_id, r2.diff_id);
        free(d1);
        free(d2);
    }
    free(src);
    free(o1);
    free(o2);
}

static void
test_oci_export_layer__timestamps(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *out = tpath(t, "l");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r;
    kiln_error *err = NULL;
    kiln_vec v;

    mkdir_in(t, "src", 0755);
    write_in(t, "src/old", "o", 0644);
    write_in(t, "src/new", "n", 0644);
    set_mtime(t, "src/old", EPOCH - 100);
    set_mtime(t, "src/new", EPOCH + 100);
    o.time = KILN_LAYER_TIME_CLAMP;
    o.epoch = EPOCH;
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    read_tar(&v, out);
    assert_int_equal(find_entry(&v, "old")->mtime, EPOCH - 100);
    assert_int_equal(find_entry(&v, "new")->mtime, EPOCH);
    kiln_vec_dispose(&v, rentry_free);
    o.time = KILN_LAYER_TIME_KEEP;
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    read_tar(&v, out);
    assert_int_equal(find_entry(&v, "new")->mtime, EPOCH + 100);
    kiln_vec_dispose(&v, rentry_free);
    free(src);
    free(out);
}

static void
test_oci_export_layer__non_ascii_names(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *out = tpath(t, "l");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r;
    kiln_error *err = NULL;
    kiln_vec v;

    mkdir_in(t, "src", 0755);
    write_in(t, "src/caf\xc3\xa9", "utf8", 0644);
    write_in(t, "src/raw\xff", "latin1", 0644);
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    read_tar(&v, out);
    assert_int_equal(v.len, 2);
    /* names are kept byte for byte, valid UTF-8 or not */
    assert_string_equal(find_entry(&v, "caf\xc3\xa9")->content, "utf8");
    assert_string_equal(find_entry(&v, "raw\xff")->content, "latin1");
    kiln_vec_dispose(&v, rentry_free);
    free(src);
    free(out);
}

/* The tar stream goes through a pipe: nothing may seek. */
static void
test_oci_export_layer__to_pipe(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *file = tpath(t, "l");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r, rf;
    kiln_error *err = NULL;
    kiln_buf got = KILN_BUF_INIT;
    char want[KILN_DIGEST_STRLEN + 1];
    kiln_sha256 d;
    int p[2];
    pid_t pid;

    make_tree(t);
    o.compression = KILN_OCI_COMP_ZSTD;
    o.time = KILN_LAYER_TIME_SET;
    o.epoch = EPOCH;
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        _exit(kiln_layer_write(&r, src, p[1], &o, NULL) == 0 ? 0 : 1);
    }
    close(p[1]);
    assert_int_equal(kiln_fd_read_all(p[0], &got, 0, &err), 0);
    close(p[0]);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_int_equal(write_layer(&rf, src, file, &o, &err), 0);
    kiln_sha256_buf(&d, got.ptr, got.len);
    kiln_digest_format(want, &d);
    assert_string_equal(want, rf.digest);
    kiln_buf_dispose(&got);
    free(src);
    free(file);
}

/* Parallel gzip: same bytes for every thread count, a valid gzip stream of the same tar. */
static void
test_oci_export_layer__parallel_gzip(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *out = tpath(t, "l"), *big = tpath(t, "src/big");
    unsigned threads[] = {1, 2, 5};
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result single, r;
    kiln_error *err = NULL;
    char want[KILN_DIGEST_STRLEN + 1], first[KILN_DIGEST_STRLEN + 1];
    size_t n = (7u << 20) / 2 + 12345; /* spans several 1 MiB blocks, last one partial */
    char *data = xmalloc(n);
    uint32_t x = 1;
    kiln_vec v;

    make_tree(t);
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (char)('a' + ((x >> 16) % 7)); /* compressible, not trivial */
    }
    assert_int_equal(kiln_fs_write_atomic(big, data, n, 0644, &err), 0);
    o.compression = KILN_OCI_COMP_GZIP;
    o.time = KILN_LAYER_TIME_SET;
    o.epoch = EPOCH;
    assert_int_equal(write_layer(&single, src, out, &o, &err), 0);
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
        o.gzip_threads = threads[i];
        assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
        assert_string_equal(r.diff_id, single.diff_id); /* same tar */
        sha256_file(want, out);
        assert_string_equal(r.digest, want);
        sha256_decompressed(want, out);
        assert_string_equal(want, r.diff_id);
        if (i == 0)
            kiln_strlcpy(first, r.digest, sizeof(first));
        assert_string_equal(r.digest, first);
    }
    read_tar(&v, out);
    assert_int_equal(find_entry(&v, "big")->size, (int64_t)n);
    assert_memory_equal(find_entry(&v, "big")->content, data, n);
    kiln_vec_dispose(&v, rentry_free);
    /* an empty tree still makes a valid stream */
    mkdir_in(t, "empty", 0755);
    free(src);
    src = tpath(t, "empty");
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    sha256_decompressed(want, out);
    assert_string_equal(want, r.diff_id);
    o.gzip_threads = 100000;
    assert_int_equal(write_layer(&r, src, out, &o, &err), KILN_EINVAL);
    kiln_error_free(&err);
    free(data);
    free(src);
    free(out);
    free(big);
}

/* Deterministic pseudo-random bytes (xorshift32): incompressible to deflate. */
static void
fill_random(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)(x >> 24);
    }
}

static int
collect_emit(void *payload, const void *data, size_t len, kiln_error **err)
{
    return kiln_buf_put(payload, data, len, err);
}

/* Gzip `in` with the parallel compressor on `threads` threads into *out. */
static void
pgzip_all(kiln_buf *out, const unsigned char *in, size_t len, unsigned threads, int level)
{
    kiln_oci__pgzip *z = NULL;
    kiln_error *err = NULL;

    kiln_buf_init(out, 0);
    assert_int_equal(kiln_oci__pgzip_new(&z, threads, level, collect_emit, out, &err), 0);
    /* odd-sized writes, so block boundaries fall inside them */
    for (size_t off = 0; off < len; off += 300007) {
        size_t n = len - off < 300007 ? len - off : 300007;
        assert_int_equal(kiln_oci__pgzip_write(z, in + off, n, &err), 0);
    }
    assert_int_equal(kiln_oci__pgzip_finish(z, &err), 0);
    kiln_oci__pgzip_free(z);
}

/* zlib's own gzip decoder (CRC-32 and ISIZE checked) must give back exactly `want`. */
static void
assert_gunzips_to(const kiln_buf *gz, const unsigned char *want, size_t len)
{
    unsigned char *got = xmalloc(len + 1);
    z_stream s = {0};

    assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
    s.next_in = (Bytef *)gz->ptr;
    s.avail_in = (uInt)gz->len;
    s.next_out = got;
    s.avail_out = (uInt)len + 1;
    assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
    assert_int_equal(s.total_out, len);
    assert_int_equal(s.avail_in, 0); /* nothing after the trailer */
    assert_memory_equal(got, want, len);
    inflateEnd(&s);
    free(got);
}

/* Incompressible blocks are stored, compressible ones deflated, in one valid gzip stream whose
 * bytes depend only on the input. */
static void
test_oci_export_pgzip__incompressible_blocks(void **state)
{
    /* random 2 MiB, text 1 MiB, random 300 KiB + 1: the stream ends on a stored block */
    size_t rnd1 = 2u << 20, text = 1u << 20, rnd2 = (300u << 10) + 1;
    size_t len = rnd1 + text + rnd2;
    unsigned char *in = xmalloc(len);
    kiln_buf a, b, c, d;
    uint32_t x = 7;

    (void)state;
    fill_random(in, rnd1, 12345);
    for (size_t i = 0; i < text; i++) {
        x = x * 1103515245u + 12345u;
        in[rnd1 + i] = (unsigned char)("the quick brown fox "[(x >> 16) % 20]);
    }
    fill_random(in + rnd1 + text, rnd2, 999);
    pgzip_all(&a, in, len, 1, 6);
    pgzip_all(&b, in, len, 3, 6);
    pgzip_all(&c, in, len, 3, 6);
    assert_gunzips_to(&a, in, len);
    assert_int_equal(a.len, b.len); /* same bytes for every thread count and run */
    assert_memory_equal(a.ptr, b.ptr, a.len);
    assert_int_equal(b.len, c.len);
    assert_memory_equal(b.ptr, c.ptr, b.len);
    /* random parts stored (5 bytes per 64 KiB added), the text part deflated (~4 bits a byte) */
    assert_true(a.len < rnd1 + rnd2 + text * 3 / 5);
    assert_true(a.len > rnd1 + rnd2);
    /* the stored random data appears verbatim */
    assert_non_null(memmem(a.ptr, a.len, in + 100000, 4096));
    kiln_buf_dispose(&a);
    kiln_buf_dispose(&b);
    kiln_buf_dispose(&c);

    /* all random, a whole number of blocks: the last (empty) block ends the stream */
    pgzip_all(&d, in, rnd1, 2, 1);
    assert_gunzips_to(&d, in, rnd1);
    assert_true(d.len < rnd1 + rnd1 / 1000 + 64);
    kiln_buf_dispose(&d);
    /* short random input (under the probe's minimum) goes through deflate */
    pgzip_all(&d, in, 1000, 2, 9);
    assert_gunzips_to(&d, in, 1000);
    kiln_buf_dispose(&d);
    free(in);
}

typedef struct emit_sink {
    kiln_buf buf;
    size_t fail_after; /* fail once this many bytes arrived (0 = never) */
} emit_sink;

static int
sink_emit_cb(void *payload, const void *data, size_t len, kiln_error **err)
{
    emit_sink *e = payload;

    if (e->fail_after && e->buf.len + len > e->fail_after)
        return kiln_error_set(err, KILN_ESYS, "disk full (test)");
    return kiln_buf_put(&e->buf, data, len, err);
}

/* kiln_layer_write_emit: the same blob as kiln_layer_write, no digest, failures passed on. */
static void
test_oci_export_layer__emit(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *out = tpath(t, "l"), *big = tpath(t, "src/rnd");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_layer_result r, re;
    kiln_error *err = NULL;
    emit_sink e = {.fail_after = 0};
    size_t n = (3u << 20) + 777, flen;
    unsigned char *data = xmalloc(n);
    char *file;
    kiln_vec v;

    make_tree(t);
    fill_random(data, n, 4242);
    assert_int_equal(kiln_fs_write_atomic(big, data, n, 0644, &err), 0);
    o.compression = KILN_OCI_COMP_GZIP;
    o.gzip_threads = 2;
    o.time = KILN_LAYER_TIME_SET;
    o.epoch = EPOCH;
    assert_int_equal(write_layer(&r, src, out, &o, &err), 0);
    kiln_buf_init(&e.buf, 0);
    assert_int_equal(kiln_layer_write_emit(&re, src, sink_emit_cb, &e, &o, &err), 0);
    file = slurp(out, &flen);
    assert_int_equal(e.buf.len, flen);
    assert_memory_equal(e.buf.ptr, file, flen);
    assert_string_equal(re.digest, "");
    assert_string_equal(re.diff_id, r.diff_id);
    assert_int_equal(re.size, r.size);
    assert_int_equal(re.tar_size, r.tar_size);
    assert_string_equal(re.media_type, KILN_OCI_MT_LAYER_GZIP);
    /* the random file is mostly stored, and comes back intact */
    assert_true(r.size < r.tar_size + r.tar_size / 100);
    read_tar(&v, out);
    assert_int_equal(find_entry(&v, "rnd")->size, (int64_t)n);
    assert_memory_equal(find_entry(&v, "rnd")->content, data, n);
    kiln_vec_dispose(&v, rentry_free);
    free(file);
    kiln_buf_dispose(&e.buf);

    /* a failing receiver stops the write with its error */
    e.fail_after = 1u << 20;
    assert_int_equal(kiln_layer_write_emit(&re, src, sink_emit_cb, &e, &o, &err), KILN_ESYS);
    assert_non_null(strstr(err->msg, "disk full (test)"));
    kiln_error_free(&err);
    kiln_buf_dispose(&e.buf);
    free(data);
    free(src);
    free(out);
    free(big);
}

/* ---- image assembly and exporters ------------------------------------------------------------ */

/* An image of one gzip layer of <tmp>/src, blob at <tmp>/blob. */
static void
make_image(const tctx *t, kiln_export_image *img, kiln_export_media media)
{
    char *src = tpath(t, "src"), *blob = tpath(t, "blob");
    kiln_layer_opts o = KILN_LAYER_OPTS_INIT;
    kiln_oci_history h = {.created = "2023-11-14T22:13:20Z", .created_by = "COPY . /"};
    kiln_oci_descriptor d;
    kiln_layer_result r;
    kiln_error *err = NULL;

    make_tree(t);
    o.compression = KILN_OCI_COMP_GZIP;
    o.time = KILN_LAYER_TIME_SET;
    o.epoch = EPOCH;
    assert_int_equal(write_layer(&r, src, blob, &o, &err), 0);
    kiln_export_image_init(img);
    img->config.platform.os = xstrdup("linux");
    img->config.platform.architecture = xstrdup("amd64");
    img->config.created = xstrdup("2023-11-14T22:13:20Z");
    kiln_layer_descriptor(&d, &r);
    assert_int_equal(kiln_export_image_add_layer(img, blob, &d, r.diff_id, &h, &err), 0);
    kiln_oci_descriptor_dispose(&d);
    assert_int_equal(kiln_export_image_finalize(img, media, &err), 0);
    free(src);
    free(blob);
}

static void
test_oci_export_image__finalize(void **state)
{
    tctx *t = *state;
    kiln_export_image img;
    kiln_oci_config cfg;
    kiln_oci_manifest m;
    kiln_error *err = NULL;
    kiln_sha256 d;
    char hex[KILN_DIGEST_STRLEN + 1];

    make_image(t, &img, KILN_EXPORT_MEDIA_DOCKER);
    assert_int_equal(kiln_oci_config_parse(&cfg, img.config_json, img.config_len, &err), 0);
    assert_int_equal(cfg.diff_ids.len, 1);
    assert_string_equal(kiln_vec_get(&cfg.diff_ids, 0), img.layers[0].diff_id);
    assert_int_equal(cfg.n_history, 1);
    assert_string_equal(cfg.history[0].created_by, "COPY . /");
    kiln_oci_config_dispose(&cfg);
    assert_int_equal(kiln_oci_manifest_parse(&m, img.manifest_json, img.manifest_len, NULL, &err),
                     0);
    assert_string_equal(m.media_type, KILN_DOCKER_MT_MANIFEST);
    assert_string_equal(m.config.media_type, KILN_DOCKER_MT_CONFIG);
    assert_string_equal(m.config.digest, img.config_digest);
    assert_string_equal(m.layers[0].media_type, KILN_DOCKER_MT_LAYER_GZIP);
    assert_string_equal(m.layers[0].digest, img.layers[0].desc.digest);
    kiln_oci_manifest_dispose(&m);
    kiln_sha256_buf(&d, img.manifest_json, img.manifest_len);
    kiln_digest_format(hex, &d);
    assert_string_equal(hex, img.manifest_digest);

    /* OCI types on request; a history entry without a layer is an error. */
    assert_int_equal(kiln_export_image_finalize(&img, KILN_EXPORT_MEDIA_OCI, &err), 0);
    assert_string_equal(img.manifest.layers[0].media_type, KILN_OCI_MT_LAYER_GZIP);
    img.config.history = xreallocarray(img.config.history, 2, sizeof(kiln_oci_history));
    memset(&img.config.history[1], 0, sizeof(kiln_oci_history));
    img.config.n_history = 2;
    assert_int_equal(kiln_export_image_finalize(&img, KILN_EXPORT_MEDIA_OCI, &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_null(img.manifest_json);
    kiln_export_image_dispose(&img);
}

static void
test_oci_export_image__add_layer_rejects(void **state)
{
    kiln_export_image img;
    kiln_oci_descriptor d = {.media_type = "text/plain", .digest = "sha256:nothex", .size = 1};
    kiln_error *err = NULL;

    (void)state;
    kiln_export_image_init(&img);
    assert_int_equal(kiln_export_image_add_layer(&img, "/x", &d, "sha256:00", NULL, &err),
                     KILN_EINVAL);
    kiln_error_free(&err);
    d.digest = "sha256:"
               "0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(kiln_export_image_add_layer(&img, "/x", &d, d.digest, NULL, &err),
                     KILN_EUNSUPPORTED);
    kiln_error_free(&err);
    assert_int_equal(kiln_export_image_finalize(&img, KILN_EXPORT_MEDIA_OCI, &err), KILN_EINVAL);
    kiln_error_free(&err);
    kiln_export_image_dispose(&img);
}

static json_t *
parse_entry_json(const kiln_vec *v, const char *path)
{
    rentry *e = find_entry(v, path);
    json_t *j = NULL;
    kiln_error *err = NULL;

    assert_non_null(e);
    assert_int_equal(kiln_json_parse(&j, e->content, (size_t)e->size, 0, path, &err), 0);
    return j;
}

/* The layer blob goes into the tar byte for byte, to a file or a pipe alike (it is copied around
 * libarchive, see export_stream.c). */
static void
test_oci_export_oci_tar__blob_bytes(void **state)
{
    tctx *t = *state;
    char *out = tpath(t, "oci.tar"), *piped = tpath(t, "piped.tar");
    kiln_export_image img;
    kiln_error *err = NULL;
    char *blob_name, *blob, *a, *b;
    size_t blob_len, la, lb;
    int fd, p[2];
    pid_t pid;
    kiln_vec v;

    make_image(t, &img, KILN_EXPORT_MEDIA_OCI);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_oci_tar(&img, NULL, 0, fd, &err), 0);
    close(fd);
    read_tar(&v, out);
    blob_name = xasprintf("blobs/sha256/%s", img.layers[0].desc.digest + 7);
    blob = slurp(img.layers[0].path, &blob_len);
    assert_int_equal(find_entry(&v, blob_name)->size, (int64_t)blob_len);
    assert_memory_equal(find_entry(&v, blob_name)->content, blob, blob_len);
    assert_non_null(find_entry(&v, "index.json")); /* entries after the blob are intact */
    kiln_vec_dispose(&v, rentry_free);

    /* the same bytes through a pipe (sendfile into a pipe, or the read/write fallback) */
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        _exit(kiln_export_oci_tar(&img, NULL, 0, p[1], NULL) == 0 ? 0 : 1);
    }
    close(p[1]);
    fd = open(piped, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    for (;;) {
        char buf[65536];
        ssize_t n = read(p[0], buf, sizeof(buf));
        if (n <= 0)
            break;
        assert_int_equal(write(fd, buf, (size_t)n), n);
    }
    close(fd);
    close(p[0]);
    {
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    a = slurp(out, &la);
    b = slurp(piped, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    assert_int_equal(la % 512, 0);
    free(a);
    free(b);
    free(blob);
    free(blob_name);
    kiln_export_image_dispose(&img);
    free(out);
    free(piped);
}

/* A blob noted as verified is not hashed again while unchanged; any change brings the check
 * back. (The note is trusted on purpose here: it is given for corrupted content.) */
static void
test_oci_export_oci_tar__noted_blob(void **state)
{
    tctx *t = *state;
    char *out = tpath(t, "oci.tar");
    kiln_export_image img;
    kiln_error *err = NULL;
    struct timespec ts[2] = {{EPOCH, 0}, {EPOCH, 0}};
    const char *path;
    int fd, bfd;

    make_image(t, &img, KILN_EXPORT_MEDIA_OCI);
    path = img.layers[0].path;
    bfd = open(path, O_WRONLY | O_CLOEXEC);
    assert_true(bfd >= 0);
    assert_int_equal(pwrite(bfd, "X", 1, 20), 1); /* same size, other content */
    close(bfd);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_oci_tar(&img, NULL, 0, fd, &err), KILN_EDIGEST); /* hashed */
    kiln_error_free(&err);
    close(fd);

    /* noted under another digest: still hashed */
    kiln_export_note_verified(path, img.config_digest);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_oci_tar(&img, NULL, 0, fd, &err), KILN_EDIGEST);
    kiln_error_free(&err);
    close(fd);

    /* noted under its digest: copied as is */
    kiln_export_note_verified(path, img.layers[0].desc.digest);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_oci_tar(&img, NULL, 0, fd, &err), 0);
    close(fd);

    /* changed since the note (here only its mtime): hashed again */
    ts[1].tv_sec = EPOCH + 1;
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_oci_tar(&img, NULL, 0, fd, &err), KILN_EDIGEST);
    kiln_error_free(&err);
    close(fd);
    kiln_export_image_dispose(&img);
    free(out);
}

static void
test_oci_export_oci_tar__layout(void **state)
{
    tctx *t = *state;
    const char *names[] = {"example.com/app:v1",
                           "docker.io/library/app@sha256:"
                           "1111111111111111111111111111111111111111111111111111111111111111",
                           NULL};
    char *out = tpath(t, "oci.tar");
    kiln_export_image img;
    kiln_error *err = NULL;
    cleanup_free char *blob = NULL;
    json_t *ix, *m0, *m1;
    kiln_vec v;
    int fd;

    make_image(t, &img, KILN_EXPORT_MEDIA_OCI);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_oci_tar(&img, names, 0, fd, &err), 0);
    close(fd);
    read_tar(&v, out);
    assert_string_equal(find_entry(&v, "oci-layout")->content,
                        "{\"imageLayoutVersion\":\"1.0.0\"}");
    blob = xasprintf("blobs/sha256/%s", img.layers[0].desc.digest + 7);
    assert_int_equal(find_entry(&v, blob)->size, img.layers[0].desc.size);
    free(blob);
    blob = xasprintf("blobs/sha256/%s", img.manifest_digest + 7);
    assert_memory_equal(find_entry(&v, blob)->content, img.manifest_json, img.manifest_len);
    ix = parse_entry_json(&v, "index.json");
    assert_int_equal(json_array_size(json_object_get(ix, "manifests")), 2);
    m0 = json_object_get(json_array_get(json_object_get(ix, "manifests"), 0), "annotations");
    m1 = json_object_get(json_array_get(json_object_get(ix, "manifests"), 1), "annotations");
    assert_string_equal(json_string_value(json_object_get(m0, "org.opencontainers.image.ref.name")),
                        "v1");
    assert_string_equal(json_string_value(json_object_get(m0, "io.containerd.image.name")),
                        "example.com/app:v1");
    /* digest-only reference: ref.name carries the full name */
    assert_true(kiln_str_has_prefix(
            json_string_value(json_object_get(m1, "org.opencontainers.image.ref.name")),
            "docker.io/library/app@sha256:"));
    assert_null(find_entry(&v, "manifest.json"));
    json_decref(ix);
    kiln_vec_dispose(&v, rentry_free);

    /* a docker tar refuses a digest-only name */
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_docker_tar(&img, names, 0, fd, &err), KILN_EINVAL);
    kiln_error_free(&err);
    close(fd);
    kiln_export_image_dispose(&img);
    free(out);
}

static void
test_oci_export_docker_tar__manifest_json(void **state)
{
    tctx *t = *state;
    const char *names[] = {"app", "docker.io/me/tool:1.2", "localhost:5000/x/y:z", NULL};
    char *out = tpath(t, "docker.tar"), *out2 = tpath(t, "docker2.tar");
    kiln_export_image img;
    kiln_error *err = NULL;
    json_t *mj, *tags;
    cleanup_free char *cfg = NULL;
    size_t l1, l2;
    char *d1, *d2;
    kiln_vec v;
    int fd;

    make_image(t, &img, KILN_EXPORT_MEDIA_DOCKER);
    fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_docker_tar(&img, names, EPOCH, fd, &err), 0);
    close(fd);
    read_tar(&v, out);
    mj = parse_entry_json(&v, "manifest.json");
    cfg = xasprintf("blobs/sha256/%s", img.config_digest + 7);
    assert_string_equal(json_string_value(json_object_get(json_array_get(mj, 0), "Config")), cfg);
    tags = json_object_get(json_array_get(mj, 0), "RepoTags");
    assert_int_equal(json_array_size(tags), 3);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "app:latest");
    assert_string_equal(json_string_value(json_array_get(tags, 1)), "me/tool:1.2");
    assert_string_equal(json_string_value(json_array_get(tags, 2)), "localhost:5000/x/y:z");
    assert_int_equal(json_array_size(json_object_get(json_array_get(mj, 0), "Layers")), 1);
    assert_int_equal(find_entry(&v, "index.json")->mtime, EPOCH);
    assert_int_equal(find_entry(&v, "index.json")->uid, 0);
    json_decref(mj);
    kiln_vec_dispose(&v, rentry_free);

    /* the stream is a function of the image and names */
    fd = open(out2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_docker_tar(&img, names, EPOCH, fd, &err), 0);
    close(fd);
    d1 = slurp(out, &l1);
    d2 = slurp(out2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(d1, d2, l1);
    free(d1);
    free(d2);

    /* a blob whose content changed is detected, with or without a size change */
    {
        int bfd = open(img.layers[0].path, O_WRONLY | O_CLOEXEC);

        assert_true(bfd >= 0);
        assert_int_equal(pwrite(bfd, "X", 1, 20), 1);
        close(bfd);
    }
    fd = open(out2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_docker_tar(&img, names, EPOCH, fd, &err), KILN_EDIGEST);
    assert_non_null(strstr(err->msg, "digest"));
    kiln_error_free(&err);
    close(fd);
    {
        char *dir = tpath(t, "layout");

        assert_int_equal(kiln_export_oci_dir(&img, names, dir, &err), KILN_EDIGEST);
        kiln_error_free(&err);
        free(dir);
    }
    assert_int_equal(truncate(img.layers[0].path, 10), 0);
    fd = open(out2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_docker_tar(&img, names, EPOCH, fd, &err), KILN_EDIGEST);
    kiln_error_free(&err);
    close(fd);
    kiln_export_image_dispose(&img);
    free(out);
    free(out2);
}

static void
test_oci_export_oci_dir__merge_index(void **state)
{
    tctx *t = *state;
    const char *n1[] = {"app:one", NULL}, *n2[] = {"app:two", "app:one", NULL};
    char *dir = tpath(t, "layout"), *index = tpath(t, "layout/index.json");
    kiln_export_image img;
    kiln_oci_index ix;
    kiln_error *err = NULL;
    char *data, *blob;
    size_t len;

    make_image(t, &img, KILN_EXPORT_MEDIA_OCI);
    assert_int_equal(kiln_export_oci_dir(&img, n1, dir, &err), 0);
    assert_int_equal(kiln_export_oci_dir(&img, n2, dir, &err), 0);
    data = slurp(index, &len);
    assert_int_equal(kiln_oci_index_parse(&ix, data, len, NULL, &err), 0);
    assert_int_equal(ix.n_manifests, 2); /* "one" replaced, "two" added */
    kiln_oci_index_dispose(&ix);
    free(data);
    blob = xasprintf("%s/blobs/sha256/%s", dir, img.config_digest + 7);
    data = slurp(blob, &len);
    assert_memory_equal(data, img.config_json, len);
    free(data);
    free(blob);
    assert_true(kiln_fs_exists(index));
    kiln_export_image_dispose(&img);
    free(dir);
    free(index);
}

static void
test_oci_export_local_and_tar__trees(void **state)
{
    tctx *t = *state;
    char *src = tpath(t, "src"), *dest = tpath(t, "dest"), *tar1 = tpath(t, "t1");
    char *tar2 = tpath(t, "t2"), *copied = tpath(t, "dest/a/file");
    kiln_error *err = NULL;
    size_t l1, l2;
    char *d1, *d2;
    struct stat st;
    int fd;

    make_tree(t);
    assert_int_equal(kiln_export_local(src, dest, &err), 0);
    assert_int_equal(lstat(copied, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_nlink, 2);
    fd = open(tar1, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_tar(src, fd, KILN_LAYER_TIME_SET, EPOCH, &err), 0);
    close(fd);
    fd = open(tar2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_int_equal(kiln_export_tar(dest, fd, KILN_LAYER_TIME_SET, EPOCH, &err), 0);
    close(fd);
    /* the copy tars to the same bytes as the original */
    d1 = slurp(tar1, &l1);
    d2 = slurp(tar2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(d1, d2, l1);
    free(d1);
    free(d2);
    assert_int_equal(kiln_export_local(tar1, dest, &err), KILN_ENOTFOUND);
    kiln_error_free(&err);
    free(src);
    free(dest);
    free(tar1);
    free(tar2);
    free(copied);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_oci_export_layer__entries_sorted_with_types, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__whiteouts_and_opaque, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__rejects_bad_input, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__digests_and_round_trip, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__reproducible_with_epoch, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__timestamps, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__non_ascii_names, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__to_pipe, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__parallel_gzip, setup, teardown),
            cmocka_unit_test(test_oci_export_pgzip__incompressible_blocks),
            cmocka_unit_test_setup_teardown(test_oci_export_layer__emit, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_image__finalize, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_image__add_layer_rejects, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_oci_tar__layout, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_oci_tar__blob_bytes, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_oci_tar__noted_blob, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_docker_tar__manifest_json, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_oci_dir__merge_index, setup, teardown),
            cmocka_unit_test_setup_teardown(test_oci_export_local_and_tar__trees, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
