/*
 * make_test_llb.c: writes the LLB Definitions the engine integration test solves, built with
 * the llb builder API. Usage: make_test_llb SCENARIO LAYOUT_DIR|REF OUT_FILE
 *   main  oci-layout image -> RUN (writes /out.txt, prints "marker-42" to stderr, appends to a
 * cache mount) -> FileOp (mkfile, mkdir -p, symlink, rm, copy of /app.txt from local://ctx into
 * /app/ with createDestPath, copy of /sub/ contents with owner 1:1 and mode 0600) fail  oci-layout
 * image -> RUN `exit 3` glob  oci-layout image -> FileOp copy of "*.txt" at the root of local://ctx
 * into /globbed/ proxy-a, proxy-b  oci-layout image -> RUN listing its *_proxy variables into
 * /proxy.txt, with Meta.proxy_env http_proxy http://a:3128 (or b) and no_proxy, env NO_PROXY
 */
#include "base/buf.h"
#include "base/fs.h"
#include "llb/llb.h"

#include "base/base.h"

static int
image(kiln_llb_state *out, kiln_llb_builder *b, const char *layout, kiln_error **err)
{
    cleanup_free char *id = xasprintf("oci-layout://%s:latest", layout);

    return kiln_llb_source(out, b, id, NULL, 0, err);
}

static int
run(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state root, const char *script,
    kiln_error **err)
{
    const char *args[] = {"/bin/sh", "-c", script, NULL};
    const char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
    kiln_llb_mount cache = {.dest = "/cache", .type = KILN_LLB_MOUNT_CACHE, .cache_id = "t1"};
    kiln_llb_exec_opts o = {.root = root, .args = args, .env = env, .cwd = "/"};

    o.mounts = &cache;
    o.n_mounts = 1;
    return kiln_llb_exec(out, b, &o, err);
}

/* RUN printing the *_proxy variables it sees, with Meta.proxy_env = {http_proxy, no_proxy}; the
 * step's own env sets NO_PROXY, which the proxy must not override. */
static int
proxy_run(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state root, const char *http_proxy,
          kiln_error **err)
{
    const char *args[] = {"/bin/sh", "-c", "env | grep -i '_proxy=' | sort > /proxy.txt", NULL};
    const char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "NO_PROXY=from-env", NULL};
    kiln_llb_proxy_env pe = {.http_proxy = http_proxy, .no_proxy = "from-proxy"};
    kiln_llb_exec_opts o = {.root = root, .args = args, .env = env, .cwd = "/", .proxy_env = &pe};

    return kiln_llb_exec(out, b, &o, err);
}

static int
main_files(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state base, kiln_llb_state ctx,
           kiln_error **err)
{
    kiln_llb_copy_opts cp = KILN_LLB_COPY_OPTS_INIT;
    kiln_llb_copy_opts sub = KILN_LLB_COPY_OPTS_INIT;
    kiln_llb_vertex *f;
    int ret;

    cp.create_dest_path = true;
    sub.create_dest_path = true;
    sub.dir_copy_contents = true;
    sub.mode = 0600;
    sub.info.user.id = 1;
    sub.info.group.id = 1;
    kiln_llb_file_new(&f, b, base);
    ret = kiln_llb_file_mkfile(f, "/hello.txt", 0640, "hello\n", 6, NULL, err);
    if (ret == 0)
        ret = kiln_llb_file_mkdir(f, "/d/e", 0750, true, NULL, err);
    if (ret == 0)
        ret = kiln_llb_file_symlink(f, "hello.txt", "/link", NULL, err);
    if (ret == 0)
        ret = kiln_llb_file_rm(f, "/etc/hosts", false, false, err);
    if (ret == 0)
        ret = kiln_llb_file_copy(f, ctx, "/app.txt", "/app/", &cp, err);
    if (ret == 0)
        ret = kiln_llb_file_copy(f, ctx, "/sub/", "/subcopy", &sub, err);
    *out = kiln_llb_file_state(f);
    return ret;
}

static int
file1(kiln_llb_state *out, kiln_llb_builder *b, kiln_llb_state base, const char *path,
      const char *data, const char *rm, kiln_error **err)
{
    kiln_llb_vertex *f;
    int ret = 0;

    kiln_llb_file_new(&f, b, base);
    if (rm)
        ret = kiln_llb_file_rm(f, rm, false, false, err);
    if (ret == 0)
        ret = kiln_llb_file_mkfile(f, path, 0644, data, strlen(data), NULL, err);
    *out = kiln_llb_file_state(f);
    return ret;
}

static int
merge_scenario(kiln_llb_state *out, kiln_llb_builder *b, kiln_error **err)
{
    kiln_llb_state a, a2, bs, c, c2, d, in[3];
    int ret;

    ret = file1(&a, b, KILN_LLB_SCRATCH, "/a.txt", "a", NULL, err);
    if (ret == 0)
        ret = file1(&a2, b, a, "/gone.txt", "x", NULL, err);
    if (ret == 0)
        ret = file1(&bs, b, a2, "/b.txt", "b", "/gone.txt", err);
    if (ret == 0)
        ret = file1(&c, b, KILN_LLB_SCRATCH, "/c.txt", "c", NULL, err);
    if (ret == 0)
        ret = file1(&c2, b, c, "/gone.txt", "c-gone", NULL, err);
    if (ret == 0)
        ret = file1(&d, b, a2, "/d.txt", "d", NULL, err);
    if (ret < 0)
        return ret;
    in[0] = c2;
    in[1] = bs;
    kiln_llb_diff(&in[2], b, a2, d);
    kiln_llb_merge(out, b, in, 3);
    return 0;
}

static int
scenario(kiln_llb_state *out, kiln_llb_builder *b, const char *name, const char *layout,
         kiln_error **err)
{
    kiln_llb_state img, ran, ctx;
    kiln_llb_copy_opts g = KILN_LLB_COPY_OPTS_INIT;
    kiln_llb_vertex *f;
    int ret;

    if (strcmp(name, "merge") == 0)
        return merge_scenario(out, b, err);
    if (strcmp(name, "pull") == 0) {
        ret = kiln_llb_image(&img, b, layout, NULL, err);
        if (ret == 0)
            ret = run(out, b, img, "echo pulled > /pulled.txt", err);
        return ret;
    }
    ret = image(&img, b, layout, err);
    if (ret == 0)
        ret = kiln_llb_local(&ctx, b, "ctx", NULL, err);
    if (ret < 0)
        return ret;
    if (strcmp(name, "fail") == 0)
        return run(out, b, img, "echo failing >&2; exit 3", err);
    if (strcmp(name, "escape") == 0) {
        kiln_llb_file_new(&f, b, img);
        ret = kiln_llb_file_copy(f, ctx, "/evil/hostname", "/stolen", NULL, err);
        *out = kiln_llb_file_state(f);
        return ret;
    }
    if (strcmp(name, "add") == 0) {
        g.attempt_unpack = true;
        g.create_dest_path = true;
        kiln_llb_file_new(&f, b, img);
        ret = kiln_llb_file_copy(f, ctx, "/arch.tar.gz", "/unpacked/", &g, err);
        if (ret == 0)
            ret = kiln_llb_file_copy(f, ctx, "/app.txt", "/unpacked/", &g, err);
        *out = kiln_llb_file_state(f);
        return ret;
    }
    if (strcmp(name, "proxy-a") == 0 || strcmp(name, "proxy-b") == 0)
        return proxy_run(out, b, img, name[6] == 'a' ? "http://a:3128" : "http://b:3128", err);
    if (strcmp(name, "glob") == 0) {
        g.allow_wildcard = true;
        g.create_dest_path = true;
        kiln_llb_file_new(&f, b, img);
        ret = kiln_llb_file_copy(f, ctx, "/*.txt", "/globbed/", &g, err);
        *out = kiln_llb_file_state(f);
        return ret;
    }
    ret = run(&ran, b, img,
              "echo hi > /out.txt; echo marker-$((40 + 2)) >&2; echo run >> /cache/runs; "
              "wc -l < /cache/runs > /runs.txt; id -u > /uid.txt",
              err);
    if (ret == 0)
        ret = main_files(out, b, ran, ctx, err);
    return ret;
}

int
main(int argc, char **argv)
{
    cleanup_kiln_error kiln_error *err = NULL;
    kiln_llb_builder *b = NULL;
    kiln_llb_state target;
    kiln_buf def = KILN_BUF_INIT;
    int ret;

    if (argc != 4) {
        fprintf(stderr, "usage: make_test_llb main|fail|glob|pull|merge|escape|add|proxy-a|proxy-b "
                        "LAYOUT_DIR|REF OUT_FILE\n");
        return 2;
    }
    kiln_llb_builder_new(&b);
    ret = scenario(&target, b, argv[1], argv[2], &err);
    if (ret == 0)
        ret = kiln_llb_marshal(&def, b, target, NULL, &err);
    if (ret == 0)
        ret = kiln_fs_write_atomic(argv[3], def.ptr, def.len, 0644, &err);
    if (ret < 0)
        fprintf(stderr, "make_test_llb: %s\n", err->msg);
    kiln_buf_dispose(&def);
    kiln_llb_builder_free(b);
    return ret < 0 ? 1 : 0;
}
