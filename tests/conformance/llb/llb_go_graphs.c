/*
 * llb_go_graphs.c: the graphs of go_client.go built with kiln's LLB builder; writes the
 * Definition of graph argv[1] to stdout. llb_go_compare.py checks that the bytes are identical
 * to those of BuildKit's Go client.
 */
#include "base/buf.h"
#include "base/fs.h"
#include "llb/llb.h"

#include "base/base.h"

#define UNIQUE_ID "kiln-fixed-unique-id"

static int
graph_hello(kiln_llb_state *out, kiln_llb_builder *b, kiln_error **err)
{
    const char *args[] = {"/bin/sh", "-c", "echo hello > /hello", NULL};
    const char *env[] = {"PATH=/usr/bin:/bin", NULL};
    kiln_llb_exec_opts o = {.args = args, .env = env};
    int ret;

    if ((ret = kiln_llb_image(&o.root, b, "alpine", NULL, err)) < 0 ||
        (ret = kiln_llb_exec(out, b, &o, err)) < 0)
        return ret;
    kiln_llb_vertex_set_custom_name(out->vertex, "RUN echo");
    return 0;
}

static int
graph_mounts(kiln_llb_state *out, kiln_llb_builder *b, kiln_error **err)
{
    const char *inc[] = {"*.go", "a<b", NULL};
    const char *args[] = {"make", NULL};
    kiln_llb_local_opts lo = {
            .include_patterns = inc, .shared_key_hint = "context", .unique_id = UNIQUE_ID};
    kiln_llb_state img, ctx, src, root, merged;
    kiln_llb_mount ms[] = {
            {.dest = "/src", .selector = "/sub", .result = &src},
            {.dest = "/ro", .readonly = true},
            {.dest = "/cache",
             .type = KILN_LLB_MOUNT_CACHE,
             .cache_id = "gocache",
             .sharing = KILN_LLB_CACHE_LOCKED},
            {.dest = "/tmp", .type = KILN_LLB_MOUNT_TMPFS, .tmpfs_size = 64 << 20},
            /* Go's AddSecret defaults: mode 0400, uid/gid 0 */
            {.dest = "/run/secrets/tok", .type = KILN_LLB_MOUNT_SECRET, .id = "tok", .mode = 0400},
    };
    kiln_llb_exec_opts o = {.args = args,
                            .cwd = "/src",
                            .user = "builder",
                            .network = PB__NET_MODE__HOST,
                            .mounts = ms,
                            .n_mounts = 5};
    int ret;

    if ((ret = kiln_llb_image(&img, b, "busybox:1.36", NULL, err)) < 0 ||
        (ret = kiln_llb_local(&ctx, b, "context", &lo, err)) < 0)
        return ret;
    o.root = img;
    ms[0].source = ctx;
    ms[1].source = ctx;
    if ((ret = kiln_llb_exec(&root, b, &o, err)) < 0)
        return ret;
    kiln_llb_merge(&merged, b, (kiln_llb_state[]){src, root}, 2);
    kiln_llb_diff(out, b, img, merged);
    return 0;
}

static int
graph_files(kiln_llb_state *out, kiln_llb_builder *b, kiln_error **err)
{
    kiln_llb_local_opts lo = {.unique_id = UNIQUE_ID};
    kiln_llb_file_info owner = {{"app", -1}, {NULL, -1}, -1};
    kiln_llb_copy_opts co = KILN_LLB_COPY_OPTS_INIT;
    kiln_llb_state img, ctx;
    kiln_llb_vertex *f;
    int ret;

    co.create_dest_path = true;
    co.allow_wildcard = true;
    if ((ret = kiln_llb_image(&img, b, "golang:1.22", NULL, err)) < 0 ||
        (ret = kiln_llb_local(&ctx, b, "context", &lo, err)) < 0)
        return ret;
    kiln_llb_file_new(&f, b, img);
    if ((ret = kiln_llb_file_mkdir(f, "/app", 0755, true, &owner, err)) < 0 ||
        (ret = kiln_llb_file_mkfile(f, "/app/hello.txt", 0644, "hello, world\n", 13, NULL, err)) <
                0 ||
        (ret = kiln_llb_file_copy(f, ctx, "/", "/app/src/", &co, err)) < 0 ||
        (ret = kiln_llb_file_rm(f, "/app/*.tmp", true, true, err)) < 0)
        return ret;
    *out = kiln_llb_file_state(f);
    return 0;
}

static int
graph_git(kiln_llb_state *out, kiln_llb_builder *b, kiln_error **err)
{
    kiln_llb_git_opts go = {.keep_git_dir = true};

    return kiln_llb_git(out, b, "https://github.com/moby/buildkit.git", "v0.11.6", &go, err);
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(kiln_llb_state *, kiln_llb_builder *, kiln_error **);
    } graphs[] = {{"hello", graph_hello},
                  {"mounts", graph_mounts},
                  {"files", graph_files},
                  {"git", graph_git}};
    kiln_llb_platform amd64 = {"linux", "amd64", NULL, NULL};
    cleanup_kiln_error kiln_error *err = NULL;
    kiln_llb_builder *b = NULL;
    kiln_buf out = KILN_BUF_INIT;
    kiln_llb_state st;
    int ret = KILN_ENOTFOUND;

    if (argc != 2) {
        fprintf(stderr, "usage: llb_go_graphs hello|mounts|files|git\n");
        return 2;
    }
    kiln_llb_builder_new(&b);
    kiln_llb_builder_set_platform(b, &amd64);
    for (size_t i = 0; i < sizeof(graphs) / sizeof(graphs[0]); i++) {
        if (strcmp(graphs[i].name, argv[1]) != 0)
            continue;
        ret = graphs[i].fn(&st, b, &err);
        if (ret == 0)
            ret = kiln_llb_marshal(&out, b, st, NULL, &err);
        if (ret == 0)
            ret = kiln_fd_write_all(STDOUT_FILENO, out.ptr, out.len, &err);
    }
    if (ret == KILN_ENOTFOUND && !err)
        fprintf(stderr, "llb_go_graphs: unknown graph `%s`\n", argv[1]);
    else if (ret < 0)
        fprintf(stderr, "llb_go_graphs: %s\n", err->msg);
    kiln_buf_dispose(&out);
    kiln_llb_builder_free(b);
    return ret < 0 ? 1 : 0;
}
