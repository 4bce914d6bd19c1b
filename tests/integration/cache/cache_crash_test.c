/*
 * cache_crash_test.c: crash safety of the state store. Each trial forks a child that opens the
 * store and performs random operations (blob writes, abandoned writers, snapshot prepare/commit/
 * remove, cache keys, images with refs, leases, prune) as fast as it can; the parent SIGKILLs it
 * at a random moment, then reopens the store (which sweeps the debris), requires a deep fsck to
 * find no problem, and checks that operations still work. Usage: cache_crash_test [TRIALS [SEED]].
 * Exit 0 pass, 1 failure. `cache_crash_test --make-damaged DIR` instead creates a store whose one
 * snapshot lost its directory, for the `kiln debug fsck` test (fsck_cli_test.sh).
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "base/base.h"
#include "base/fs.h"
#include "cache/cache.h"

#define MAX_SNAPS 64

typedef struct child_state {
    kiln_cache *c;
    char snaps[MAX_SNAPS][33]; /* committed snapshot ids this child made */
    size_t nsnaps;
    volatile uint64_t *ops; /* shared with the parent */
} child_state;

static unsigned
rnd(unsigned n)
{
    return (unsigned)random() % n;
}

static const char *
pick_snap(child_state *s)
{
    return s->nsnaps ? s->snaps[rnd((unsigned)s->nsnaps)] : NULL;
}

static void
op_blob(child_state *s, kiln_error **e)
{
    size_t len = 1 + rnd(200000);
    char *data = xmalloc(len);
    kiln_cache_blob_writer *w = NULL;

    memset(data, 'a' + (int)rnd(4), len); /* few distinct contents: concurrent duplicates */
    if (rnd(5) == 0) {
        if (kiln_cache_blob_writer_new(&w, s->c, NULL, e) == 0)
            kiln_cache_blob_writer_write(w, data, len / 2, e);
        kiln_cache_blob_writer_free(w); /* abandoned */
    } else {
        kiln_cache_blob_put(s->c, data, len, "application/octet-stream", NULL, e);
    }
    free(data);
}

static void
op_snapshot(child_state *s, kiln_error **e)
{
    kiln_cache_mounts m = {0};
    char id[33], key[64], d[KILN_DIGEST_STRLEN + 1];

    if (kiln_cache_snapshot_prepare(id, s->c, pick_snap(s), e) < 0)
        return;
    if (kiln_cache_snapshot_mounts(&m, s->c, id, e) == 0) {
        for (unsigned i = 0, n = rnd(20); i < n; i++) {
            cleanup_free char *p = xasprintf("%s/file%u", m.upper, rnd(50));
            kiln_error *tmp = NULL;
            char buf[4096];
            memset(buf, 'x', sizeof(buf));
            kiln_fs_write_atomic(p, buf, rnd(sizeof(buf)), 0644, &tmp);
            kiln_error_free(&tmp);
        }
        kiln_cache_mounts_dispose(&m);
    }
    if (rnd(6) == 0 || kiln_cache_snapshot_commit(s->c, id, e) < 0)
        return; /* left active */
    if (s->nsnaps < MAX_SNAPS)
        memcpy(s->snaps[s->nsnaps++], id, 33);
    snprintf(key, sizeof(key), "key-%u", rnd(30));
    kiln_cache_key_put(s->c, key, id, e);
    if (rnd(2) == 0 && kiln_cache_blob_put(s->c, id, 32, "layer", d, e) == 0)
        kiln_cache_snapshot_set_blob(s->c, id, d, e);
}

static void
op_refs(child_state *s, kiln_error **e)
{
    const char *snap = pick_snap(s);
    cleanup_free char *target = NULL;
    char name[32];
    const char *refs[2] = {NULL, NULL};

    if (snap == NULL)
        return;
    target = xasprintf("snapshot:%s", snap);
    refs[0] = target;
    snprintf(name, sizeof(name), "img-%u", rnd(5));
    switch (rnd(4)) {
    case 0:
        kiln_cache_image_put(s->c, name, "{\"mediaType\":\"x\"}", refs, e);
        break;
    case 1:
        kiln_cache_image_delete(s->c, name, e);
        break;
    case 2:
        kiln_cache_lease_add(s->c, "lease-1", target, e);
        break;
    default:
        kiln_cache_lease_release(s->c, "lease-1", e);
        break;
    }
}

static void
op_gc(child_state *s, kiln_error **e)
{
    kiln_cache_prune_opts o = {0};
    kiln_cache_usage_list l = {0};
    const char *snap = pick_snap(s);

    if (rnd(2) == 0 && snap) {
        kiln_cache_snapshot_remove(s->c, snap, e); /* often refused: in use */
        return;
    }
    o.keep_storage = rnd(2) ? 0 : rnd(400000);
    o.all = rnd(2);
    if (kiln_cache_prune(&l, s->c, &o, e) == 0)
        kiln_cache_usage_list_dispose(&l);
    /* forget snapshots that may be gone; lookups of stale ids just fail */
    if (rnd(3) == 0)
        s->nsnaps = 0;
}

static __attribute__((noreturn)) void
child_main(const char *root, unsigned seed, volatile uint64_t *ops)
{
    child_state s = {0};
    kiln_error *e = NULL;

    srandom(seed);
    s.ops = ops;
    if (kiln_cache_open(&s.c, root, NULL, &e) < 0) {
        fprintf(stderr, "child: open: %s\n", e->msg);
        _exit(3);
    }
    for (;;) {
        unsigned r = rnd(10);
        if (r < 4)
            op_blob(&s, &e);
        else if (r < 7)
            op_snapshot(&s, &e);
        else if (r < 9)
            op_refs(&s, &e);
        else
            op_gc(&s, &e);
        kiln_error_free(&e); /* refusals (in use, not found) are expected */
        (*s.ops)++;
    }
}

/* Reopen, fsck deep, and exercise the store. Returns the number of problems (or -1). */
static int
check_store(const char *root, int trial)
{
    kiln_cache *c = NULL;
    kiln_error *e = NULL;
    kiln_cache_fsck_report r = {0};
    kiln_cache_usage_list l = {0};
    char id[33], d[KILN_DIGEST_STRLEN + 1];
    int problems = -1;

    if (kiln_cache_open(&c, root, NULL, &e) < 0 || kiln_cache_fsck(&r, c, true, &e) < 0)
        goto out;
    problems = (int)r.len;
    for (size_t i = 0; i < r.len; i++)
        fprintf(stderr, "trial %d: fsck: %s\n", trial, r.problems[i]);
    if (kiln_cache_blob_put(c, "after crash", 11, NULL, d, &e) < 0 ||
        kiln_cache_snapshot_prepare(id, c, NULL, &e) < 0 ||
        kiln_cache_snapshot_commit(c, id, &e) < 0 || kiln_cache_key_put(c, "post", id, &e) < 0 ||
        kiln_cache_prune(&l, c, &(kiln_cache_prune_opts){.dry_run = true}, &e) < 0) {
        problems = -1;
        goto out;
    }
    kiln_cache_usage_list_dispose(&l);
out:
    if (e)
        fprintf(stderr, "trial %d: %s\n", trial, e->msg);
    kiln_error_free(&e);
    kiln_cache_fsck_report_dispose(&r);
    kiln_cache_free(c);
    return problems;
}

static int
run_trial(const char *root, int trial, unsigned seed, volatile uint64_t *ops)
{
    pid_t pid;
    int status = 0;

    pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0)
        child_main(root, seed, ops);
    usleep(20000 + rnd(400000));
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status)) {
        fprintf(stderr, "trial %d: child exited early with status %d\n", trial, status);
        return -1;
    }
    return check_store(root, trial);
}

static int
make_damaged(const char *root)
{
    kiln_cache *c = NULL;
    kiln_error *e = NULL;
    cleanup_free char *fs = NULL;
    char id[33];
    int ret = kiln_cache_open(&c, root, NULL, &e);

    if (ret == 0)
        ret = kiln_cache_snapshot_prepare(id, c, NULL, &e);
    if (ret == 0)
        ret = kiln_cache_snapshot_commit(c, id, &e);
    if (ret == 0)
        ret = kiln_cache_key_put(c, "damaged", id, &e);
    if (ret == 0) {
        fs = xasprintf("%s/snapshots/%s/fs", root, id);
        ret = kiln_fs_rm_rf(fs, &e);
    }
    if (ret < 0)
        fprintf(stderr, "make damaged store: %s\n", e->msg);
    kiln_error_free(&e);
    kiln_cache_free(c);
    return ret < 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
    char tmpl[] = "/tmp/kiln-cache-crash-XXXXXX";
    cleanup_free char *root = NULL;
    kiln_error *e = NULL;
    int64_t trials = 25, seed = (int64_t)time(NULL);
    volatile uint64_t *ops;
    int failures = 0;

    if (argc == 3 && strcmp(argv[1], "--make-damaged") == 0)
        return make_damaged(argv[2]);
    if ((argc > 1 && kiln_parse_i64(argv[1], &trials, "trials", &e) < 0) ||
        (argc > 2 && kiln_parse_i64(argv[2], &seed, "seed", &e) < 0)) {
        fprintf(stderr, "usage: %s [TRIALS [SEED]]: %s\n", argv[0], e->msg);
        kiln_error_free(&e);
        return 2;
    }
    if (mkdtemp(tmpl) == NULL)
        return 1;
    root = xasprintf("%s/state", tmpl);
    ops = mmap(NULL, sizeof(*ops), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ops == MAP_FAILED)
        return 1;
    printf("seed %lld, %lld trials, state dir %s\n", (long long)seed, (long long)trials, root);
    srandom((unsigned)seed);
    for (int i = 0; i < trials; i++) {
        int p = run_trial(root, i, (unsigned)seed + (unsigned)i, ops);
        if (p != 0) {
            fprintf(stderr, "trial %d failed (%d problems)\n", i, p);
            failures++;
        }
    }
    printf("%llu operations across %lld trials, %d failed\n", (unsigned long long)*ops,
           (long long)trials, failures);
    if (*ops < (uint64_t)trials) {
        fprintf(stderr, "the children did almost no work: the test proves nothing\n");
        failures++;
    }
    if (failures == 0)
        kiln_fs_rm_rf(tmpl, &e);
    kiln_error_free(&e);
    return failures ? 1 : 0;
}
