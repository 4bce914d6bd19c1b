/*
 * cachekey.c: cache keys of vertices, in the kiln-native "kiln.cachekey.v1" format documented in
 * solver.h. A key is a SHA-256 over length-prefixed fields, so two different field lists can never
 * produce the same byte stream. The slow-path expansion enumerates the combinations of the keys
 * each input is known under (and content digests), bounded by KILN_SOLVER_MAX_KEYS.
 */
#include <inttypes.h>

#include "base/base.h"
#include "solver/solver_internal.h"

static void
put_field(kiln_sha256_ctx *c, const char *s)
{
    char len[24];
    int n = snprintf(len, sizeof(len), "%zu:", strlen(s));

    kiln_sha256_ctx_update(c, len, (size_t)n);
    kiln_sha256_ctx_update(c, s, strlen(s));
}

/*
 * Compute the key for base digest `base` and `nparts` input components into `out`
 * ("sha256:<hex>"). Pure function, thread-safe.
 */
void
solver_key_compute(char out[KILN_DIGEST_STRLEN + 1], const char *base, const solver_key_part *parts,
                   size_t nparts)
{
    kiln_sha256_ctx *c = NULL;
    kiln_sha256 d;
    char num[24];

    kiln_sha256_ctx_new(&c);
    put_field(c, "kiln.cachekey.v1");
    put_field(c, base);
    snprintf(num, sizeof(num), "%zu", nparts);
    put_field(c, num);
    for (size_t i = 0; i < nparts; i++) {
        char kind[2] = {parts[i].kind, 0};

        put_field(c, kind);
        put_field(c, parts[i].value);
        if (parts[i].kind == 'c')
            kiln_strlcpy(num, "-", sizeof(num));
        else
            snprintf(num, sizeof(num), "%u", parts[i].index);
        put_field(c, num);
        put_field(c, parts[i].selector ? parts[i].selector : "");
    }
    kiln_sha256_ctx_final(c, &d);
    kiln_sha256_ctx_free(c);
    kiln_digest_format(out, &d);
}

static bool
has_key(const solver_vertex *v, const char *key)
{
    for (size_t i = 0; i < v->nkeys; i++)
        if (strcmp(v->keys[i].key, key) == 0)
            return true;
    return false;
}

/* Number of options of input i: one content digest, or every key the input is known under. */
static size_t
n_options(const solver_vertex *v, char *const *content, size_t i)
{
    return content[i] ? 1 : v->in[i]->nkeys;
}

/*
 * Append to v->keys the combinations of input options (see solver.h), skipping keys already
 * present, until KILN_SOLVER_MAX_KEYS. Every input must be done (its key list final) and
 * v->keys[0] set. Call with the solver lock held, or on a vertex no other thread touches.
 * Returns v->nkeys.
 */
size_t
solver_keys_expand(solver_vertex *v, char *const *content)
{
    size_t n = v->desc.ninputs;
    cleanup_free size_t *pos = xcalloc(n ? n : 1, sizeof(size_t));
    cleanup_free solver_key_part *parts = xcalloc(n ? n : 1, sizeof(solver_key_part));

    for (size_t i = 0; i < n; i++)
        if (n_options(v, content, i) == 0)
            return v->nkeys; /* an input without keys: nothing to combine */
    for (;;) {
        bool trusted = true;
        char key[KILN_DIGEST_STRLEN + 1];
        size_t i;

        for (i = 0; i < n; i++) {
            parts[i].selector = v->cm.deps[i].selector;
            parts[i].index = v->desc.inputs[i].output;
            if (content[i]) {
                parts[i].kind = 'c';
                parts[i].value = content[i];
            } else {
                parts[i].kind = 'k';
                parts[i].value = v->in[i]->keys[pos[i]].key;
                trusted = trusted && v->in[i]->keys[pos[i]].trusted;
            }
        }
        solver_key_compute(key, v->cm.base, parts, n);
        if (!has_key(v, key)) {
            if (v->nkeys == KILN_SOLVER_MAX_KEYS)
                break;
            v->keys = xreallocarray(v->keys, v->nkeys + 1, sizeof(*v->keys));
            kiln_strlcpy(v->keys[v->nkeys].key, key, sizeof(key));
            v->keys[v->nkeys++].trusted = trusted;
        }
        /* next combination (mixed-radix counter) */
        for (i = 0; i < n; i++) {
            if (++pos[i] < n_options(v, content, i))
                break;
            pos[i] = 0;
        }
        if (i == n)
            break;
    }
    return v->nkeys;
}
