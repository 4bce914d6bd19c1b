/*
 * test_llb.c: unit tests of the LLB module: the deterministic encoder (byte-exact against
 * hand-encoded protobuf), the builder and marshaller (ordering, dedup, indexes, terminal op,
 * metadata), the loader round trip and every validation failure of kiln_llb_load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/digest.h"
#include "llb/llb.h"
#include "llb/llb_internal.h"

#include "base/base.h"

/* ---- helpers ---- */

static void
assert_bytes(const kiln_buf *b, const char *hex)
{
    char *got = xmalloc(2 * b->len + 1);

    kiln_hex_encode(got, (const unsigned char *)b->ptr, b->len);
    assert_string_equal(got, hex);
    free(got);
}

/* Encode ops (already marshalled) into a Definition. */
static void
make_definition(kiln_buf *out, const kiln_buf *ops, size_t n)
{
    Pb__Definition def = PB__DEFINITION__INIT;
    ProtobufCBinaryData *entries = xcalloc(n, sizeof(*entries));

    for (size_t i = 0; i < n; i++) {
        entries[i].data = (uint8_t *)ops[i].ptr;
        entries[i].len = ops[i].len;
    }
    def.n_def = n;
    def.def = entries;
    kiln_llb_encode(out, &def.base);
    free(entries);
}

static void
encode_op(kiln_buf *out, Pb__Op *op)
{
    kiln_buf_init(out, 0);
    kiln_llb_encode(out, &op->base);
}

static void
op_digest(char d[KILN_DIGEST_STRLEN + 1], const kiln_buf *b)
{
    kiln_llb__digest_bytes(d, b->ptr, b->len);
}

/* Load `def`, expecting failure with `code` and a message containing `needle`. */
static void
expect_load_error(const kiln_buf *def, int code, const char *needle)
{
    kiln_error *err = NULL;
    kiln_llb_graph *g = NULL;
    int ret = kiln_llb_load(&g, def->ptr ? def->ptr : "", def->len, &err);

    assert_int_equal(ret, code);
    assert_null(g);
    assert_non_null(err);
    if (!strstr(err->msg, needle))
        fail_msg("error `%s` lacks `%s`", err->msg, needle);
    kiln_error_free(&err);
}

/* The bytes of a source op (an image). */
static void
source_op_bytes(kiln_buf *out)
{
    Pb__Op op = PB__OP__INIT;
    Pb__SourceOp src = PB__SOURCE_OP__INIT;

    src.identifier = "docker-image://docker.io/library/alpine:latest";
    op.op_case = PB__OP__OP_SOURCE;
    op.source = &src;
    encode_op(out, &op);
}

static void
terminal_bytes(kiln_buf *out, const char *digest, int64_t index)
{
    Pb__Op op = PB__OP__INIT;
    Pb__Input in = PB__INPUT__INIT;
    Pb__Input *ins[] = {&in};

    in.digest = (char *)digest;
    in.index = index;
    op.n_inputs = 1;
    op.inputs = ins;
    encode_op(out, &op);
}

static void
dispose_bufs(kiln_buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kiln_buf_dispose(&b[i]);
}

/* ---- encoder ---- */

static void
test_llb_encode__maps_sorted_last_wins_zero_values(void **state)
{
    Pb__SourceOp src = PB__SOURCE_OP__INIT;
    Pb__SourceOp__AttrsEntry e[3] = {PB__SOURCE_OP__ATTRS_ENTRY__INIT,
                                     PB__SOURCE_OP__ATTRS_ENTRY__INIT,
                                     PB__SOURCE_OP__ATTRS_ENTRY__INIT};
    Pb__SourceOp__AttrsEntry *ep[3] = {&e[0], &e[1], &e[2]};
    kiln_buf b = KILN_BUF_INIT;

    (void)state;
    src.identifier = "x";
    e[0].key = "b";
    e[0].value = "1";
    e[1].key = "a";
    e[1].value = ""; /* empty value: Go still writes it */
    e[2].key = "b";
    e[2].value = "2"; /* duplicate key: the last one read wins */
    src.n_attrs = 3;
    src.attrs = ep;
    kiln_llb_encode(&b, &src.base);
    /* 0a 01 'x' | 12 05 [0a 01 'a' 12 00] | 12 06 [0a 01 'b' 12 01 '2'] */
    assert_bytes(&b, "0a0178"
                     "12050a01611200"
                     "12060a0162120132");
    kiln_buf_dispose(&b);
}

static void
test_llb_encode__field_order_packed_negative(void **state)
{
    Pb__Meta meta = PB__META__INIT;
    char *args[] = {"sh"};
    int32_t codes[] = {0, -1};
    kiln_buf b = KILN_BUF_INIT;

    (void)state;
    meta.n_args = 1;
    meta.args = args;
    meta.hostname = "h"; /* field 7 */
    meta.cwd = "";       /* zero: omitted */
    meta.n_validexitcodes = 2;
    meta.validexitcodes = codes; /* field 12, packed, -1 sign-extended to 10 bytes */
    kiln_llb_encode(&b, &meta.base);
    assert_bytes(&b, "0a027368"
                     "3a0168"
                     "620b00ffffffffffffffffff01");
    kiln_buf_dispose(&b);
}

static void
test_llb_encode__oneof_zero_value_written(void **state)
{
    Pb__UserOpt u = PB__USER_OPT__INIT;
    kiln_buf b = KILN_BUF_INIT;

    (void)state;
    u.user_case = PB__USER_OPT__USER_BY_ID;
    u.byid = 0;
    kiln_llb_encode(&b, &u.base);
    assert_bytes(&b, "1000");
    kiln_buf_dispose(&b);
}

/* ---- builder, marshal, load ---- */

static void
marshal_load(kiln_llb_graph **g, kiln_buf *def, kiln_llb_builder *b, kiln_llb_state target)
{
    kiln_error *err = NULL;

    kiln_buf_init(def, 0);
    if (kiln_llb_marshal(def, b, target, NULL, &err) < 0)
        fail_msg("marshal: %s", err->msg);
    if (kiln_llb_load(g, def->ptr, def->len, &err) < 0)
        fail_msg("load: %s", err->msg);
}

static void
test_llb_roundtrip__hello(void **state)
{
    kiln_llb_builder *b = NULL;
    kiln_llb_graph *g = NULL;
    kiln_buf def;
    kiln_llb_state img, run;
    const char *args[] = {"sh", "-c", "true", NULL};
    kiln_llb_exec_opts o = {.args = args};
    char d[KILN_DIGEST_STRLEN + 1];
    const kiln_llb_node *n, *t;

    (void)state;
    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_image(&img, b, "alpine", NULL, NULL), 0);
    o.root = img;
    assert_int_equal(kiln_llb_exec(&run, b, &o, NULL), 0);
    kiln_llb_vertex_set_custom_name(run.vertex, "RUN true");
    marshal_load(&g, &def, b, run);

    assert_int_equal(kiln_llb_graph_count(g), 3);
    n = kiln_llb_graph_node(g, 0);
    assert_int_equal(n->op->op_case, PB__OP__OP_SOURCE);
    assert_string_equal(n->op->source->identifier,
                        "docker-image://docker.io/library/alpine:latest");
    kiln_llb__digest_bytes(d, n->bytes, n->len);
    assert_string_equal(d, n->digest);
    assert_string_equal(n->digest, n->canonical_digest);
    n = kiln_llb_graph_node(g, 1);
    assert_string_equal(kiln_llb_op_kind(n->op), "exec");
    assert_int_equal(n->n_inputs, 1);
    assert_ptr_equal(n->inputs[0], kiln_llb_graph_node(g, 0));
    assert_non_null(n->metadata);
    assert_string_equal(n->metadata->description[0]->key, "llb.customname");
    assert_string_equal(n->op->exec->meta->cwd, "/");
    t = kiln_llb_graph_terminal(g);
    assert_string_equal(kiln_llb_op_kind(t->op), "terminal");
    assert_ptr_equal(t->inputs[0], n);
    assert_non_null(t->metadata);
    assert_true(t->metadata->n_caps >= 3); /* constraints, platform, meta.description */
    assert_ptr_equal(kiln_llb_graph_find(g, n->digest), n);
    assert_null(kiln_llb_graph_find(g, "sha256:00"));
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    kiln_llb_builder_free(b);
}

static void
test_llb_exec__mount_order_outputs_dedup(void **state)
{
    kiln_llb_builder *b = NULL;
    kiln_llb_graph *g = NULL;
    kiln_buf def;
    kiln_llb_state img, root, out_b, out_a;
    const char *args[] = {"true", NULL};
    kiln_llb_mount m[] = {
            {.dest = "/s", .type = KILN_LLB_MOUNT_SECRET, .id = "tok"},
            {.dest = "/z", .source = KILN_LLB_SCRATCH, .result = &out_b},
            {.dest = "/a", .result = &out_a},
            {.dest = "/ro", .readonly = true},
            {.dest = "/c", .type = KILN_LLB_MOUNT_CACHE, .cache_id = "x"},
    };
    kiln_llb_exec_opts o = {.args = args, .mounts = m, .n_mounts = 5};
    const Pb__ExecOp *e;

    (void)state;
    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_image(&img, b, "busybox", NULL, NULL), 0);
    o.root = img;
    m[2].source = img; /* the same state twice: one input */
    m[3].source = img;
    assert_int_equal(kiln_llb_exec(&root, b, &o, NULL), 0);
    assert_int_equal(root.output, 0);
    assert_int_equal(out_a.output, 1); /* "/a" sorts before "/z" */
    assert_int_equal(out_b.output, 2);
    marshal_load(&g, &def, b, out_b);
    e = kiln_llb_graph_node(g, 1)->op->exec;
    assert_int_equal(kiln_llb_graph_node(g, 1)->op->n_inputs, 1);
    assert_int_equal(e->n_mounts, 6);
    assert_string_equal(e->mounts[0]->dest, "/");
    assert_string_equal(e->mounts[1]->dest, "/a");
    assert_string_equal(e->mounts[2]->dest, "/c");
    assert_string_equal(e->mounts[3]->dest, "/ro");
    assert_string_equal(e->mounts[4]->dest, "/z");
    assert_string_equal(e->mounts[5]->dest, "/s"); /* secrets after the sorted mounts */
    assert_int_equal(e->mounts[5]->input, 0);      /* the Go client's zero values */
    assert_int_equal(e->mounts[5]->output, 0);
    assert_int_equal(e->mounts[1]->input, 0);
    assert_int_equal(e->mounts[3]->input, 0);
    assert_int_equal(e->mounts[3]->output, -1);
    assert_int_equal(e->mounts[4]->input, -1);
    assert_int_equal(kiln_llb_graph_terminal(g)->op->inputs[0]->index, 2);
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    kiln_llb_builder_free(b);
}

static bool
has_cap(const kiln_llb_node *n, const char *cap)
{
    for (size_t i = 0; n->metadata && i < n->metadata->n_caps; i++) {
        if (strcmp(n->metadata->caps[i]->key, cap) == 0)
            return n->metadata->caps[i]->value;
    }
    return false;
}

/* Meta of the exec `root` is marshalled into, re-encoded on its own. */
static const Pb__Meta *
exec_meta(kiln_llb_graph **g, kiln_buf *def, kiln_buf *meta, kiln_llb_builder *b,
          kiln_llb_state root, const kiln_llb_node **node)
{
    marshal_load(g, def, b, root);
    *node = kiln_llb_graph_node(*g, 1);
    assert_string_equal(kiln_llb_op_kind((*node)->op), "exec");
    kiln_buf_init(meta, 0);
    kiln_llb_encode(meta, &(*node)->op->exec->meta->base);
    return (*node)->op->exec->meta;
}

static void
test_llb_exec__proxy_env(void **state)
{
    kiln_llb_builder *b = NULL;
    kiln_llb_graph *g = NULL;
    kiln_buf def, meta;
    kiln_llb_state img, run;
    const char *args[] = {"true", NULL};
    kiln_llb_proxy_env pe = {.http_proxy = "h", .no_proxy = "n"};
    kiln_llb_proxy_env empty = {0};
    kiln_llb_exec_opts o = {.args = args, .proxy_env = &pe};
    const kiln_llb_node *n;
    const Pb__Meta *m;
    char with_proxy[KILN_DIGEST_STRLEN + 1];

    (void)state;
    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_image(&img, b, "busybox", NULL, NULL), 0);
    o.root = img;
    assert_int_equal(kiln_llb_exec(&run, b, &o, NULL), 0);
    m = exec_meta(&g, &def, &meta, b, run, &n);
    assert_non_null(m->proxy_env);
    assert_string_equal(m->proxy_env->http_proxy, "h");
    assert_string_equal(m->proxy_env->no_proxy, "n");
    assert_string_equal(m->proxy_env->https_proxy, "");
    assert_true(has_cap(n, "exec.meta.proxyenv"));
    /* args(1) cwd(3) proxy_env(5) = {http_proxy(1) "h", no_proxy(4) "n"}, then field 11 */
    assert_bytes(&meta, "0a04747275651a012f2a060a016822016e5801");
    memcpy(with_proxy, n->digest, sizeof(with_proxy));
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    kiln_buf_dispose(&meta);

    /* given but all empty: still written, as an empty message (llb.WithProxy(ProxyEnv{})) */
    o.proxy_env = &empty;
    assert_int_equal(kiln_llb_exec(&run, b, &o, NULL), 0);
    m = exec_meta(&g, &def, &meta, b, run, &n);
    assert_non_null(m->proxy_env);
    assert_bytes(&meta, "0a04747275651a012f2a005801");
    /* the proxy is part of the op, so of its digest */
    assert_string_not_equal(n->digest, with_proxy);
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    kiln_buf_dispose(&meta);

    /* none: no field, no cap */
    o.proxy_env = NULL;
    assert_int_equal(kiln_llb_exec(&run, b, &o, NULL), 0);
    m = exec_meta(&g, &def, &meta, b, run, &n);
    assert_null(m->proxy_env);
    assert_false(has_cap(n, "exec.meta.proxyenv"));
    assert_bytes(&meta, "0a04747275651a012f5801");
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    kiln_buf_dispose(&meta);
    kiln_llb_builder_free(b);
}

static void
test_llb_file__chain_indexes_and_owner(void **state)
{
    kiln_llb_builder *b = NULL;
    kiln_llb_graph *g = NULL;
    kiln_buf def;
    kiln_llb_state img, ctx;
    kiln_llb_vertex *f;
    kiln_llb_file_info info = {{"app", -1}, {NULL, 7}, 5};
    const Pb__FileOp *fo;

    (void)state;
    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_image(&img, b, "alpine", NULL, NULL), 0);
    assert_int_equal(kiln_llb_local(&ctx, b, "context", NULL, NULL), 0);
    kiln_llb_file_new(&f, b, img);
    assert_int_equal(kiln_llb_file_mkdir(f, "app/x", 0755, true, &info, NULL), 0);
    assert_int_equal(kiln_llb_file_copy(f, ctx, "src", "/app/", NULL, NULL), 0);
    assert_int_equal(kiln_llb_file_copy(f, img, "/etc/passwd", "/app/p", NULL, NULL), 0);
    marshal_load(&g, &def, b, kiln_llb_file_state(f));
    fo = kiln_llb_graph_node(g, 2)->op->file;
    assert_int_equal(kiln_llb_graph_node(g, 2)->op->n_inputs, 2); /* img deduplicated */
    assert_int_equal(fo->n_actions, 3);
    assert_int_equal(fo->actions[0]->input, 0);
    assert_int_equal(fo->actions[0]->output, -1);
    assert_string_equal(fo->actions[0]->mkdir->path, "/app/x");
    assert_int_equal(fo->actions[0]->mkdir->owner->user->byname->input, 0);
    assert_int_equal(fo->actions[0]->mkdir->owner->group->byid, 7);
    assert_int_equal(fo->actions[1]->input, 2); /* 2 inputs + action 0 */
    assert_int_equal(fo->actions[1]->secondaryinput, 1);
    assert_string_equal(fo->actions[1]->copy->src, "/src");
    assert_string_equal(fo->actions[1]->copy->dest, "/app/");
    assert_int_equal(fo->actions[1]->copy->mode, -1);
    assert_int_equal(fo->actions[2]->input, 3);
    assert_int_equal(fo->actions[2]->secondaryinput, 0);
    assert_int_equal(fo->actions[2]->output, 0);
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    kiln_llb_builder_free(b);
}

static void
test_llb_marshal__dedup_merge_diff_locations(void **state)
{
    kiln_llb_builder *b = NULL;
    kiln_llb_graph *g = NULL;
    kiln_buf def;
    kiln_llb_state a, a2, m, d, single;
    kiln_llb_range r = {1, 0, 1, 5};
    int32_t idx;
    const Pb__Definition *pd;

    (void)state;
    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_image(&a, b, "alpine", NULL, NULL), 0);
    assert_int_equal(kiln_llb_image(&a2, b, "docker.io/library/alpine:latest", NULL, NULL), 0);
    kiln_llb_merge(&single, b, (kiln_llb_state[]){KILN_LLB_SCRATCH, a}, 2);
    assert_ptr_equal(single.vertex, a.vertex);
    kiln_llb_diff(&d, b, KILN_LLB_SCRATCH, a2);
    kiln_llb_merge(&m, b, (kiln_llb_state[]){a, d, a2}, 3);
    kiln_llb_builder_add_source(&idx, b, "Dockerfile", "FROM alpine", 11, NULL);
    assert_int_equal(kiln_llb_vertex_add_location(m.vertex, idx, &r, 1, NULL), 0);
    assert_int_equal(kiln_llb_vertex_add_location(m.vertex, 5, &r, 1, NULL), KILN_EINVAL);
    marshal_load(&g, &def, b, m);
    /* the two images are the same op: emitted once; merge keeps 3 inputs (no dedup) */
    assert_int_equal(kiln_llb_graph_count(g), 4);
    assert_int_equal(kiln_llb_graph_node(g, 2)->op->merge->n_inputs, 3);
    assert_int_equal(kiln_llb_graph_node(g, 2)->op->n_inputs, 3);
    assert_int_equal(kiln_llb_graph_node(g, 1)->op->diff->lower->input, -1);
    assert_non_null(kiln_llb_graph_node(g, 2)->locations);
    pd = kiln_llb_graph_definition(g);
    assert_int_equal(pd->source->n_infos, 1);
    assert_string_equal(pd->source->infos[0]->filename, "Dockerfile");
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    kiln_llb_builder_free(b);
}

static void
test_llb_image__normalize(void **state)
{
    static const char *const cases[][2] = {
            {"alpine", "docker-image://docker.io/library/alpine:latest"},
            {"alpine:3.19", "docker-image://docker.io/library/alpine:3.19"},
            {"user/app", "docker-image://docker.io/user/app:latest"},
            {"index.docker.io/library/x:1", "docker-image://docker.io/library/x:1"},
            {"localhost:5000/a/b", "docker-image://localhost:5000/a/b:latest"},
            {"ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
             "docker-image://ghcr.io/o/r@sha256:0123456789abcdef0123456789abcdef0123456789abcdef"
             "0123456789abcdef"},
    };
    static const char *const bad[] = {"Alpine", "a//b", "a:", "a@sha256:12", "/a", ""};
    kiln_llb_builder *b = NULL;
    kiln_llb_state s;
    kiln_error *err = NULL;

    (void)state;
    kiln_llb_builder_new(&b);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(kiln_llb_image(&s, b, cases[i][0], NULL, NULL), 0);
        assert_string_equal(s.vertex->op.source->identifier, cases[i][1]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kiln_llb_image(&s, b, bad[i], NULL, &err), KILN_EINVAL);
        kiln_error_free(&err);
    }
    assert_int_equal(kiln_llb_image(&s, b, "alpine", "sometimes", &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_llb_git(&s, b, "git@github.com:moby/buildkit.git", "main", NULL, NULL),
                     0);
    assert_string_equal(s.vertex->op.source->identifier,
                        "git://git@github.com/moby/buildkit.git#main");
    assert_int_equal(kiln_llb_http(&s, b, "ftp://x", NULL, &err), KILN_EINVAL);
    kiln_error_free(&err);
    kiln_llb_builder_free(b);
}

static void
test_llb_builder__errors(void **state)
{
    kiln_llb_builder *b = NULL;
    kiln_error *err = NULL;
    kiln_buf def = KILN_BUF_INIT;
    kiln_llb_state img, s;
    kiln_llb_vertex *f;
    const char *args[] = {"true", NULL};
    const char *noargs[] = {NULL};
    kiln_llb_mount rel[] = {{.dest = "rel"}};
    kiln_llb_mount dup[] = {{.dest = "/x"}, {.dest = "/x"}};
    kiln_llb_mount tmpfs_src[] = {{.dest = "/t", .type = KILN_LLB_MOUNT_TMPFS}};
    kiln_llb_exec_opts o = {.args = noargs};

    (void)state;
    kiln_llb_builder_new(&b);
    assert_int_equal(kiln_llb_image(&img, b, "alpine", NULL, NULL), 0);
    assert_int_equal(kiln_llb_exec(&s, b, &o, &err), KILN_EINVAL);
    kiln_error_free(&err);
    o.args = args;
    o.mounts = rel;
    o.n_mounts = 1;
    assert_int_equal(kiln_llb_exec(&s, b, &o, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "not absolute"));
    kiln_error_free(&err);
    o.mounts = dup;
    o.n_mounts = 2;
    assert_int_equal(kiln_llb_exec(&s, b, &o, &err), KILN_EINVAL);
    kiln_error_free(&err);
    tmpfs_src[0].source = img;
    o.mounts = tmpfs_src;
    o.n_mounts = 1;
    assert_int_equal(kiln_llb_exec(&s, b, &o, &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_llb_marshal(&def, b, KILN_LLB_SCRATCH, NULL, &err), KILN_EINVAL);
    kiln_error_free(&err);
    kiln_llb_file_new(&f, b, img);
    assert_int_equal(kiln_llb_marshal(&def, b, kiln_llb_file_state(f), NULL, &err), KILN_EINVAL);
    kiln_error_free(&err);
    /* a file op copying from its own output depends on itself */
    assert_int_equal(kiln_llb_file_copy(f, kiln_llb_file_state(f), "/a", "/b", NULL, NULL), 0);
    assert_int_equal(kiln_llb_marshal(&def, b, kiln_llb_file_state(f), NULL, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "depends on itself"));
    kiln_error_free(&err);
    /* output 3 of an image does not exist */
    img.output = 3;
    assert_int_equal(kiln_llb_marshal(&def, b, img, NULL, &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(def.len, 0);
    kiln_llb_builder_free(b);
}

/* ---- loader validation ---- */

/* [source, exec-like op built by caller, terminal]: the middle op given as bytes. */
static void
def_with_middle(kiln_buf *def, Pb__Op *middle)
{
    kiln_buf ops[3];
    char d[KILN_DIGEST_STRLEN + 1];

    source_op_bytes(&ops[0]);
    encode_op(&ops[1], middle);
    op_digest(d, &ops[1]);
    terminal_bytes(&ops[2], d, 0);
    kiln_buf_init(def, 0);
    make_definition(def, ops, 3);
    dispose_bufs(ops, 3);
}

static void
test_llb_load__not_protobuf_and_sizes(void **state)
{
    kiln_buf def = KILN_BUF_INIT;
    kiln_buf ops[2];
    char d[KILN_DIGEST_STRLEN + 1];
    static const char huge_len[] = "\x0a\xff\xff\xff\xff\x0f"; /* def entry of 4 GiB */
    kiln_error *err = NULL;
    kiln_llb_graph *g = NULL;
    uint8_t *big;

    (void)state;
    kiln_buf_put(&def, "\xff\xff\xff", 3, NULL);
    expect_load_error(&def, KILN_EPARSE, "truncated");
    kiln_buf_clear(&def);
    kiln_buf_put(&def, huge_len, sizeof(huge_len) - 1, NULL);
    expect_load_error(&def, KILN_EPARSE, "exceeds");
    kiln_buf_clear(&def);
    kiln_buf_put(&def, "\x0b\x00", 2, NULL); /* group wire type */
    expect_load_error(&def, KILN_EPARSE, "wire type");
    kiln_buf_clear(&def);
    expect_load_error(&def, KILN_EINVAL, "0 ops");

    source_op_bytes(&ops[0]);
    kiln_buf_clear(&def);
    make_definition(&def, ops, 1);
    expect_load_error(&def, KILN_EINVAL, "1 ops");
    op_digest(d, &ops[0]);
    terminal_bytes(&ops[1], d, 0);
    kiln_buf_clear(&def);
    make_definition(&def, ops, 2);
    assert_int_equal(kiln_llb_load(&g, def.ptr, def.len, NULL), 0);
    kiln_llb_graph_free(g);
    dispose_bufs(ops, 2);

    /* over the Definition cap: rejected before reading a byte (calloc'd pages stay untouched) */
    big = calloc(KILN_LLB_MAX_DEFINITION + 1, 1);
    assert_non_null(big);
    assert_int_equal(kiln_llb_load(&g, big, KILN_LLB_MAX_DEFINITION + 1, &err), KILN_EINVAL);
    kiln_error_free(&err);
    free(big);
    /* one op over the 16 MiB cap */
    kiln_buf_clear(&def);
    kiln_buf_put(&def, "\x0a\x81\x80\x80\x08", 5, NULL); /* field 1, length 16 MiB + 1 */
    kiln_buf_grow(&def, KILN_LLB_MAX_OP + 1, NULL);
    memset(def.ptr + def.len, 0, KILN_LLB_MAX_OP + 1);
    def.len += KILN_LLB_MAX_OP + 1;
    kiln_buf_put(&def, "\x0a\x00", 2, NULL);
    expect_load_error(&def, KILN_EINVAL, "over the");
    kiln_buf_dispose(&def);
}

static void
test_llb_load__terminal_and_kind(void **state)
{
    kiln_buf ops[3], def = KILN_BUF_INIT;
    char d[KILN_DIGEST_STRLEN + 1];
    Pb__Op op = PB__OP__INIT;
    Pb__Input in = PB__INPUT__INIT;
    Pb__Input *ins[] = {&in, &in};

    (void)state;
    source_op_bytes(&ops[0]);
    op_digest(d, &ops[0]);
    /* terminal with two inputs */
    in.digest = d;
    op.n_inputs = 2;
    op.inputs = ins;
    encode_op(&ops[1], &op);
    make_definition(&def, ops, 2);
    expect_load_error(&def, KILN_EINVAL, "terminal op has 2 inputs");
    kiln_buf_dispose(&ops[1]);
    /* terminal without inputs */
    op.n_inputs = 0;
    encode_op(&ops[1], &op);
    kiln_buf_clear(&def);
    make_definition(&def, ops, 2);
    expect_load_error(&def, KILN_EINVAL, "terminal op has 0 inputs");
    kiln_buf_dispose(&ops[1]);
    /* a terminal op with a kind is validated like any op (found by the fuzzer) */
    {
        Pb__ExecOp exec = PB__EXEC_OP__INIT;
        op.n_inputs = 1;
        op.op_case = PB__OP__OP_EXEC;
        op.exec = &exec;
        encode_op(&ops[1], &op);
        kiln_buf_clear(&def);
        make_definition(&def, ops, 2);
        expect_load_error(&def, KILN_EINVAL, "exec op without command arguments");
        kiln_buf_dispose(&ops[1]);
        op.op_case = PB__OP__OP__NOT_SET;
    }
    /* middle op with no kind (an op field from the future lands in unknown fields) */
    kiln_buf_init(&ops[1], 0);
    kiln_buf_put(&ops[1], "\x62\x00", 2, NULL); /* field 12, empty */
    kiln_llb__digest_bytes(d, ops[1].ptr, ops[1].len);
    terminal_bytes(&ops[2], d, 0);
    kiln_buf_clear(&def);
    make_definition(&def, ops, 3);
    expect_load_error(&def, KILN_EINVAL, "no known op kind");
    dispose_bufs(ops, 3);
    kiln_buf_dispose(&def);
}

static void
test_llb_load__inputs(void **state)
{
    kiln_buf src, def = KILN_BUF_INIT;
    char d[KILN_DIGEST_STRLEN + 1];
    Pb__Op op = PB__OP__INIT;
    Pb__Input in = PB__INPUT__INIT;
    Pb__Input *ins[] = {&in};
    Pb__MergeOp merge = PB__MERGE_OP__INIT;
    Pb__MergeInput mi = PB__MERGE_INPUT__INIT;
    Pb__MergeInput *mis[] = {&mi};

    (void)state;
    source_op_bytes(&src);
    op_digest(d, &src);
    merge.n_inputs = 1;
    merge.inputs = mis;
    op.op_case = PB__OP__OP_MERGE;
    op.merge = &merge;
    op.n_inputs = 1;
    op.inputs = ins;
    in.digest = d;

    in.index = 1; /* a source has one output */
    def_with_middle(&def, &op);
    expect_load_error(&def, KILN_EINVAL, "out of range");
    in.index = -1;
    kiln_buf_dispose(&def);
    def_with_middle(&def, &op);
    expect_load_error(&def, KILN_EINVAL, "out of range");
    in.index = 0;
    mi.input = 1; /* merge input index past Op.inputs */
    kiln_buf_dispose(&def);
    def_with_middle(&def, &op);
    expect_load_error(&def, KILN_EINVAL, "merge input 0: input index 1 out of range");
    mi.input = 0;
    in.digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    kiln_buf_dispose(&def);
    def_with_middle(&def, &op);
    expect_load_error(&def, KILN_EINVAL, "not in the definition");
    kiln_buf_dispose(&def);
    kiln_buf_dispose(&src);
}

static void
test_llb_load__mount_and_action_indexes(void **state)
{
    kiln_buf def = KILN_BUF_INIT, src;
    char d[KILN_DIGEST_STRLEN + 1];
    Pb__Op op = PB__OP__INIT;
    Pb__Input in = PB__INPUT__INIT;
    Pb__Input *ins[] = {&in};
    Pb__ExecOp exec = PB__EXEC_OP__INIT;
    Pb__Meta meta = PB__META__INIT;
    Pb__Mount mount = PB__MOUNT__INIT;
    Pb__Mount *mounts[] = {&mount};
    char *args[] = {"true"};
    Pb__FileOp file = PB__FILE_OP__INIT;
    Pb__FileAction a0 = PB__FILE_ACTION__INIT, a1 = PB__FILE_ACTION__INIT;
    Pb__FileAction *acts[] = {&a0, &a1};
    Pb__FileActionRm rm = PB__FILE_ACTION_RM__INIT;

    (void)state;
    source_op_bytes(&src);
    op_digest(d, &src);
    in.digest = d;
    op.n_inputs = 1;
    op.inputs = ins;
    meta.n_args = 1;
    meta.args = args;
    exec.meta = &meta;
    exec.n_mounts = 1;
    exec.mounts = mounts;
    op.op_case = PB__OP__OP_EXEC;
    op.exec = &exec;
    mount.dest = "/";
    mount.input = 2;
    def_with_middle(&def, &op);
    expect_load_error(&def, KILN_EINVAL, "mount 0: input index 2 out of range");
    kiln_buf_dispose(&def);
    mount.input = 0;
    exec.meta = NULL;
    def_with_middle(&def, &op);
    expect_load_error(&def, KILN_EINVAL, "without command");
    kiln_buf_dispose(&def);

    rm.path = "/x";
    a0.action_case = a1.action_case = PB__FILE_ACTION__ACTION_RM;
    a0.rm = a1.rm = &rm;
    a0.input = 2; /* 1 input + action 1: a forward reference, i.e. a loop */
    a0.secondaryinput = a1.secondaryinput = -1;
    a1.input = 1;
    file.n_actions = 2;
    file.actions = acts;
    op.op_case = PB__OP__OP_FILE;
    op.file = &file;
    def_with_middle(&def, &op);
    expect_load_error(&def, KILN_EINVAL, "file action 0: input index 2 out of range");
    kiln_buf_dispose(&def);
    a0.input = 0;
    def_with_middle(&def, &op);
    {
        kiln_llb_graph *g = NULL;
        assert_int_equal(kiln_llb_load(&g, def.ptr, def.len, NULL), 0);
        kiln_llb_graph_free(g);
    }
    kiln_buf_dispose(&def);
    kiln_buf_dispose(&src);
}

static void
test_llb_load__bad_strings(void **state)
{
    static const char nul[] = "\x1a\x05\x0a\x03\x61\x00\x62"; /* identifier "a\0b" */
    static const char latin1[] = "\x1a\x04\x0a\x02\x61\xe9";  /* identifier "a\xe9" */
    kiln_buf ops[2], def = KILN_BUF_INIT;
    char d[KILN_DIGEST_STRLEN + 1];

    (void)state;
    kiln_buf_init(&ops[0], 0);
    kiln_buf_put(&ops[0], nul, sizeof(nul) - 1, NULL);
    op_digest(d, &ops[0]);
    terminal_bytes(&ops[1], d, 0);
    make_definition(&def, ops, 2);
    expect_load_error(&def, KILN_EPARSE,
                      "pb.Op.source.identifier at offset 0: NUL character at byte 1");
    dispose_bufs(ops, 2);
    kiln_buf_clear(&def);
    kiln_buf_init(&ops[0], 0);
    kiln_buf_put(&ops[0], latin1, sizeof(latin1) - 1, NULL);
    op_digest(d, &ops[0]);
    terminal_bytes(&ops[1], d, 0);
    make_definition(&def, ops, 2);
    expect_load_error(&def, KILN_EPARSE, "invalid UTF-8 at byte 1");
    dispose_bufs(ops, 2);
    kiln_buf_dispose(&def);
}

static void
test_llb_load__cycle(void **state)
{
    static const char da[] =
            "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    static const char db[] =
            "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const char *digests[] = {da, db, "sha256:t"};
    kiln_buf ops[3], def = KILN_BUF_INIT;
    Pb__Op op = PB__OP__INIT;
    Pb__Input in = PB__INPUT__INIT;
    Pb__Input *ins[] = {&in};
    Pb__MergeOp merge = PB__MERGE_OP__INIT;
    Pb__MergeInput mi = PB__MERGE_INPUT__INIT;
    Pb__MergeInput *mis[] = {&mi};
    kiln_error *err = NULL;
    kiln_llb_graph *g = NULL;

    (void)state;
    /* real sha256 digests cannot form a cycle; the test hook assigns digests a -> b -> a */
    merge.n_inputs = 1;
    merge.inputs = mis;
    op.op_case = PB__OP__OP_MERGE;
    op.merge = &merge;
    op.n_inputs = 1;
    op.inputs = ins;
    in.digest = (char *)db;
    encode_op(&ops[0], &op);
    in.digest = (char *)da;
    encode_op(&ops[1], &op);
    terminal_bytes(&ops[2], da, 0);
    make_definition(&def, ops, 3);
    assert_int_equal(kiln_llb__load_with_digests(&g, def.ptr, def.len, digests, &err), KILN_EINVAL);
    assert_non_null(strstr(err->msg, "cycle"));
    kiln_error_free(&err);
    dispose_bufs(ops, 3);
    kiln_buf_dispose(&def);
}

static void
test_llb_load__deep_nesting_rejected(void **state)
{
    /* Definition{Source{infos: [SourceInfo{definition: Definition{...}}]}} nested 200 times:
     * protobuf-c would recurse without limit; the wire check stops at KILN_LLB_MAX_DEPTH */
    enum { N = 200 };
    Pb__Definition *defs = xcalloc(N, sizeof(*defs));
    Pb__Source *srcs = xcalloc(N, sizeof(*srcs));
    Pb__SourceInfo *infos = xcalloc(N, sizeof(*infos));
    Pb__SourceInfo **infop = xcalloc(N, sizeof(*infop));
    kiln_buf out = KILN_BUF_INIT;

    (void)state;
    for (int i = 0; i < N; i++) {
        pb__definition__init(&defs[i]);
        pb__source__init(&srcs[i]);
        pb__source_info__init(&infos[i]);
        defs[i].source = &srcs[i];
        infop[i] = &infos[i];
        srcs[i].n_infos = 1;
        srcs[i].infos = &infop[i];
        infos[i].definition = i + 1 < N ? &defs[i + 1] : NULL;
    }
    kiln_llb_encode(&out, &defs[0].base);
    expect_load_error(&out, KILN_EPARSE, "nested deeper");
    kiln_buf_dispose(&out);
    free(defs);
    free(srcs);
    free(infos);
    free(infop);
}

static void
test_llb_load__noncanonical_oneof_merge(void **state)
{
    /* Op{file: {actions:[rm a]}} then Op{platform} then Op{file: {actions:[rm b]}}: protobuf
     * merges both occurrences of the oneof member (2 actions); the canonical bytes differ */
    Pb__Op op = PB__OP__INIT;
    Pb__FileOp file = PB__FILE_OP__INIT;
    Pb__FileAction act = PB__FILE_ACTION__INIT;
    Pb__FileAction *acts[] = {&act};
    Pb__FileActionRm rm = PB__FILE_ACTION_RM__INIT;
    Pb__Platform plat = PB__PLATFORM__INIT;
    kiln_buf ops[2], def = KILN_BUF_INIT, canon = KILN_BUF_INIT;
    char d[KILN_DIGEST_STRLEN + 1], c[KILN_DIGEST_STRLEN + 1];
    kiln_llb_graph *g = NULL;
    const kiln_llb_node *n;
    kiln_error *err = NULL;

    (void)state;
    act.input = -1;
    act.secondaryinput = -1;
    act.action_case = PB__FILE_ACTION__ACTION_RM;
    act.rm = &rm;
    file.n_actions = 1;
    file.actions = acts;
    op.op_case = PB__OP__OP_FILE;
    op.file = &file;
    kiln_buf_init(&ops[0], 0);
    rm.path = "/a";
    kiln_llb_encode(&ops[0], &op.base);
    op.op_case = PB__OP__OP__NOT_SET;
    op.platform = &plat;
    plat.os = "linux";
    kiln_llb_encode(&ops[0], &op.base);
    op.platform = NULL;
    op.op_case = PB__OP__OP_FILE;
    rm.path = "/b";
    kiln_llb_encode(&ops[0], &op.base);
    op_digest(d, &ops[0]);
    terminal_bytes(&ops[1], d, 0);
    make_definition(&def, ops, 2);
    if (kiln_llb_load(&g, def.ptr, def.len, &err) < 0)
        fail_msg("load: %s", err->msg);
    n = kiln_llb_graph_node(g, 0);
    assert_int_equal(n->op->file->n_actions, 2);
    assert_string_equal(n->op->file->actions[1]->rm->path, "/b");
    assert_string_equal(n->op->platform->os, "linux");
    kiln_llb_encode(&canon, &n->op->base);
    op_digest(c, &canon);
    assert_string_equal(n->digest, d);
    assert_string_equal(n->canonical_digest, c);
    assert_string_not_equal(c, d);
    /* the terminal's canonical digest is computed over the rewritten input digest */
    assert_string_not_equal(kiln_llb_graph_terminal(g)->canonical_digest,
                            kiln_llb_graph_terminal(g)->digest);
    kiln_llb_graph_free(g);
    dispose_bufs(ops, 2);
    kiln_buf_dispose(&def);
    kiln_buf_dispose(&canon);
}

static void
test_llb_json__protojson_and_dump(void **state)
{
    kiln_buf def = KILN_BUF_INIT;
    kiln_llb_graph *g = NULL;
    json_t *j;
    char *s;
    FILE *mem;
    char *text = NULL;
    size_t text_len = 0;

    (void)state;
    assert_int_equal(kiln_llb_example(&def, "everything", NULL), 0);
    assert_int_equal(kiln_llb_load(&g, def.ptr, def.len, NULL), 0);
    for (size_t i = 0; i < kiln_llb_graph_count(g); i++) {
        const kiln_llb_node *n = kiln_llb_graph_node(g, i);
        if (n->op->op_case != PB__OP__OP_EXEC)
            continue;
        j = kiln_llb_to_json(&n->op->base);
        s = json_dumps(j, JSON_COMPACT);
        assert_non_null(strstr(s, "\"mountType\":\"CACHE\""));
        assert_non_null(strstr(s, "\"Soft\":\"1024\"")); /* int64 as string */
        assert_non_null(strstr(s, "\"validExitCodes\":[0,1,-1]"));
        assert_non_null(strstr(s, "\"network\":\"HOST\""));
        free(s);
        json_decref(j);
    }
    mem = open_memstream(&text, &text_len);
    assert_int_equal(kiln_llb_dump(mem, g, true, NULL), 0);
    fclose(mem);
    assert_non_null(strstr(text, "{\"Op\":{\"source\":"));
    assert_non_null(strstr(text, "\"Digest\":\"sha256:"));
    free(text);
    kiln_llb_graph_free(g);
    kiln_buf_dispose(&def);
    assert_int_equal(kiln_llb_example(&def, "nope", NULL), KILN_ENOTFOUND);
}

static void
test_llb_examples__load_canonical(void **state)
{
    const char *const *names = kiln_llb_example_names();

    (void)state;
    for (size_t i = 0; names[i]; i++) {
        kiln_buf def = KILN_BUF_INIT, again = KILN_BUF_INIT;
        kiln_llb_graph *g = NULL;
        kiln_error *err = NULL;
        assert_int_equal(kiln_llb_example(&def, names[i], NULL), 0);
        if (kiln_llb_load(&g, def.ptr, def.len, &err) < 0)
            fail_msg("%s: %s", names[i], err->msg);
        for (size_t k = 0; k < kiln_llb_graph_count(g); k++) {
            const kiln_llb_node *n = kiln_llb_graph_node(g, k);
            assert_string_equal(n->digest, n->canonical_digest);
        }
        /* the Definition itself re-encodes to the same bytes */
        kiln_llb_encode(&again, &kiln_llb_graph_definition(g)->base);
        assert_int_equal(again.len, def.len);
        assert_memory_equal(again.ptr, def.ptr, def.len);
        kiln_llb_graph_free(g);
        kiln_buf_dispose(&def);
        kiln_buf_dispose(&again);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_llb_encode__maps_sorted_last_wins_zero_values),
            cmocka_unit_test(test_llb_encode__field_order_packed_negative),
            cmocka_unit_test(test_llb_encode__oneof_zero_value_written),
            cmocka_unit_test(test_llb_roundtrip__hello),
            cmocka_unit_test(test_llb_exec__mount_order_outputs_dedup),
            cmocka_unit_test(test_llb_exec__proxy_env),
            cmocka_unit_test(test_llb_file__chain_indexes_and_owner),
            cmocka_unit_test(test_llb_marshal__dedup_merge_diff_locations),
            cmocka_unit_test(test_llb_image__normalize),
            cmocka_unit_test(test_llb_builder__errors),
            cmocka_unit_test(test_llb_load__not_protobuf_and_sizes),
            cmocka_unit_test(test_llb_load__terminal_and_kind),
            cmocka_unit_test(test_llb_load__inputs),
            cmocka_unit_test(test_llb_load__mount_and_action_indexes),
            cmocka_unit_test(test_llb_load__bad_strings),
            cmocka_unit_test(test_llb_load__cycle),
            cmocka_unit_test(test_llb_load__deep_nesting_rejected),
            cmocka_unit_test(test_llb_load__noncanonical_oneof_merge),
            cmocka_unit_test(test_llb_json__protojson_and_dump),
            cmocka_unit_test(test_llb_examples__load_canonical),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
