/*
 * op_image.c: `docker-image://<ref>` sources through the registry client (oci/registry.h): the
 * image manifest for the host platform (through an index when the reference names one), the
 * config, and each layer blob pulled into the content store (verified against its digest by the
 * store; blobs already stored are not pulled again), then applied like an oci-layout image onto
 * the snapshot chain keyed by chain id. Registries on 127.0.0.0/8 and localhost are reached over
 * plain http (the client's rule). The cache map folds in the manifest digest the tag resolved to,
 * so a moved tag is a cache miss.
 *
 * An image named `ref` in the local image store (kiln build -t, kiln tag, pull, load) is used
 * before the registry unless the source asks for image.resolvemode=pull, so `FROM app` works
 * after `kiln build -t app`: its recorded snapshot is reused, or its layers are unpacked from
 * the content store. engine_registry_pull fetches an image into the store for `kiln pull`, its
 * layers four at a time; a build fetches the layers it needs the same way, in the background,
 * applying each as soon as it is there.
 */
#define KILN_LOG_DOMAIN "engine"

#include <pthread.h>

#include "base/buf.h"
#include "base/digest.h"
#include "engine/engine_internal.h"
#include "oci/oci.h"
#include "oci/registry.h"

#include "base/base.h"

typedef struct image_pull {
    kiln_engine *e;
    kiln_registry *reg;
    kiln_oci_ref ref;
    kiln_registry_manifest raw;
    kiln_oci_manifest m;
    kiln_oci_config cfg;
} image_pull;

static void
pull_dispose(image_pull *p)
{
    kiln_oci_config_dispose(&p->cfg);
    kiln_oci_manifest_dispose(&p->m);
    kiln_registry_manifest_dispose(&p->raw);
    kiln_oci_ref_dispose(&p->ref);
    kiln_registry_free(p->reg);
}

/* Parse reference `id` and fetch the image manifest for the host platform. */
static int
pull_manifest(image_pull *p, kiln_engine *e, const char *id, kiln_error **err)
{
    int ret;

    memset(p, 0, sizeof(*p));
    kiln_oci_config_init(&p->cfg);
    p->e = e;
    ret = kiln_oci_ref_parse(&p->ref, id, err);
    if (ret == 0)
        ret = kiln_registry_new(&p->reg, NULL, err);
    if (ret == 0)
        ret = kiln_registry_get_image_manifest(p->reg, &p->ref, NULL, &p->raw, err);
    if (ret == 0)
        ret = kiln_oci_manifest_parse(&p->m, p->raw.data, p->raw.len, p->raw.media_type, err);
    if (ret < 0)
        return kiln_error_wrap(err, "image `%s`", id);
    return 0;
}

static int
buf_write(void *payload, const void *data, size_t len, kiln_error **err)
{
    return kiln_buf_put(payload, data, len, err);
}

static int
blob_write(void *payload, const void *data, size_t len, kiln_error **err)
{
    return kiln_cache_blob_writer_write(payload, data, len, err);
}

/* Fetch (and, unless raw_out, parse) the image config; raw_out receives its bytes. */
static int
pull_config(image_pull *p, kiln_buf *raw_out, kiln_error **err)
{
    kiln_buf b;
    int ret;

    kiln_buf_init(&b, KILN_OCI_CONFIG_MAX);
    ret = kiln_registry_get_blob(p->reg, &p->ref, p->m.config.digest, p->m.config.size, buf_write,
                                 &b, err);
    if (ret == 0 && !raw_out)
        ret = kiln_oci_config_parse(&p->cfg, b.ptr ? b.ptr : "", b.len, err);
    if (ret == 0 && raw_out)
        *raw_out = b;
    else
        kiln_buf_dispose(&b);
    if (ret < 0)
        return kiln_error_wrap(err, "config %s", p->m.config.digest);
    return 0;
}

/* ---- the local image store (resolve mode "default" and "local") ---------------------------- */

/* LLB's image.resolvemode: "default" and "local" (BuildKit's prefer-local) look in the local
 * image store first and fall back to the registry; "pull" always asks the registry. */
typedef enum resolve_mode {
    RESOLVE_DEFAULT = 0, /* the local image store, then the registry */
    RESOLVE_PULL,        /* the registry only */
} resolve_mode;

static int
source_resolve_mode(resolve_mode *out, const engine_op *eop, kiln_error **err)
{
    const Pb__SourceOp *src = eop->op->source;

    *out = RESOLVE_DEFAULT;
    for (size_t i = 0; i < src->n_attrs; i++) {
        const char *v = src->attrs[i]->value;
        if (strcmp(src->attrs[i]->key, "image.resolvemode") != 0)
            continue;
        if (strcmp(v, "pull") == 0)
            *out = RESOLVE_PULL;
        else if (strcmp(v, "default") != 0 && strcmp(v, "local") != 0 && *v)
            return kiln_error_set(err, KILN_EINVAL, "image.resolvemode `%s`", v);
    }
    return 0;
}

/* The local store's image for `ref` unless mode says pull; *out NULL when there is none. */
static int
local_image(kiln_engine_image **out, kiln_engine *e, const char *ref, resolve_mode mode,
            kiln_error **err)
{
    kiln_error *tmp = NULL;
    int ret;

    *out = NULL;
    if (mode == RESOLVE_PULL)
        return 0;
    ret = engine_image_lookup_local(out, e, ref, &tmp);
    if (ret == KILN_ENOTFOUND) {
        kiln_error_free(&tmp);
        return 0;
    }
    if (ret < 0) {
        kiln_error_move(err, &tmp);
        return kiln_error_wrap(err, "local image `%s`", ref);
    }
    return 0;
}

int
engine_image_config(char **config, char *digest_out, kiln_engine *e, const char *ref,
                    kiln_error **err)
{
    image_pull p;
    kiln_buf raw = KILN_BUF_INIT;
    kiln_engine_image *local = NULL;
    int ret;

    ret = local_image(&local, e, ref, RESOLVE_DEFAULT, err);
    if (ret < 0)
        return ret;
    if (local) {
        *config = xmemdup(local->config_json, local->config_len + 1);
        kiln_strlcpy(digest_out, local->digest, KILN_DIGEST_STRLEN + 1);
        kiln_engine_image_free(local);
        return 0;
    }
    ret = pull_manifest(&p, e, ref, err);
    if (ret == 0)
        ret = pull_config(&p, &raw, err);
    if (ret == 0) {
        kiln_strlcpy(digest_out, p.raw.digest, KILN_DIGEST_STRLEN + 1);
        *config = kiln_buf_detach(&raw);
    }
    pull_dispose(&p);
    return ret;
}

/* engine_layer_open_fn: pull the layer into the content store unless it is there, open it. */
static int
pull_open_layer(int *fd, const kiln_oci_descriptor *d, void *payload, kiln_error **err)
{
    image_pull *p = payload;
    kiln_cache_blob_writer *w = NULL;
    int ret = 0;

    if (!kiln_cache_blob_exists(p->e->cache, d->digest)) {
        ret = kiln_cache_blob_writer_new(&w, p->e->cache, d->digest, err);
        if (ret == 0) {
            /* the lease keeps the blob from a concurrent prune until the engine closes */
            kiln_cache_blob_writer_set_lease(w, p->e->lease);
            ret = kiln_registry_get_blob(p->reg, &p->ref, d->digest, d->size, blob_write, w, err);
        }
        if (ret == 0)
            ret = kiln_cache_blob_writer_commit(w, d->media_type, NULL, err);
        kiln_cache_blob_writer_free(w);
        if (ret < 0)
            return kiln_error_wrap(err, "pull layer %s", d->digest);
    }
    return kiln_cache_blob_open(fd, p->e->cache, d->digest, err);
}

/* Pulling layers PULL_THREADS at a time (the registry client and the blob writers are
 * thread-safe). `kiln pull` waits for all of them; a build starts them in the background and
 * applies each layer as soon as it is there, in order, while the later ones download. */
#define PULL_THREADS 4

enum { PF_WAITING, PF_RUNNING, PF_DONE };

typedef struct prefetch {
    image_pull *p;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned char *state; /* per layer: PF_WAITING, PF_RUNNING or PF_DONE */
    size_t next;
    kiln_error *err; /* the first failure */
    pthread_t th[PULL_THREADS];
    size_t nth;
} prefetch;

/* Claim the next layer still to fetch, or return n_layers when none is left (or after a failure:
 * the layers not started then are fetched, and their errors reported, by whoever opens them). */
static size_t
prefetch_claim(prefetch *f)
{
    size_t i = f->p->m.n_layers;

    pthread_mutex_lock(&f->lock);
    while (!f->err && f->next < f->p->m.n_layers) {
        size_t k = f->next++;
        if (f->state[k] == PF_WAITING) {
            f->state[k] = PF_RUNNING;
            i = k;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return i;
}

static void
prefetch_done(prefetch *f, size_t i, kiln_error **tmp)
{
    pthread_mutex_lock(&f->lock);
    f->state[i] = PF_DONE;
    if (*tmp && !f->err)
        f->err = steal_pointer(tmp);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    kiln_error_free(tmp);
}

static void *
prefetch_worker(void *arg)
{
    prefetch *f = arg;

    for (size_t i; (i = prefetch_claim(f)) < f->p->m.n_layers;) {
        kiln_error *tmp = NULL;
        cleanup_close int fd = -1;
        pull_open_layer(&fd, &f->p->m.layers[i], f->p, &tmp);
        prefetch_done(f, i, &tmp);
    }
    return NULL;
}

/* Start fetching the layers whose state is PF_WAITING (f->state filled by the caller). */
static void
prefetch_start(prefetch *f, image_pull *p, unsigned char *state)
{
    size_t todo = 0;

    memset(f, 0, sizeof(*f));
    f->p = p;
    f->state = state;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    for (size_t i = 0; i < p->m.n_layers; i++)
        todo += state[i] == PF_WAITING;
    while (f->nth < PULL_THREADS && f->nth < todo &&
           pthread_create(&f->th[f->nth], NULL, prefetch_worker, f) == 0)
        f->nth++;
}

/* Stop (the workers finish the layer they are on) and join; returns the first error, if any. */
static int
prefetch_finish(prefetch *f, kiln_error **err)
{
    int ret = 0;

    pthread_mutex_lock(&f->lock);
    f->next = f->p->m.n_layers;
    pthread_mutex_unlock(&f->lock);
    for (size_t i = 0; i < f->nth; i++)
        pthread_join(f->th[i], NULL);
    if (f->err)
        ret = err ? kiln_error_move(err, &f->err) : KILN_ESYS;
    kiln_error_free(&f->err);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    return ret;
}

/* engine_layer_open_fn of a build: wait for the layer's download if one is running, else fetch
 * it here, then open it. */
static int
prefetch_open_layer(int *fd, const kiln_oci_descriptor *d, void *payload, kiln_error **err)
{
    prefetch *f = payload;
    size_t i = (size_t)(d - f->p->m.layers);

    pthread_mutex_lock(&f->lock);
    if (f->state[i] == PF_WAITING)
        f->state[i] = PF_DONE; /* not started: fetched below, by us */
    while (f->state[i] == PF_RUNNING)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
    return pull_open_layer(fd, d, f->p, err); /* fetches it when the download failed */
}

static int
pull_layers(image_pull *p, kiln_error **err)
{
    cleanup_free unsigned char *state = xcalloc(p->m.n_layers + 1, 1);
    prefetch f;

    prefetch_start(&f, p, state);
    prefetch_worker(&f); /* the calling thread pulls too */
    return prefetch_finish(&f, err);
}

/* The layers a build must fetch: those above the highest one whose chain is unpacked already
 * (PF_WAITING), unless their blob is stored (PF_DONE). */
static void
layers_needed(unsigned char *state, const image_pull *p)
{
    char chain[KILN_DIGEST_STRLEN + 1];
    size_t from = 0;

    if (p->cfg.diff_ids.len != p->m.n_layers)
        return; /* engine_unpack_layers reports it */
    for (size_t i = p->m.n_layers; i > 0; i--) {
        cleanup_free char *key = NULL;
        kiln_cache_result res = {0};
        kiln_error *tmp = NULL;
        bool have;
        kiln_oci_chain_id(chain, &p->cfg.diff_ids, i);
        key = xasprintf("kiln.layer.v1:%s", chain);
        have = kiln_cache_key_get(&res, p->e->cache, key, &tmp) == 0;
        kiln_cache_result_dispose(&res);
        kiln_error_free(&tmp);
        if (have) {
            from = i;
            break;
        }
    }
    for (size_t i = 0; i < p->m.n_layers; i++)
        state[i] = i < from || kiln_cache_blob_exists(p->e->cache, p->m.layers[i].digest)
                           ? PF_DONE
                           : PF_WAITING;
}

int
engine_registry_pull(char *manifest_digest_out, kiln_engine *e, const char *ref, kiln_error **err)
{
    image_pull p;
    kiln_buf raw = KILN_BUF_INIT;
    char d[KILN_DIGEST_STRLEN + 1];
    int ret;

    ret = pull_manifest(&p, e, ref, err);
    if (ret == 0)
        ret = pull_config(&p, &raw, err);
    if (ret == 0)
        ret = engine_blob_put(d, e, raw.ptr ? raw.ptr : "", raw.len, p.m.config.media_type, err);
    if (ret == 0 && strcmp(d, p.m.config.digest) != 0)
        ret = kiln_error_set(err, KILN_EDIGEST, "config %s has digest %s", p.m.config.digest, d);
    if (ret == 0)
        ret = pull_layers(&p, err);
    if (ret == 0)
        ret = engine_blob_put(d, e, p.raw.data, p.raw.len, p.raw.media_type, err);
    if (ret == 0 && strcmp(d, p.raw.digest) != 0)
        ret = kiln_error_set(err, KILN_EDIGEST, "manifest %s has digest %s", p.raw.digest, d);
    if (ret == 0)
        kiln_strlcpy(manifest_digest_out, d, KILN_DIGEST_STRLEN + 1);
    kiln_buf_dispose(&raw);
    pull_dispose(&p);
    if (ret < 0)
        return kiln_error_wrap(err, "pull `%s`", ref);
    return 0;
}

int
engine_image_cache_extra(char **extra, const engine_op *eop, kiln_error **err)
{
    const char *ref = eop->op->source->identifier + strlen("docker-image://");
    kiln_engine_image *local = NULL;
    resolve_mode mode;
    image_pull p;
    int ret;

    ret = source_resolve_mode(&mode, eop, err);
    if (ret == 0)
        ret = local_image(&local, eop->engine, ref, mode, err);
    if (ret < 0)
        return ret;
    if (local) {
        *extra = xasprintf("manifest %s", local->digest);
        kiln_engine_image_free(local);
        return 0;
    }
    ret = pull_manifest(&p, eop->engine, ref, err);
    if (ret == 0)
        *extra = xasprintf("manifest %s", p.raw.digest);
    pull_dispose(&p);
    return ret;
}

/* The snapshot of a local image: the one recorded for it (a build result tagged as the image)
 * when it still exists, else its layers unpacked from the content store. */
static int
local_image_snapshot(char *id_out, kiln_engine *e, const kiln_engine_image *img, kiln_op_ctx *ctx,
                     kiln_error **err)
{
    kiln_cache_snapshot_info info = {0};
    kiln_error *tmp = NULL;
    bool ok = img->snapshot[0] &&
              kiln_cache_snapshot_info_get(&info, e->cache, img->snapshot, &tmp) == 0;

    kiln_cache_snapshot_info_dispose(&info);
    kiln_error_free(&tmp);
    if (ok) {
        engine_hold(e, img->snapshot);
        kiln_strlcpy(id_out, img->snapshot, 33);
        return 0;
    }
    return engine_image_unpack(id_out, e, img, ctx, err);
}

int
engine_image_exec(kiln_solver_result **out, const engine_op *eop, kiln_op_ctx *ctx,
                  kiln_error **err)
{
    const char *ref = eop->op->source->identifier + strlen("docker-image://");
    kiln_engine_image *local = NULL;
    resolve_mode mode;
    image_pull p;
    char id[33] = "";
    int ret;

    ret = source_resolve_mode(&mode, eop, err);
    if (ret == 0)
        ret = local_image(&local, eop->engine, ref, mode, err);
    if (ret < 0)
        return ret;
    if (local) {
        ret = local_image_snapshot(id, eop->engine, local, ctx, err);
        if (ret == 0)
            ret = engine_image_result(out, eop->engine, id, err);
        kiln_engine_image_free(local);
        return ret;
    }
    ret = pull_manifest(&p, eop->engine, ref, err);
    if (ret == 0)
        ret = pull_config(&p, NULL, err);
    if (ret == 0) {
        cleanup_free unsigned char *state = xcalloc(p.m.n_layers + 1, 1);
        prefetch f;
        layers_needed(state, &p);
        prefetch_start(&f, &p, state);
        ret = engine_unpack_layers(id, p.e, &p.m, &p.cfg, prefetch_open_layer, &f, ctx, err);
        prefetch_finish(&f, NULL); /* a failure that mattered was reported by the unpack */
    }
    if (ret == 0)
        ret = engine_image_result(out, p.e, id, err);
    pull_dispose(&p);
    return ret;
}
