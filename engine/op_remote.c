/*
 * op_remote.c: the network sources, and remote build contexts.
 *
 * `git://<host/path>[#<ref>[:<subdir>]]` (BuildKit's identifier; the URL to fetch is the
 * git.fullurl attr, else https://<host/path>): the remote is fetched into a bare mirror under
 * <root>/git shared by all builds (source/git.h), the ref resolved to a commit while the cache
 * map is computed, so the cache key follows the commit (a moved branch is a miss, the same commit
 * under another ref of the same identifier a hit), and the commit's tree (or subdir) is checked
 * out into a new snapshot, with .git when git.keepgitdir is "true".
 *
 * `http://` and `https://` (attrs http.checksum, http.filename, http.perm, http.uid, http.gid):
 * one file downloaded into an empty snapshot (source/http.h names it and checks it). With a
 * pinned checksum the cache key is the checksum and nothing is downloaded on a hit; otherwise the
 * file is downloaded while the cache map is computed, into a staging directory under
 * <root>/mounts, and the key folds in its sha256 (so a changed file is a miss), as BuildKit does.
 */
#define KILN_LOG_DOMAIN "engine"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "base/fs.h"
#include "base/path.h"
#include "engine/engine_internal.h"
#include "oci/registry.h"
#include "source/git.h"
#include "source/http.h"

#include "base/base.h"

static const char *
source_attr(const Pb__SourceOp *src, const char *key)
{
    for (size_t i = 0; i < src->n_attrs; i++) {
        if (strcmp(src->attrs[i]->key, key) == 0)
            return src->attrs[i]->value;
    }
    return NULL;
}

/* ---- git ------------------------------------------------------------------------------------ */

typedef struct git_source {
    kiln_git_url url; /* remote = what to fetch */
    bool keep_git_dir;
} git_source;

static void
git_source_dispose(git_source *g)
{
    kiln_git_url_dispose(&g->url);
}

static int
git_source_parse(git_source *out, const Pb__SourceOp *src, kiln_error **err)
{
    const char *full = source_attr(src, "git.fullurl");
    const char *keep = source_attr(src, "git.keepgitdir");
    int ret;

    memset(out, 0, sizeof(*out));
    ret = kiln_git_url_parse(&out->url, src->identifier, err);
    if (ret < 0)
        return kiln_error_wrap(err, "git source `%s`", src->identifier);
    free(out->url.remote);
    if (full && *full)
        out->url.remote = xstrdup(full);
    else
        out->url.remote = xasprintf("https://%s", src->identifier + strlen("git://"));
    out->keep_git_dir = kiln_str_eq(keep, "true");
    return 0;
}

static int
git_resolve(engine_op *eop, const git_source *g, kiln_error **err)
{
    kiln_git_opts go = {.cache_dir = eop->engine->gitdir, .keep_git_dir = g->keep_git_dir};
    char commit[KILN_GIT_OID_HEXLEN + 1];
    int ret;

    if (eop->resolved)
        return 0;
    ret = kiln_git_resolve(commit, g->url.remote, g->url.ref, &go, err);
    if (ret < 0)
        return kiln_error_wrap(err, "git source %s%s%s", g->url.remote, g->url.ref ? "#" : "",
                               g->url.ref ? g->url.ref : "");
    eop->resolved = xstrdup(commit);
    return 0;
}

static int
git_cache_extra(char **extra, engine_op *eop, kiln_error **err)
{
    git_source g;
    int ret = git_source_parse(&g, eop->op->source, err);

    if (ret == 0)
        ret = git_resolve(eop, &g, err);
    if (ret == 0)
        *extra = xasprintf("git commit %s subdir %s keepgitdir %d", eop->resolved,
                           g.url.subdir ? g.url.subdir : "", g.keep_git_dir);
    git_source_dispose(&g);
    return ret;
}

static int
git_exec(kiln_solver_result **out, engine_op *eop, kiln_error **err)
{
    kiln_git_opts go = {.cache_dir = eop->engine->gitdir};
    engine_rw w = {0};
    git_source g;
    int ret = git_source_parse(&g, eop->op->source, err);

    go.keep_git_dir = g.keep_git_dir;
    if (ret == 0)
        ret = git_resolve(eop, &g, err);
    if (ret == 0)
        ret = engine_rw_open(&w, eop->engine, NULL, err);
    if (ret == 0) {
        ret = kiln_git_checkout(g.url.remote, eop->resolved, g.url.subdir, w.path, &go, err);
        if (ret < 0)
            ret = kiln_error_wrap(err, "git source %s at %s", g.url.remote, eop->resolved);
    }
    if (ret == 0)
        ret = engine_rw_commit(out, &w, eop->engine, err);
    engine_rw_abort(&w, eop->engine);
    git_source_dispose(&g);
    return ret;
}

/* ---- http ----------------------------------------------------------------------------------- */

typedef struct fd_sink {
    int fd;
} fd_sink;

static int
fd_sink_write(void *payload, const void *data, size_t len, kiln_error **err)
{
    fd_sink *s = payload;

    return kiln_fd_write_all(s->fd, data, len, err);
}

/* kiln_http_transport over the registry client's plain-URL GET. */
static int
transport_get(void *payload, const char *url, int body_fd, kiln_http_reply *reply, kiln_error **err)
{
    kiln_registry *reg = payload;
    kiln_registry_url_reply r = {0};
    fd_sink sink = {body_fd};
    int ret = kiln_registry_get_url(reg, url, fd_sink_write, &sink, &r, err);

    if (ret == 0) {
        reply->status = (int)r.status;
        reply->content_disposition = steal_pointer(&r.content_disposition);
        reply->last_modified = steal_pointer(&r.last_modified);
        reply->etag = steal_pointer(&r.etag);
    }
    kiln_registry_url_reply_dispose(&r);
    return ret;
}

static int
parse_uint_attr(unsigned long *out, const Pb__SourceOp *src, const char *key, int base,
                kiln_error **err)
{
    const char *v = source_attr(src, key);
    char *end;

    *out = 0;
    if (!v || !*v)
        return 0;
    errno = 0;
    *out = strtoul(v, &end, base);
    if (errno || *end || *out > 0xffffffffUL)
        return kiln_error_set(err, KILN_EINVAL, "http source `%s`: bad %s `%s`", src->identifier,
                              key, v);
    return 0;
}

static int
http_opts(kiln_http_opts *o, const Pb__SourceOp *src, kiln_error **err)
{
    unsigned long perm, uid, gid;
    int ret;

    memset(o, 0, sizeof(*o));
    ret = parse_uint_attr(&perm, src, "http.perm", 8, err);
    if (ret == 0)
        ret = parse_uint_attr(&uid, src, "http.uid", 10, err);
    if (ret == 0)
        ret = parse_uint_attr(&gid, src, "http.gid", 10, err);
    if (ret < 0)
        return ret;
    if (perm > 07777)
        return kiln_error_set(err, KILN_EINVAL, "http source `%s`: bad http.perm %lo",
                              src->identifier, perm);
    o->checksum = source_attr(src, "http.checksum");
    if (o->checksum && !*o->checksum)
        o->checksum = NULL;
    o->filename = source_attr(src, "http.filename");
    if (o->filename && !*o->filename)
        o->filename = NULL;
    o->perm = (unsigned)perm;
    o->uid = (uid_t)uid;
    o->gid = (gid_t)gid;
    return 0;
}

/* Download `url` into dir (existing, empty). */
static int
download(kiln_http_result *res, const char *url, const char *dir, const kiln_http_opts *o,
         kiln_error **err)
{
    kiln_registry_opts ro = KILN_REGISTRY_OPTS_INIT;
    kiln_registry *reg = NULL;
    int ret = kiln_registry_new(&reg, &ro, err);

    if (ret == 0) {
        kiln_http_transport t = {transport_get, reg};
        ret = kiln_http_download(res, url, dir, o, &t, err);
    }
    kiln_registry_free(reg);
    return ret;
}

/* Download into a new staging dir (eop->staged) unless already there. */
static int
http_stage(engine_op *eop, const kiln_http_opts *o, kiln_error **err)
{
    kiln_http_result res = {0};
    cleanup_free char *dir = NULL;
    char hex[KILN_DIGEST_STRLEN + 1];
    int ret;

    if (eop->staged)
        return 0;
    ret = kiln_fs_mkdtemp(&dir, eop->engine->mountdir, "http-", err);
    if (ret == 0)
        ret = download(&res, eop->op->source->identifier, dir, o, err);
    if (ret < 0) {
        kiln_error *tmp = NULL;
        if (dir && kiln_fs_rm_rf(dir, &tmp) < 0)
            kiln_error_free(&tmp);
        return ret;
    }
    kiln_digest_format(hex, &res.digest);
    eop->staged = steal_pointer(&dir);
    eop->resolved = xasprintf("%s %s", hex, res.filename);
    kiln_http_result_dispose(&res);
    return 0;
}

static int
http_cache_extra(char **extra, engine_op *eop, kiln_error **err)
{
    kiln_http_opts o;
    int ret = http_opts(&o, eop->op->source, err);

    if (ret < 0)
        return ret;
    if (o.checksum) { /* the content is known: no download on a hit */
        *extra = xasprintf("http checksum %s", o.checksum);
        return 0;
    }
    ret = http_stage(eop, &o, err);
    if (ret == 0)
        *extra = xasprintf("http content %s", eop->resolved);
    return ret;
}

static int
http_exec(kiln_solver_result **out, engine_op *eop, kiln_error **err)
{
    engine_rw w = {0};
    kiln_http_opts o;
    int ret = http_opts(&o, eop->op->source, err);

    if (ret == 0)
        ret = http_stage(eop, &o, err);
    if (ret == 0)
        ret = engine_rw_open(&w, eop->engine, NULL, err);
    if (ret == 0)
        ret = kiln_fs_copy_tree(eop->staged, w.path, KILN_COPY_PRESERVE_OWNER, err);
    if (ret == 0 && chmod(w.path, 0755) < 0) /* the staging dir is 0700 */
        ret = kiln_error_errno(err, errno, "chmod %s", w.path);
    if (ret == 0)
        ret = engine_rw_commit(out, &w, eop->engine, err);
    engine_rw_abort(&w, eop->engine);
    return ret;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

bool
engine_remote_source(const char *identifier)
{
    return kiln_str_has_prefix(identifier, "git://") ||
           kiln_str_has_prefix(identifier, "http://") ||
           kiln_str_has_prefix(identifier, "https://");
}

int
engine_remote_cache_extra(char **extra, const engine_op *eop, kiln_error **err)
{
    /* the solver computes a vertex's cache map before running it, never both at once */
    engine_op *mut = (engine_op *)eop;

    if (kiln_str_has_prefix(eop->op->source->identifier, "git://"))
        return git_cache_extra(extra, mut, err);
    return http_cache_extra(extra, mut, err);
}

int
engine_remote_exec(kiln_solver_result **out, const engine_op *eop, kiln_error **err)
{
    engine_op *mut = (engine_op *)eop;

    if (kiln_str_has_prefix(eop->op->source->identifier, "git://"))
        return git_exec(out, mut, err);
    return http_exec(out, mut, err);
}

void
engine_remote_dispose(engine_op *eop)
{
    kiln_error *tmp = NULL;

    if (eop->staged && kiln_fs_rm_rf(eop->staged, &tmp) < 0) {
        kiln_log_warn("remove %s: %s", eop->staged, tmp->msg);
        kiln_error_free(&tmp);
    }
    free(eop->staged);
    free(eop->resolved);
}

/* ---- remote build contexts ------------------------------------------------------------------ */

bool
kiln_engine_is_git_url(const char *s)
{
    size_t n;

    if (kiln_str_has_prefix(s, "git://") || kiln_str_has_prefix(s, "git@") ||
        kiln_str_has_prefix(s, "github.com/"))
        return true;
    if (!kiln_str_has_prefix(s, "https://") && !kiln_str_has_prefix(s, "http://") &&
        !kiln_str_has_prefix(s, "ssh://"))
        return false;
    if (kiln_str_has_prefix(s, "ssh://"))
        return true;
    n = strcspn(s, "#");
    return n >= 4 && strncmp(s + n - 4, ".git", 4) == 0;
}

int
kiln_engine_fetch_context(char **filename, kiln_engine *e, const char *url, const char *dir,
                          kiln_error **err)
{
    *filename = NULL;
    if (kiln_engine_is_git_url(url)) {
        kiln_git_opts go = {.cache_dir = e->gitdir};
        cleanup_free char *full = kiln_str_has_prefix(url, "github.com/")
                                          ? xasprintf("https://%s", url)
                                          : xstrdup(url);
        int ret = kiln_git_fetch_checkout(NULL, full, dir, &go, err);
        return ret < 0 ? kiln_error_wrap(err, "git context %s", url) : 0;
    }
    if (kiln_str_has_prefix(url, "https://") || kiln_str_has_prefix(url, "http://")) {
        kiln_http_opts o = {.perm = 0600};
        kiln_http_result res = {0};
        int ret = download(&res, url, dir, &o, err);

        if (ret == 0)
            *filename = steal_pointer(&res.filename);
        kiln_http_result_dispose(&res);
        return ret;
    }
    return kiln_error_set(err, KILN_EINVAL, "context `%s`: not a git or http(s) URL", url);
}
