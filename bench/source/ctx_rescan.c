/*
 * ctx_rescan.c: measures kiln_ctx_walk on a generated build context (default 20,000 files in 200
 * directories, 1-4 KiB each): a cold walk that hashes every file, then warm rescans that find
 * every content hash in an in-memory stat cache (as the engine's LMDB-backed cache would). It
 * prints the root digest of the cold walk (compare it across versions: a faster walk must not
 * change digests) and fails when a warm rescan's differs.
 *
 * With --store the stat cache is the engine's: the state store's checksum table in LMDB, with
 * the key encoding of engine/op_source.c (one transaction per lookup, one commit per new hash);
 * with --store-batch the same table through a kiln_cache_checksum_batch per walk (one read
 * transaction, one commit).
 *
 * Usage: kiln-bench-ctx-rescan [--store|--store-batch] [NFILES] [DIR]   (DIR: walk this context,
 * applying its .dockerignore when it has one)
 */
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "base/base.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/map.h"
#include "base/path.h"
#include "base/str.h"
#include "cache/cache.h"
#include "source/context.h"
#include "source/ignore.h"

#define WARM_RUNS 9

static kiln_cache *g_batch_store; /* --store-batch: a batch of this store per walk */

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time (user + system) of this process, in ms: unlike wall time, not inflated by other
 * load on the machine. */
static double
cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static bool
cache_get(void *payload, const void *key, size_t keylen, kiln_xxh128 *out)
{
    kiln_map *m = payload;
    cleanup_free char *k = xmalloc(2 * keylen + 1);
    kiln_xxh128 *v;
    kiln_hex_encode(k, key, keylen);
    v = kiln_map_get(m, k);
    if (v)
        *out = *v;
    return v != NULL;
}

static void
cache_put(void *payload, const void *key, size_t keylen, kiln_xxh128 value)
{
    kiln_map *m = payload;
    cleanup_free char *k = xmalloc(2 * keylen + 1);
    kiln_hex_encode(k, key, keylen);
    free(kiln_map_put(m, k, xmemdup(&value, sizeof(value))));
}

/* The engine's stat cache (engine/op_source.c): "kiln.ctx.v1:" + hex key in the checksum table. */
static char *
store_key(const void *key, size_t keylen)
{
    char *k = xmalloc(strlen("kiln.ctx.v1:") + 2 * keylen + 1);
    memcpy(k, "kiln.ctx.v1:", strlen("kiln.ctx.v1:"));
    kiln_hex_encode(k + strlen("kiln.ctx.v1:"), key, keylen);
    return k;
}

static bool
store_get(void *payload, const void *key, size_t keylen, kiln_xxh128 *out)
{
    cleanup_free char *k = store_key(key, keylen);
    cleanup_free void *v = NULL;
    kiln_error *tmp = NULL;
    size_t len = 0;
    if (kiln_cache_checksum_get(&v, &len, payload, k, &tmp) < 0) {
        kiln_error_free(&tmp);
        return false;
    }
    if (len != sizeof(*out))
        return false;
    memcpy(out, v, sizeof(*out));
    return true;
}

static void
store_put(void *payload, const void *key, size_t keylen, kiln_xxh128 value)
{
    cleanup_free char *k = store_key(key, keylen);
    kiln_error *tmp = NULL;
    if (kiln_cache_checksum_put(payload, k, &value, sizeof(value), &tmp) < 0) {
        fprintf(stderr, "store: %s\n", tmp->msg);
        exit(1);
    }
}

static bool
batch_get(void *payload, const void *key, size_t keylen, kiln_xxh128 *out)
{
    cleanup_free char *k = store_key(key, keylen);
    kiln_error *tmp = NULL;
    size_t len = sizeof(*out);
    bool found = false;
    if (kiln_cache_checksum_batch_get(&found, out, &len, payload, k, &tmp) < 0) {
        kiln_error_free(&tmp);
        return false;
    }
    return found && len == sizeof(*out);
}

static void
batch_put(void *payload, const void *key, size_t keylen, kiln_xxh128 value)
{
    cleanup_free char *k = store_key(key, keylen);
    kiln_cache_checksum_batch_put(payload, k, &value, sizeof(value));
}

static int
generate(const char *root, long nfiles, kiln_error **err)
{
    char data[4096];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    for (long i = 0; i < nfiles; i++) {
        cleanup_free char *dir = xasprintf("%s/d%03ld/sub", root, i % 200);
        cleanup_free char *path = xasprintf("%s/f%05ld.txt", dir, i);
        if (i < 200 && kiln_fs_mkdir_p(dir, 0755, err) < 0)
            return -1;
        if (kiln_fs_write_atomic(path, data, 1024 + (size_t)(i % 3072), 0644, err) < 0)
            return -1;
    }
    return 0;
}

static double
timed_walk(const char *root, const kiln_ctx_opts *opts, size_t *hashed, size_t *entries,
           double *cpu, char digest[33])
{
    kiln_ctx_list *l = NULL;
    kiln_error *err = NULL;
    kiln_cache_checksum_batch *b = NULL;
    kiln_ctx_cache_ops batch_ops;
    kiln_ctx_opts o = *opts;
    double c0 = cpu_ms();
    double t0 = now_ms();
    if (g_batch_store) {
        kiln_cache_checksum_batch_new(&b, g_batch_store);
        batch_ops = (kiln_ctx_cache_ops){batch_get, batch_put, b};
        o.cache = &batch_ops;
    }
    if (kiln_ctx_walk(&l, root, &o, &err) < 0 ||
        (b && kiln_cache_checksum_batch_commit(b, &err) < 0)) {
        fprintf(stderr, "walk: %s\n", err->msg);
        exit(1);
    }
    kiln_cache_checksum_batch_free(b);
    t0 = now_ms() - t0;
    *cpu = cpu_ms() - c0;
    *hashed = l->hashed;
    *entries = l->len;
    kiln_xxh128_format(digest, l->root_digest);
    kiln_ctx_list_free(l);
    return t0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    int64_t nfiles = 20000;
    cleanup_free char *tmp = NULL;
    const char *root;
    kiln_error *err = NULL;
    kiln_map cache = KILN_MAP_INIT;
    kiln_ctx_cache_ops ops = {cache_get, cache_put, &cache};
    kiln_ctx_opts opts = {.checksum = true, .cache = &ops};
    size_t hashed, entries;
    char cold_digest[33], digest[33];
    double cold, cpu, wall[WARM_RUNS], cpus[WARM_RUNS];
    cleanup_free char *state = NULL;
    kiln_cache *store = NULL;
    kiln_ignore *exclude = NULL;
    if (argc > 1 && (strcmp(argv[1], "--store") == 0 || strcmp(argv[1], "--store-batch") == 0)) {
        if (kiln_fs_mkdtemp(&state, "/tmp", "kiln-bench-state-", &err) < 0 ||
            kiln_cache_open(&store, state, NULL, &err) < 0) {
            fprintf(stderr, "state store: %s\n", err->msg);
            return 1;
        }
        ops = (kiln_ctx_cache_ops){store_get, store_put, store};
        if (strcmp(argv[1], "--store-batch") == 0)
            g_batch_store = store;
        argc--;
        argv++;
    }
    if (argc > 1 && kiln_parse_i64(argv[1], &nfiles, "NFILES", &err) < 0) {
        fprintf(stderr, "%s\n", err->msg);
        return 2;
    }
    if (argc > 2) {
        cleanup_free char *ign = kiln_path_join(argv[2], ".dockerignore");
        cleanup_free char *data = NULL;
        size_t len = 0;
        root = argv[2];
        if (access(ign, F_OK) == 0 &&
            (kiln_fs_read_file(&data, &len, ign, 1 << 20, &err) < 0 ||
             kiln_ignore_new_from_file(&exclude, data, len, ".dockerignore", &err) < 0)) {
            fprintf(stderr, "%s\n", err->msg);
            return 1;
        }
        opts.exclude = exclude;
    } else {
        if (kiln_fs_mkdtemp(&tmp, "/tmp", "kiln-bench-ctx-", &err) < 0 ||
            generate(tmp, nfiles, &err) < 0) {
            fprintf(stderr, "generate: %s\n", err->msg);
            return 1;
        }
        root = tmp;
    }
    cold = timed_walk(root, &opts, &hashed, &entries, &cpu, cold_digest);
    printf("cold walk: %zu entries, %zu files hashed, %.1f ms (cpu %.1f ms), root %s\n", entries,
           hashed, cold, cpu, cold_digest);
    for (int i = 0; i < WARM_RUNS; i++) {
        wall[i] = timed_walk(root, &opts, &hashed, &entries, &cpus[i], digest);
        printf("warm rescan %d: %zu entries, %zu files hashed, %.1f ms (cpu %.1f ms)\n", i + 1,
               entries, hashed, wall[i], cpus[i]);
        if (strcmp(digest, cold_digest) != 0) {
            fprintf(stderr, "warm rescan %d: root digest %s differs from the cold walk's\n", i + 1,
                    digest);
            return 1;
        }
    }
    qsort(wall, WARM_RUNS, sizeof(double), cmp_double);
    qsort(cpus, WARM_RUNS, sizeof(double), cmp_double);
    printf("warm rescan: best %.1f ms, median %.1f ms wall; best %.1f ms, median %.1f ms cpu\n",
           wall[0], wall[WARM_RUNS / 2], cpus[0], cpus[WARM_RUNS / 2]);
    kiln_map_dispose(&cache, free);
    kiln_ignore_free(exclude);
    kiln_cache_free(store);
    if (tmp && kiln_fs_rm_rf(tmp, &err) < 0)
        kiln_error_free(&err);
    if (state && kiln_fs_rm_rf(state, &err) < 0)
        kiln_error_free(&err);
    return 0;
}
