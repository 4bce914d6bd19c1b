/*
 * llb_examples.c: example Definitions built with the builder API, for `kiln debug make-llb`, the
 * unit tests and the Python conformance test (which re-serialises them with Go-compatible
 * deterministic protobuf and compares the bytes).
 */
#include "llb/llb_internal.h"

#include "base/base.h"

static const kiln_llb_platform linux_amd64 = {"linux", "amd64", NULL, NULL};

/* The image an example starts from: `ref` (with its resolve mode), or, when the caller gives one,
 * the source identifier `base` instead (e.g. a local OCI layout, for building offline). */
static int
example_image(kiln_llb_state *out, kiln_llb_builder *b, const char *ref, const char *mode,
              const char *base, kiln_error **err)
{
    if (base)
        return kiln_llb_source(out, b, base, NULL, 0, err);
    return kiln_llb_image(out, b, ref, mode, err);
}

static int
example_hello(kiln_llb_state *out, kiln_llb_builder *b, const char *base, kiln_error **err)
{
    const char *args[] = {"/bin/sh", "-c", "echo hello > /hello", NULL};
    const char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    kiln_llb_exec_opts o = {.args = args, .env = env};
    int ret;

    if ((ret = example_image(&o.root, b, "alpine", NULL, base, err)) < 0 ||
        (ret = kiln_llb_exec(out, b, &o, err)) < 0)
        return ret;
    kiln_llb_vertex_set_custom_name(out->vertex, "RUN echo hello > /hello");
    return 0;
}

static int
example_parallel(kiln_llb_state *out, kiln_llb_builder *b, const char *base, kiln_error **err)
{
    static const char *const cmds[3][4] = {{"/bin/sh", "-c", "echo a > /a", NULL},
                                           {"/bin/sh", "-c", "echo b > /b", NULL},
                                           {"/bin/sh", "-c", "echo c > /c", NULL}};
    kiln_llb_state img, runs[3];
    int ret;

    if ((ret = example_image(&img, b, "docker.io/library/busybox:1.36", NULL, base, err)) < 0)
        return ret;
    for (size_t i = 0; i < 3; i++) {
        kiln_llb_exec_opts o = {.root = img, .args = cmds[i]};
        if ((ret = kiln_llb_exec(&runs[i], b, &o, err)) < 0)
            return ret;
        kiln_llb_diff(&runs[i], b, img, runs[i]);
    }
    kiln_llb_merge(out, b, (kiln_llb_state[]){img, runs[0], runs[1], runs[2]}, 4);
    return 0;
}

static int
example_files(kiln_llb_state *out, kiln_llb_builder *b, const char *base, kiln_error **err)
{
    static const char hello[] = "hello, world\n";
    kiln_llb_file_info owned = {{"app", -1}, {NULL, 1000}, 1700000000000000000LL};
    kiln_llb_copy_opts copy = KILN_LLB_COPY_OPTS_INIT;
    const char *include[] = {"*.go", "go.mod", NULL};
    kiln_llb_local_opts lo = {.include_patterns = include, .shared_key_hint = "context"};
    kiln_llb_state ctx, img;
    kiln_llb_vertex *f;
    int ret;

    if ((ret = kiln_llb_local(&ctx, b, "context", &lo, err)) < 0 ||
        (ret = example_image(&img, b, "golang:1.22", NULL, base, err)) < 0)
        return ret;
    kiln_llb_file_new(&f, b, img);
    copy.create_dest_path = true;
    copy.allow_wildcard = true;
    copy.mode = 0644;
    if ((ret = kiln_llb_file_mkdir(f, "/app", 0755, true, &owned, err)) < 0 ||
        (ret = kiln_llb_file_mkfile(f, "/app/hello.txt", 0644, hello, sizeof(hello) - 1, NULL,
                                    err)) < 0 ||
        (ret = kiln_llb_file_copy(f, ctx, "/", "/app/src/", &copy, err)) < 0 ||
        (ret = kiln_llb_file_symlink(f, "hello.txt", "/app/greeting", NULL, err)) < 0 ||
        (ret = kiln_llb_file_rm(f, "/app/*.tmp", true, true, err)) < 0)
        return ret;
    kiln_llb_vertex_set_custom_name(f, "COPY . /app/src/");
    *out = kiln_llb_file_state(f);
    return 0;
}

/* Exec with every kind of mount and most Meta fields. */
static int
everything_exec(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state root, kiln_llb_state ctx,
                kiln_error **err)
{
    const char *args[] = {"/bin/sh", "-c", "make install", NULL};
    const char *env[] = {"PATH=/usr/bin:/bin", "CC=gcc", NULL};
    kiln_llb_state src_out;
    kiln_llb_mount mounts[] = {
            {.dest = "/src", .source = ctx, .selector = "/sub", .result = &src_out},
            {.dest = "/ro", .source = ctx, .readonly = true},
            {.dest = "/root/.cache",
             .type = KILN_LLB_MOUNT_CACHE,
             .cache_id = "gocache",
             .sharing = KILN_LLB_CACHE_LOCKED},
            {.dest = "/tmp", .type = KILN_LLB_MOUNT_TMPFS, .tmpfs_size = 64 << 20},
            {.dest = "/run/secrets/token",
             .type = KILN_LLB_MOUNT_SECRET,
             .id = "token",
             .uid = 1000,
             .gid = 1000,
             .mode = 0400,
             .optional = true},
            {.dest = "/run/ssh", .type = KILN_LLB_MOUNT_SSH, .id = "default", .mode = 0600},
    };
    kiln_llb_host_ip hosts[] = {{"db", "10.0.0.2"}};
    kiln_llb_ulimit ulimits[] = {{"nofile", 1024, 4096}};
    kiln_llb_secret_env senv[] = {{"apikey", "API_KEY", false}};
    int32_t codes[] = {0, 1, -1};
    kiln_llb_exec_opts o = {.root = root,
                            .args = args,
                            .env = env,
                            .cwd = "/src",
                            .user = "builder",
                            .hostname = "buildhost",
                            .network = PB__NET_MODE__HOST,
                            .security = PB__SECURITY_MODE__INSECURE,
                            .extra_hosts = hosts,
                            .n_extra_hosts = 1,
                            .ulimits = ulimits,
                            .n_ulimits = 1,
                            .secret_env = senv,
                            .n_secret_env = 1,
                            .valid_exit_codes = codes,
                            .n_valid_exit_codes = 3,
                            .cgroup_parent = "kiln.slice",
                            .mounts = mounts,
                            .n_mounts = sizeof(mounts) / sizeof(mounts[0])};
    int ret;

    if ((ret = kiln_llb_exec(out, b, &o, err)) < 0)
        return ret;
    kiln_llb_vertex_set_ignore_cache(out->vertex, true);
    kiln_llb_vertex_set_progress_group(out->vertex, "pg1", "build stage", true);
    kiln_llb_vertex_set_export_cache(out->vertex, true);
    kiln_llb_vertex_add_constraint(out->vertex, "labels.worker==a");
    *out = src_out;
    return 0;
}

static int
example_everything(kiln_llb_state *out, kiln_llb_builder *b, const char *base, kiln_error **err)
{
    static const char df[] = "FROM alpine\nRUN make install\n";
    const char *exclude[] = {"node_modules", ".git", NULL};
    kiln_llb_local_opts lo = {.exclude_patterns = exclude, .session_id = "s1"};
    kiln_llb_git_opts go = {.keep_git_dir = true, .subdir = "docs"};
    kiln_llb_http_opts ho = {
            .checksum = "sha256:"
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            .filename = "tool.tgz",
            .chmod = 0755,
            .uid = 1,
            .gid = 2};
    kiln_llb_platform arm = {"linux", "arm64", "v8", NULL};
    kiln_llb_range r = {2, 0, 2, 16};
    kiln_llb_state img, ctx, git, web, run, diff;
    kiln_llb_vertex *f;
    int32_t src_idx;
    int ret;

    kiln_llb_builder_set_platform(b, &linux_amd64);
    if ((ret = example_image(&img, b, "alpine:3.19", "pull", base, err)) < 0 ||
        (ret = kiln_llb_local(&ctx, b, "context", &lo, err)) < 0 ||
        (ret = kiln_llb_git(&git, b, "https://github.com/moby/buildkit.git", "v0.11.6", &go, err)) <
                0 ||
        (ret = kiln_llb_http(&web, b, "https://example.com/tool.tgz", &ho, err)) < 0 ||
        (ret = everything_exec(&run, b, img, ctx, err)) < 0)
        return ret;
    kiln_llb_vertex_set_platform(git.vertex, &arm);
    kiln_llb_builder_add_source(&src_idx, b, "Dockerfile", df, sizeof(df) - 1, "Dockerfile");
    if ((ret = kiln_llb_vertex_add_location(run.vertex, src_idx, &r, 1, err)) < 0)
        return ret;
    kiln_llb_file_new(&f, b, KILN_LLB_SCRATCH);
    if ((ret = kiln_llb_file_copy(f, web, "/tool.tgz", "/opt/", NULL, err)) < 0 ||
        (ret = kiln_llb_file_copy(f, git, "/", "/docs", NULL, err)) < 0)
        return ret;
    kiln_llb_diff(&diff, b, img, run);
    kiln_llb_merge(out, b, (kiln_llb_state[]){diff, kiln_llb_file_state(f), ctx}, 3);
    return 0;
}

/* "wide": 10,000 small file ops in 100 groups of 100, each group merged, the groups merged into
 * one target (10,101 vertices): the solver's per-vertex overhead on a cached solve (bench w7). */
static int
example_wide(kiln_llb_state *out, kiln_llb_builder *b, const char *base, kiln_error **err)
{
    kiln_llb_state groups[100], files[100];
    int ret;

    (void)base;
    for (int g = 0; g < 100; g++) {
        for (int i = 0; i < 100; i++) {
            char dir[16], path[32], data[32];
            kiln_llb_vertex *f;
            snprintf(dir, sizeof(dir), "/g%02d", g);
            snprintf(path, sizeof(path), "/g%02d/f%02d", g, i);
            snprintf(data, sizeof(data), "%d.%d\n", g, i);
            kiln_llb_file_new(&f, b, KILN_LLB_SCRATCH);
            if ((ret = kiln_llb_file_mkdir(f, dir, 0755, true, NULL, err)) < 0 ||
                (ret = kiln_llb_file_mkfile(f, path, 0644, data, strlen(data), NULL, err)) < 0)
                return ret;
            files[i] = kiln_llb_file_state(f);
        }
        kiln_llb_merge(&groups[g], b, files, 100);
    }
    kiln_llb_merge(out, b, groups, 100);
    return 0;
}

typedef struct example {
    const char *name;
    int (*build)(kiln_llb_state *out, kiln_llb_builder *b, const char *base, kiln_error **err);
} example;

static const example examples[] = {
        {"hello", example_hello}, {"parallel", example_parallel},
        {"files", example_files}, {"everything", example_everything},
        {"wide", example_wide},
};

static const char *const example_name_list[] = {"hello",      "parallel", "files",
                                                "everything", "wide",     NULL};

const char *const *
kiln_llb_example_names(void)
{
    return example_name_list;
}

int
kiln_llb_example(kiln_buf *out, const char *name, kiln_error **err)
{
    return kiln_llb_example_on(out, name, NULL, err);
}

int
kiln_llb_example_on(kiln_buf *out, const char *name, const char *base, kiln_error **err)
{
    kiln_llb_builder *b = NULL;
    kiln_llb_state target;
    int ret;

    for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
        if (strcmp(examples[i].name, name) != 0)
            continue;
        kiln_llb_builder_new(&b);
        ret = examples[i].build(&target, b, base, err);
        if (ret == 0)
            ret = kiln_llb_marshal(out, b, target, NULL, err);
        kiln_llb_builder_free(b);
        return ret < 0 ? kiln_error_wrap(err, "example `%s`", name) : 0;
    }
    return kiln_error_set(err, KILN_ENOTFOUND, "no LLB example named `%s`", name);
}
