/*
 * cmd_build.c: `kiln build [OPTIONS] PATH|-`, the docker buildx build of kiln.
 *
 * The Dockerfile is compiled to LLB by the Dockerfile frontend (base images' configs resolved
 * through the engine), solved by the embedded engine with the context directory bound to
 * local://context, and the result exported as the --output values (or -t/--push/--load) say.
 * Progress goes to stderr (auto, plain, tty, rawjson, quiet); a failing step is reported with
 * its last output lines and the Dockerfile lines of its instruction. Exit codes: 0 success,
 * 1 build failure, 2 usage error.
 */
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/str.h"
#include "cmd/kiln/build.h"
#include "cmd/kiln/cmd_common.h"
#include "cmd/kiln/commands.h"
#include "frontends/dockerfile/dockerfile.h"
#include "llb/llb.h"
#include "source/ignore.h"
#include "source/layer.h"

#include "base/base.h"

#define DOCKERFILE_MAX (16u << 20)
#define STDIN_MAX      (4ull << 30)

typedef struct build_args {
    const char *path; /* context: a directory or "-" */
    const char *file; /* -f, NULL = PATH/Dockerfile */
    const char *target, *platform, *iidfile, *metadata_file, *root, *network;
    kiln_vec tags, build_args, labels, contexts, outputs, no_cache_filter, secrets, ssh;
    bool no_cache, push, load, pull;
    bool allow_network_host, allow_security_insecure; /* --allow */
    unsigned max_parallelism;
    kiln_progress_mode progress;
    kiln_df_check_mode check;
} build_args;

static void
build_usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln build [OPTIONS] PATH | -\n\n"
            "Build an image from a Dockerfile.\n\n"
            "Options:\n"
            "      --allow ENTITLEMENT     grant network.host or security.insecure (RUN\n"
            "                              --network=host, RUN --security=insecure)\n"
            "      --build-arg K=V         set a build-time variable\n"
            "      --build-context N=V     extra build context (DIR, docker-image://REF,\n"
            "                              oci-layout://DIR[:TAG|@DIGEST])\n"
            "      --check skip|error      skip build checks, or make their findings errors\n"
            "  -f, --file PATH             the Dockerfile (default PATH/Dockerfile; - = stdin)\n"
            "      --iidfile FILE          write the image ID to FILE\n"
            "      --label K=V             set an image label\n"
            "      --load                  store the image in kiln's image store (with -t)\n"
            "      --max-parallelism N     steps computing at once (default: cores; waiting RUN\n"
            "                              steps do not count)\n"
            "      --metadata-file FILE    write build result metadata (JSON) to FILE\n"
            "      --network MODE          default network for RUN: default, none, host\n"
            "      --no-cache              do not use the build cache\n"
            "      --no-cache-filter S     do not use the cache for stage S\n"
            "  -o, --output SPEC           type=image|oci|docker|local|tar|registry,"
            "dest=...,name=...\n"
            "      --platform P            target platform (default: this machine's)\n"
            "      --progress MODE         auto, plain, tty, rawjson or quiet (default auto)\n"
            "      --pull                  always look for newer base images\n"
            "      --push                  push the image (same as --output type=registry)\n"
            "  -q, --quiet                 print only the image ID\n"
            "      --secret id=ID[,src=F]  a secret for RUN --mount=type=secret (file or env)\n"
            "      --ssh ID[=SOCKET]       forward an SSH agent to RUN --mount=type=ssh\n"
            "      --root DIR              state dir (default $KILN_ROOT or /var/lib/kiln)\n"
            "  -t, --tag NAME              name the image (repeatable)\n"
            "      --target STAGE          build this stage\n");
}

static void
build_args_dispose(build_args *a)
{
    kiln_vec_dispose(&a->tags, NULL);
    kiln_vec_dispose(&a->build_args, NULL);
    kiln_vec_dispose(&a->labels, NULL);
    kiln_vec_dispose(&a->contexts, NULL);
    kiln_vec_dispose(&a->outputs, NULL);
    kiln_vec_dispose(&a->no_cache_filter, NULL);
    kiln_vec_dispose(&a->secrets, NULL);
    kiln_vec_dispose(&a->ssh, NULL);
}

/* ---- inputs --------------------------------------------------------------------------------- */

/* Whether `data` looks like a tar (or a compressed one): the context on stdin. */
static bool
looks_like_archive(const char *data, size_t len)
{
    const unsigned char *u = (const unsigned char *)data;

    if (len >= 262 && memcmp(data + 257, "ustar", 5) == 0)
        return true;
    if (len >= 2 && u[0] == 0x1f && u[1] == 0x8b)
        return true;
    return len >= 4 && u[0] == 0x28 && u[1] == 0xb5 && u[2] == 0x2f && u[3] == 0xfd;
}

typedef struct build_input {
    char *context_dir; /* the context directory */
    char *tmp_dir;     /* a temporary context (stdin), removed at the end; or NULL */
    char *dockerfile;  /* bytes */
    size_t dockerfile_len;
    char *dockerfile_name; /* for messages: "Dockerfile" */
    kiln_vec excludes;     /* char *: .dockerignore patterns */
} build_input;

static void
build_input_dispose(build_input *in)
{
    if (in->tmp_dir) {
        kiln_error *tmp = NULL;
        if (kiln_fs_rm_rf(in->tmp_dir, &tmp) < 0)
            kiln_error_free(&tmp);
    }
    free(in->context_dir);
    free(in->tmp_dir);
    free(in->dockerfile);
    free(in->dockerfile_name);
    kiln_vec_dispose(&in->excludes, free);
}

/* `kiln build -`: stdin is a context tar (its Dockerfile inside) or a lone Dockerfile. */
static int
read_stdin_context(build_input *in, bool dockerfile_from_stdin, kiln_error **err)
{
    kiln_buf b = KILN_BUF_INIT;
    int ret;

    if (dockerfile_from_stdin)
        return kiln_error_set(err, KILN_EINVAL, "both the context and -f cannot be stdin (-)");
    ret = kiln_fs_mkdtemp(&in->tmp_dir, NULL, "kiln-context-", err);
    if (ret == 0)
        in->context_dir = xstrdup(in->tmp_dir);
    if (ret == 0)
        ret = kiln_fd_read_all(STDIN_FILENO, &b, STDIN_MAX, err);
    if (ret == 0 && looks_like_archive(b.ptr, b.len)) {
        kiln_layer_opts lo = {0};
        ret = kiln_layer_apply_mem(b.ptr, b.len, in->context_dir, &lo, NULL, err);
        if (ret < 0)
            ret = kiln_error_wrap(err, "context from stdin");
    } else if (ret == 0) {
        in->dockerfile = kiln_buf_detach(&b);
        in->dockerfile_len = strlen(in->dockerfile);
    }
    kiln_buf_dispose(&b);
    return ret;
}

static int
read_ignore(build_input *in, const char *dockerfile_path, kiln_error **err)
{
    cleanup_free char *specific = NULL, *generic = NULL, *data = NULL;
    const char *path = NULL;
    size_t len = 0;
    struct stat st;

    /* buildx: <Dockerfile>.dockerignore next to the Dockerfile wins over the context's */
    if (dockerfile_path) {
        specific = xasprintf("%s.dockerignore", dockerfile_path);
        if (stat(specific, &st) == 0)
            path = specific;
    }
    generic = xasprintf("%s/.dockerignore", in->context_dir);
    if (!path && stat(generic, &st) == 0)
        path = generic;
    if (!path)
        return 0;
    if (kiln_fs_read_file(&data, &len, path, DOCKERFILE_MAX, err) < 0)
        return kiln_error_wrap(err, "read %s", path);
    if (kiln_ignore_parse_file(&in->excludes, data, len, err) < 0)
        return kiln_error_wrap(err, "%s", path);
    return 0;
}

static bool
is_url_context(const char *path)
{
    return kiln_engine_is_git_url(path) || kiln_str_has_prefix(path, "http://") ||
           kiln_str_has_prefix(path, "https://");
}

/* A downloaded context: a tar (plain or compressed) is unpacked into the context dir, anything
 * else is the Dockerfile. */
static int
context_from_file(build_input *in, const char *path, const char *url, kiln_error **err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    char head[512];
    ssize_t n;

    if (fd < 0)
        return kiln_error_errno(err, errno, "open %s", path);
    n = pread(fd, head, sizeof(head), 0);
    if (n < 0)
        return kiln_error_errno(err, errno, "read %s", path);
    if (looks_like_archive(head, (size_t)n)) {
        kiln_layer_opts lo = {0};
        if (kiln_layer_apply_fd(fd, in->context_dir, &lo, NULL, err) < 0)
            return kiln_error_wrap(err, "context %s", url);
        return 0;
    }
    if (kiln_fs_read_file(&in->dockerfile, &in->dockerfile_len, path, DOCKERFILE_MAX, err) < 0)
        return kiln_error_wrap(err, "context %s", url);
    return 0;
}

/* `kiln build URL`, as docker build: a git repository (its ref's tree, or "#ref:subdir") is the
 * context; another URL is downloaded: a tar (plain or compressed) is the context, anything else
 * the Dockerfile, with an empty context. */
static int
fetch_remote_context(build_input *in, const build_args *a, kiln_engine *e, kiln_progress *p,
                     kiln_error **err)
{
    cleanup_free char *dl = NULL, *file = NULL, *path = NULL;
    int step = kiln_progress_step(p, "[internal] load remote build context");
    int ret = kiln_fs_mkdtemp(&in->tmp_dir, NULL, "kiln-context-", err);

    if (ret == 0) {
        in->context_dir = xasprintf("%s/context", in->tmp_dir);
        dl = xasprintf("%s/download", in->tmp_dir);
        ret = kiln_fs_mkdir_p(in->context_dir, 0755, err);
    }
    if (ret == 0 && kiln_engine_is_git_url(a->path)) {
        ret = kiln_engine_fetch_context(&file, e, a->path, in->context_dir, err);
    } else if (ret == 0) {
        ret = kiln_fs_mkdir_p(dl, 0700, err);
        if (ret == 0)
            ret = kiln_engine_fetch_context(&file, e, a->path, dl, err);
        if (ret == 0) {
            path = xasprintf("%s/%s", dl, file);
            ret = context_from_file(in, path, a->path, err);
        }
    }
    kiln_progress_step_done(p, step, ret < 0 ? (*err)->msg : NULL, false);
    return ret;
}

static int
build_input_open(build_input *in, const build_args *a, kiln_engine *e, kiln_progress *p,
                 kiln_error **err)
{
    cleanup_free char *dfpath = NULL;
    bool df_stdin = a->file && strcmp(a->file, "-") == 0;
    bool remote = is_url_context(a->path);
    struct stat st;
    int step, ret = 0;

    kiln_vec_init(&in->excludes);
    if (strcmp(a->path, "-") == 0) {
        ret = read_stdin_context(in, df_stdin, err);
    } else if (remote) {
        ret = fetch_remote_context(in, a, e, p, err);
    } else if (stat(a->path, &st) < 0) {
        return kiln_error_errno(err, errno, "unable to prepare context: path \"%s\" not found",
                                a->path);
    } else if (!S_ISDIR(st.st_mode)) {
        return kiln_error_set(err, KILN_EINVAL,
                              "unable to prepare context: \"%s\" is not a directory", a->path);
    } else {
        in->context_dir = xstrdup(a->path);
    }
    if (ret < 0)
        return ret;
    step = kiln_progress_step(p, "[internal] load build definition from Dockerfile");
    if (!in->dockerfile && df_stdin) {
        kiln_buf b = KILN_BUF_INIT;
        ret = kiln_fd_read_all(STDIN_FILENO, &b, DOCKERFILE_MAX, err);
        in->dockerfile_len = b.len;
        in->dockerfile = kiln_buf_detach(&b);
    } else if (!in->dockerfile) {
        if (a->file && remote) /* -f names a file inside a remote context */
            dfpath = xasprintf("%s/%s", in->context_dir, a->file);
        else
            dfpath = a->file ? xstrdup(a->file) : xasprintf("%s/Dockerfile", in->context_dir);
        if (!a->file && stat(dfpath, &st) < 0) {
            /* docker also accepts a lowercase dockerfile */
            cleanup_free char *lower = xasprintf("%s/dockerfile", in->context_dir);
            if (stat(lower, &st) == 0) {
                free(dfpath);
                dfpath = xstrdup(lower);
            }
        }
        ret = kiln_fs_read_file(&in->dockerfile, &in->dockerfile_len, dfpath, DOCKERFILE_MAX, err);
        if (ret == KILN_ENOTFOUND || (ret < 0 && (*err)->sys_errno == ENOENT)) {
            kiln_error_free(err);
            ret = kiln_error_set(err, KILN_ENOTFOUND,
                                 "failed to read dockerfile: open %s: no such file or directory",
                                 dfpath);
        }
    }
    if (ret == 0) {
        const char *base = dfpath ? strrchr(dfpath, '/') : NULL;
        in->dockerfile_name = xstrdup(base ? base + 1 : dfpath ? dfpath : "Dockerfile");
        kiln_progress_step_status(p, step, "transferring dockerfile: %zuB done",
                                  in->dockerfile_len);
    }
    kiln_progress_step_done(p, step, ret < 0 ? (*err)->msg : NULL, false);
    if (ret < 0)
        return ret;
    step = kiln_progress_step(p, "[internal] load .dockerignore");
    ret = read_ignore(in, df_stdin ? NULL : dfpath, err);
    if (ret == 0)
        kiln_progress_step_status(p, step, "transferring context: %zu patterns done",
                                  in->excludes.len);
    kiln_progress_step_done(p, step, ret < 0 ? (*err)->msg : NULL, false);
    return ret;
}

/* ---- secrets and ssh --------------------------------------------------------------------------
 */

#define SECRET_MAX (500u << 10) /* BuildKit's limit on one secret */

typedef struct build_secrets {
    kiln_engine_secret *secrets;
    size_t n;
    kiln_engine_ssh *ssh;
    size_t n_ssh;
    kiln_vec owned; /* char *: ids, data, paths */
} build_secrets;

static void
build_secrets_dispose(build_secrets *s)
{
    for (size_t i = 0; i < s->n; i++)
        explicit_bzero((void *)s->secrets[i].data, s->secrets[i].len);
    free(s->secrets);
    free(s->ssh);
    kiln_vec_dispose(&s->owned, free);
}

/* --secret id=ID[,src=FILE|,env=VAR][,type=file|env]: as buildx, a lone id reads env var ID. */
static int
add_secret(build_secrets *s, const char *spec, kiln_error **err)
{
    cleanup_free char *copy = xstrdup(spec);
    char *save = NULL, *id = NULL, *src = NULL, *env = NULL, *type = NULL;
    char *data = NULL;
    size_t len = 0;

    for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(f, '=');
        if (!eq)
            return kiln_error_set(err, KILN_EINVAL, "--secret %s: field \"%s\" is not KEY=VALUE",
                                  spec, f);
        *eq = 0;
        if (strcmp(f, "id") == 0)
            id = eq + 1;
        else if (strcmp(f, "src") == 0 || strcmp(f, "source") == 0)
            src = eq + 1;
        else if (strcmp(f, "env") == 0)
            env = eq + 1;
        else if (strcmp(f, "type") == 0)
            type = eq + 1;
        else
            return kiln_error_set(err, KILN_EINVAL, "--secret %s: unknown field \"%s\"", spec, f);
    }
    if (!id || !*id)
        return kiln_error_set(err, KILN_EINVAL, "--secret %s: id= is required", spec);
    if (type && strcmp(type, "env") == 0 && !env) {
        env = src ? src : id;
        src = NULL;
    }
    if (!src && !env)
        env = id;
    if (src) {
        if (kiln_fs_read_file(&data, &len, src, SECRET_MAX, err) < 0)
            return kiln_error_wrap(err, "--secret id=%s", id);
    } else {
        const char *v = getenv(env);
        if (!v)
            return kiln_error_set(err, KILN_ENOTFOUND,
                                  "--secret id=%s: environment variable %s is not set", id, env);
        data = xstrdup(v);
        len = strlen(v);
    }
    s->secrets = xreallocarray(s->secrets, s->n + 1, sizeof(*s->secrets));
    s->secrets[s->n].id = xstrdup(id);
    s->secrets[s->n].data = data;
    s->secrets[s->n].len = len;
    kiln_vec_push(&s->owned, (char *)s->secrets[s->n].id);
    kiln_vec_push(&s->owned, data);
    s->n++;
    return 0;
}

/* --ssh ID[=SOCKET]: SOCKET defaults to $SSH_AUTH_SOCK. */
static int
add_ssh(build_secrets *s, const char *spec, kiln_error **err)
{
    const char *eq = strchr(spec, '=');
    char *id = eq ? xstrndup(spec, (size_t)(eq - spec)) : xstrdup(spec);
    const char *sock = eq ? eq + 1 : getenv("SSH_AUTH_SOCK");
    struct stat st;

    kiln_vec_push(&s->owned, id);
    if (!*id)
        return kiln_error_set(err, KILN_EINVAL, "--ssh %s: empty id", spec);
    if (!sock || !*sock)
        return kiln_error_set(err, KILN_EINVAL,
                              "--ssh %s: no socket given and SSH_AUTH_SOCK is not set", spec);
    if (strchr(sock, ','))
        return kiln_error_set(err, KILN_EUNSUPPORTED,
                              "--ssh %s: key files are not supported, only an agent socket", spec);
    if (stat(sock, &st) < 0 || !S_ISSOCK(st.st_mode))
        return kiln_error_set(err, KILN_EINVAL, "--ssh %s: %s is not a socket", spec, sock);
    s->ssh = xreallocarray(s->ssh, s->n_ssh + 1, sizeof(*s->ssh));
    s->ssh[s->n_ssh].id = id;
    s->ssh[s->n_ssh].socket = sock;
    s->n_ssh++;
    return 0;
}

static int
build_secrets_load(build_secrets *s, const build_args *a, kiln_error **err)
{
    void *item;

    kiln_vec_init(&s->owned);
    kiln_vec_foreach(&a->secrets, i, item) {
        if (add_secret(s, item, err) < 0)
            return KILN_EINVAL;
    }
    kiln_vec_foreach(&a->ssh, i, item) {
        if (add_ssh(s, item, err) < 0)
            return KILN_EINVAL;
    }
    return 0;
}

/* ---- compile -------------------------------------------------------------------------------- */

typedef struct resolve_ctx {
    kiln_engine *e;
    kiln_progress *p;
} resolve_ctx;

static int
resolve_image(char **config_json, char **manifest_digest, const char *ref, const char *platform,
              void *payload, kiln_error **err)
{
    resolve_ctx *rc = payload;
    cleanup_free char *name = xasprintf("[internal] load metadata for %s", ref);
    int step = kiln_progress_step(rc->p, name);
    int ret;

    (void)platform;
    ret = kiln_engine_resolve_image_config(config_json, manifest_digest, rc->e, ref, err);
    kiln_progress_step_done(rc->p, step, ret < 0 ? (*err)->msg : NULL, false);
    return ret;
}

/* SOURCE_DATE_EPOCH from --build-arg or the environment (as buildx), -1 when unset. */
static int
source_date_epoch(int64_t *out, const build_args *a, kiln_error **err)
{
    const char *v = getenv("SOURCE_DATE_EPOCH");
    void *item;

    kiln_vec_foreach(&a->build_args, i, item) {
        const char *kv = item;
        if (kiln_str_has_prefix(kv, "SOURCE_DATE_EPOCH="))
            v = kv + strlen("SOURCE_DATE_EPOCH=");
    }
    *out = -1;
    if (!v || !*v)
        return 0;
    if (kiln_parse_i64(v, out, "SOURCE_DATE_EPOCH", err) < 0 || *out < 0)
        return kiln_error_set(err, KILN_EINVAL, "invalid SOURCE_DATE_EPOCH \"%s\"", v);
    return 0;
}

/* A target that is scratch (FROM scratch and metadata only) compiles to no Definition, as in
 * BuildKit; solve an empty file tree instead so that every exporter has a result to write. */
static int
empty_definition(kiln_buf *out, kiln_error **err)
{
    kiln_llb_builder *b = NULL;
    kiln_llb_vertex *f = NULL;
    int ret;

    kiln_llb_builder_new(&b);
    kiln_llb_file_new(&f, b, KILN_LLB_SCRATCH);
    kiln_llb_vertex_set_custom_name(f, "[internal] scratch");
    ret = kiln_llb_file_rm(f, "/.kiln-scratch", true, false, err);
    if (ret == 0)
        ret = kiln_llb_marshal(out, b, kiln_llb_file_state(f), NULL, err);
    kiln_llb_builder_free(b);
    return ret;
}

/* ---- Ctrl-C ------------------------------------------------------------------------------------
 * The first SIGINT/SIGTERM cancels the build (running steps are killed, the engine cleans up and
 * the command exits 130); a second one exits at once. A thread waits for the signals, which are
 * blocked in every other thread. */

static pthread_mutex_t interrupt_lock = PTHREAD_MUTEX_INITIALIZER;
static kiln_engine *interrupt_engine; /* under interrupt_lock */
static pthread_t interrupt_thread;
static bool interrupt_running;
static atomic_bool interrupted;

static void *
interrupt_main(void *arg)
{
    sigset_t *set = arg;
    int sig;

    while (sigwait(set, &sig) == 0) {
        if (sig == SIGUSR2) /* disarm */
            break;
        if (atomic_exchange(&interrupted, true)) {
            fprintf(stderr, "\nkiln: interrupted again: exiting without cleaning up\n");
            _exit(130);
        }
        fprintf(stderr, "\nkiln: canceling the build (Ctrl-C again to exit at once)\n");
        pthread_mutex_lock(&interrupt_lock);
        if (interrupt_engine)
            kiln_engine_cancel(interrupt_engine);
        pthread_mutex_unlock(&interrupt_lock);
    }
    return NULL;
}

/* Before any other thread starts (progress, engine): they inherit the blocked signals. */
static void
interrupt_arm(void)
{
    static sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    interrupt_running = pthread_create(&interrupt_thread, NULL, interrupt_main, &set) == 0;
}

/* The engine to cancel (NULL: none); a build interrupted before it existed is canceled now. */
static void
interrupt_set_engine(kiln_engine *e)
{
    pthread_mutex_lock(&interrupt_lock);
    interrupt_engine = e;
    if (e && atomic_load(&interrupted))
        kiln_engine_cancel(e);
    pthread_mutex_unlock(&interrupt_lock);
}

static void
interrupt_disarm(void)
{
    interrupt_set_engine(NULL);
    if (!interrupt_running)
        return;
    pthread_kill(interrupt_thread, SIGUSR2);
    pthread_join(interrupt_thread, NULL);
    interrupt_running = false;
}

/* ---- the build ------------------------------------------------------------------------------ */

static void
print_warnings(const kiln_df_compiled *c)
{
    void *item;

    if (!c->warnings.len)
        return;
    fprintf(stderr, "\n %zu warning%s found:\n", c->warnings.len, c->warnings.len == 1 ? "" : "s");
    kiln_vec_foreach(&c->warnings, i, item)
        fprintf(stderr, " - %s\n", (const char *)item);
}

static int
write_results(const build_args *a, const build_export_info *info, kiln_error **err)
{
    cleanup_json json_t *meta = NULL;
    cleanup_free char *text = NULL;

    if (a->iidfile) {
        const char *id = info->config_digest ? info->config_digest : "";
        if (kiln_fs_write_atomic(a->iidfile, id, strlen(id), 0644, err) < 0)
            return kiln_error_wrap(err, "write --iidfile %s", a->iidfile);
    }
    if (!a->metadata_file)
        return 0;
    meta = json_object();
    if (info->image_digest)
        json_object_set_new(meta, "containerimage.digest", json_string(info->image_digest));
    if (info->config_digest)
        json_object_set_new(meta, "containerimage.config.digest", json_string(info->config_digest));
    if (info->names.len) {
        kiln_buf names = KILN_BUF_INIT;
        void *item;
        kiln_vec_foreach(&info->names, i, item)
            kiln_buf_printf(&names, NULL, "%s%s", i ? "," : "", (const char *)item);
        json_object_set_new(meta, "image.name", json_string(kiln_buf_cstr(&names)));
        kiln_buf_dispose(&names);
    }
    text = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (kiln_fs_write_atomic(a->metadata_file, text, strlen(text), 0644, err) < 0)
        return kiln_error_wrap(err, "write --metadata-file %s", a->metadata_file);
    return 0;
}

/* The outputs to produce: --output values, else -t names into the image store (pushed with
 * --push); no output at all is allowed (the result stays in the build cache). */
static int
collect_outputs(kiln_vec *outs, const build_args *a, kiln_error **err)
{
    void *item;
    int ret = 0;

    kiln_vec_foreach(&a->outputs, i, item) {
        build_output *o = xcalloc(1, sizeof(*o));
        ret = build_output_parse(o, item, err);
        if (ret < 0) {
            free(o);
            return kiln_error_wrap(err, "--output");
        }
        /* as buildx: -t names every image-making output that has no name= */
        if (o->type != BUILD_OUTPUT_LOCAL && o->type != BUILD_OUTPUT_TAR && o->names.len == 0) {
            void *t;
            kiln_vec_foreach(&a->tags, j, t)
                kiln_vec_push(&o->names, xstrdup(t));
        }
        o->push |= a->push && o->type == BUILD_OUTPUT_IMAGE;
        kiln_vec_push(outs, o);
    }
    if (outs->len == 0 && (a->tags.len || a->push || a->load || a->iidfile || a->metadata_file)) {
        build_output *o = xcalloc(1, sizeof(*o));
        void *t;
        kiln_vec_init(&o->names);
        o->type = BUILD_OUTPUT_IMAGE;
        o->push = a->push;
        o->oci_mediatypes = -1;
        o->rewrite_timestamp = -1;
        o->tar = true;
        kiln_vec_foreach(&a->tags, j, t)
            kiln_vec_push(&o->names, xstrdup(t));
        if (o->push && o->names.len == 0) {
            build_output_dispose(o);
            free(o);
            return kiln_error_set(err, KILN_EINVAL, "--push needs an image name (-t NAME)");
        }
        kiln_vec_push(outs, o);
    }
    return 0;
}

static void
output_free(void *v)
{
    if (v)
        build_output_dispose(v);
    free(v);
}

/* Bind --build-context NAME=DIR values to local sources; others pass through. */
static void
named_contexts(kiln_df_named_context *nc, kiln_engine_local *locals, size_t *n_locals, char **owned,
               const build_args *a)
{
    void *item;

    kiln_vec_foreach(&a->contexts, i, item) {
        const char *kv = item, *eq = strchr(kv, '=');
        nc[i].name = owned[2 * i] = xstrndup(kv, (size_t)(eq - kv));
        if (strstr(eq + 1, "://")) {
            nc[i].value = eq + 1;
            continue;
        }
        owned[2 * i + 1] = xasprintf("local:context-%s", nc[i].name);
        nc[i].value = owned[2 * i + 1];
        locals[*n_locals].name = owned[2 * i + 1] + strlen("local:");
        locals[*n_locals].dir = eq + 1;
        (*n_locals)++;
    }
}

static int
build_run(const build_args *a, kiln_error **err)
{
    kiln_engine_solve_opts so = KILN_ENGINE_SOLVE_OPTS_INIT;
    kiln_df_compile_opts co = {KILN_DF_COMPILE_OPTS_VERSION};
    kiln_df_compiled compiled = {0};
    build_input in = {0};
    build_export_info info = {0};
    build_secrets sec = {0};
    kiln_vec outs = KILN_VEC_INIT;
    kiln_progress *p = NULL;
    kiln_engine *e = NULL;
    kiln_engine_result *r = NULL;
    resolve_ctx rc;
    size_t nctx = a->contexts.len, n_locals = 1;
    cleanup_free kiln_df_named_context *nc = xcalloc(nctx + 1, sizeof(*nc));
    cleanup_free kiln_engine_local *locals = xcalloc(nctx + 1, sizeof(*locals));
    cleanup_free char **owned = xcalloc(2 * nctx + 1, sizeof(*owned));
    cleanup_free void **bargs = kiln_vec_to_array(&a->build_args);
    cleanup_free void **labels = kiln_vec_to_array(&a->labels);
    cleanup_free void **ncf = kiln_vec_to_array(&a->no_cache_filter);
    cleanup_free void **excl = NULL;
    cleanup_free char *history_name = NULL;
    int64_t epoch = -1;
    int ret;

    kiln_vec_init(&info.names);
    history_name = a->tags.len ? xstrdup(kiln_vec_get(&a->tags, 0))
                               : xasprintf("%s%s%s", a->path, a->target ? " --target " : "",
                                           a->target ? a->target : "");
    ret = source_date_epoch(&epoch, a, err);
    if (ret == 0)
        ret = collect_outputs(&outs, a, err);
    if (ret == 0)
        ret = build_secrets_load(&sec, a, err);
    if (ret < 0) {
        kiln_vec_dispose(&outs, output_free);
        build_secrets_dispose(&sec);
        return ret;
    }
    interrupt_arm();
    kiln_progress_new(&p, a->progress, stderr);
    ret = kiln_cmd_open_engine_par(&e, a->root, a->max_parallelism, err);
    if (ret == 0)
        interrupt_set_engine(e);
    if (ret == 0)
        ret = build_input_open(&in, a, e, p, err);
    if (ret == 0) {
        excl = kiln_vec_to_array(&in.excludes);
        rc.e = e;
        rc.p = p;
        named_contexts(nc, locals, &n_locals, owned, a);
        co.filename = in.dockerfile_name;
        co.data = in.dockerfile;
        co.len = in.dockerfile_len;
        co.target = a->target;
        co.build_args = (const char *const *)bargs;
        co.labels = (const char *const *)labels;
        co.context_name = "context";
        co.context_excludes = (const char *const *)excl;
        co.named_contexts = nc;
        co.n_named_contexts = nctx;
        co.platform = a->platform;
        co.no_cache = a->no_cache;
        co.no_cache_filter = (const char *const *)ncf;
        co.source_date_epoch = epoch;
        co.check = a->check;
        co.network = a->network;
        co.resolve = resolve_image;
        co.resolve_payload = &rc;
        ret = kiln_df_compile(&compiled, &co, err);
    }
    if (ret == 0 && compiled.definition.len == 0)
        ret = empty_definition(&compiled.definition, err);
    if (ret == 0) {
        locals[0].name = "context";
        locals[0].dir = in.context_dir;
        so.locals = locals;
        so.n_locals = n_locals;
        so.no_cache = a->no_cache;
        so.progress = kiln_progress_engine_event;
        so.progress_payload = p;
        so.history_name = history_name;
        so.secrets = sec.secrets;
        so.n_secrets = sec.n;
        so.ssh = sec.ssh;
        so.n_ssh = sec.n_ssh;
        so.allow_network_host = a->allow_network_host;
        so.allow_security_insecure = a->allow_security_insecure;
        ret = atomic_load(&interrupted) ? kiln_error_set(err, KILN_ECANCELED, "build canceled")
                                        : kiln_engine_solve(&r, e, compiled.definition.ptr,
                                                            compiled.definition.len, &so, err);
    }
    for (size_t i = 0; ret == 0 && i < outs.len; i++)
        ret = build_export(&info, e, r, kiln_vec_get(&outs, i), compiled.config_json, epoch, p,
                           err);
    kiln_progress_finish(p);
    if (ret < 0 && compiled.definition.len)
        build_report_failure(stderr, p, compiled.definition.ptr, compiled.definition.len);
    if (ret == 0)
        print_warnings(&compiled);
    if (ret == 0 && outs.len == 0)
        fprintf(stderr, "WARNING: No output specified with -t, --output or --push: the build "
                        "result is only kept in the build cache\n");
    if (ret == 0)
        ret = write_results(a, &info, err);
    if (ret == 0 && a->progress == KILN_PROGRESS_QUIET && info.config_digest)
        printf("%s\n", info.config_digest);
    if (e && ret == 0 && !getenv("KILN_NO_AUTO_GC"))
        kiln_cmd_spawn_gc(a->root);
    interrupt_disarm();
    kiln_engine_result_free(e, r);
    kiln_engine_free(e);
    kiln_progress_free(p);
    kiln_df_compiled_dispose(&compiled);
    build_input_dispose(&in);
    build_export_info_dispose(&info);
    build_secrets_dispose(&sec);
    kiln_vec_dispose(&outs, output_free);
    for (size_t i = 0; i < 2 * nctx; i++)
        free(owned[i]);
    return ret;
}

/* ---- command line --------------------------------------------------------------------------- */

enum {
    OPT_BUILD_ARG = 256,
    OPT_BUILD_CONTEXT,
    OPT_CHECK,
    OPT_IIDFILE,
    OPT_LABEL,
    OPT_LOAD,
    OPT_METADATA,
    OPT_NETWORK,
    OPT_NO_CACHE,
    OPT_NO_CACHE_FILTER,
    OPT_PLATFORM,
    OPT_PROGRESS,
    OPT_PULL,
    OPT_PUSH,
    OPT_ROOT,
    OPT_TARGET,
    OPT_SECRET,
    OPT_SSH,
    OPT_ALLOW,
    OPT_MAX_PAR,
    OPT_UNSUPPORTED,
};

/* --allow network.host,security.insecure (repeatable, comma-separated, as buildx). */
static int
parse_allow(build_args *a, const char *value, kiln_error **err)
{
    cleanup_free char *copy = xstrdup(value);
    char *save = NULL;

    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "network.host") == 0)
            a->allow_network_host = true;
        else if (strcmp(tok, "security.insecure") == 0)
            a->allow_security_insecure = true;
        else
            return kiln_error_set(err, KILN_EINVAL,
                                  "--allow %s: invalid entitlement `%s` (network.host, "
                                  "security.insecure)",
                                  value, tok);
    }
    return 0;
}

static int
check_kv(const char *flag, const char *v, kiln_error **err)
{
    const char *eq = strchr(v, '=');

    if (!eq || eq == v)
        return kiln_error_set(err, KILN_EINVAL, "invalid %s \"%s\": want KEY=VALUE", flag, v);
    return 0;
}

static int
parse_opt(build_args *a, int c, const char *opt_name, kiln_error **err)
{
    switch (c) {
    case 'f':
        a->file = optarg;
        return 0;
    case 't':
        kiln_vec_push(&a->tags, optarg);
        return 0;
    case 'o':
        kiln_vec_push(&a->outputs, optarg);
        return 0;
    case 'q':
        a->progress = KILN_PROGRESS_QUIET;
        return 0;
    case OPT_BUILD_ARG:
        if (!*optarg || *optarg == '=')
            return kiln_error_set(err, KILN_EINVAL, "invalid --build-arg \"%s\"", optarg);
        kiln_vec_push(&a->build_args, optarg);
        return 0;
    case OPT_BUILD_CONTEXT:
        if (check_kv("--build-context", optarg, err) < 0)
            return KILN_EINVAL;
        kiln_vec_push(&a->contexts, optarg);
        return 0;
    case OPT_LABEL:
        if (check_kv("--label", optarg, err) < 0)
            return KILN_EINVAL;
        kiln_vec_push(&a->labels, optarg);
        return 0;
    case OPT_CHECK:
        if (strcmp(optarg, "skip") == 0 || strcmp(optarg, "skip=all") == 0)
            a->check = KILN_DF_CHECK_SKIP;
        else if (strcmp(optarg, "error") == 0 || strcmp(optarg, "error=true") == 0)
            a->check = KILN_DF_CHECK_ERROR;
        else
            return kiln_error_set(err, KILN_EINVAL, "invalid --check \"%s\": want skip or error",
                                  optarg);
        return 0;
    case OPT_IIDFILE:
        a->iidfile = optarg;
        return 0;
    case OPT_METADATA:
        a->metadata_file = optarg;
        return 0;
    case OPT_LOAD:
        a->load = true;
        return 0;
    case OPT_PUSH:
        a->push = true;
        return 0;
    case OPT_PULL:
        a->pull = true;
        return 0;
    case OPT_NO_CACHE:
        a->no_cache = true;
        return 0;
    case OPT_NO_CACHE_FILTER:
        kiln_vec_push(&a->no_cache_filter, optarg);
        return 0;
    case OPT_TARGET:
        a->target = optarg;
        return 0;
    case OPT_ROOT:
        a->root = optarg;
        return 0;
    case OPT_PLATFORM:
        if (strchr(optarg, ','))
            return kiln_error_set(err, KILN_EUNSUPPORTED,
                                  "--platform \"%s\": multi-platform builds are not supported yet",
                                  optarg);
        a->platform = optarg;
        return 0;
    case OPT_PROGRESS:
        return kiln_progress_mode_parse(&a->progress, optarg, err);
    case OPT_NETWORK:
        if (strcmp(optarg, "default") != 0 && strcmp(optarg, "none") != 0 &&
            strcmp(optarg, "host") != 0)
            return kiln_error_set(err, KILN_EINVAL,
                                  "--network %s: expected default, none or host (kiln has no "
                                  "bridge network; default is the host's)",
                                  optarg);
        a->network = optarg;
        if (strcmp(optarg, "host") == 0) /* buildx grants network.host with --network host */
            a->allow_network_host = true;
        return 0;
    case OPT_ALLOW:
        return parse_allow(a, optarg, err);
    case OPT_SECRET:
        kiln_vec_push(&a->secrets, optarg); /* checked and read by build_secrets_load */
        return 0;
    case OPT_SSH:
        kiln_vec_push(&a->ssh, optarg);
        return 0;
    case OPT_UNSUPPORTED:
        return kiln_error_set(err, KILN_EUNSUPPORTED, "%s is not supported yet", opt_name);
    default:
        return KILN_EINVAL;
    }
}

int
kiln_cmd_build(int argc, char **argv)
{
    static const struct option longopts[] = {
            {"file", required_argument, NULL, 'f'},
            {"tag", required_argument, NULL, 't'},
            {"output", required_argument, NULL, 'o'},
            {"quiet", no_argument, NULL, 'q'},
            {"build-arg", required_argument, NULL, OPT_BUILD_ARG},
            {"build-context", required_argument, NULL, OPT_BUILD_CONTEXT},
            {"check", required_argument, NULL, OPT_CHECK},
            {"iidfile", required_argument, NULL, OPT_IIDFILE},
            {"label", required_argument, NULL, OPT_LABEL},
            {"load", no_argument, NULL, OPT_LOAD},
            {"metadata-file", required_argument, NULL, OPT_METADATA},
            {"network", required_argument, NULL, OPT_NETWORK},
            {"allow", required_argument, NULL, OPT_ALLOW},
            {"no-cache", no_argument, NULL, OPT_NO_CACHE},
            {"no-cache-filter", required_argument, NULL, OPT_NO_CACHE_FILTER},
            {"platform", required_argument, NULL, OPT_PLATFORM},
            {"progress", required_argument, NULL, OPT_PROGRESS},
            {"pull", no_argument, NULL, OPT_PULL},
            {"push", no_argument, NULL, OPT_PUSH},
            {"root", required_argument, NULL, OPT_ROOT},
            {"max-parallelism", required_argument, NULL, OPT_MAX_PAR},
            {"target", required_argument, NULL, OPT_TARGET},
            {"secret", required_argument, NULL, OPT_SECRET},
            {"ssh", required_argument, NULL, OPT_SSH},
            {"cache-from", required_argument, NULL, OPT_UNSUPPORTED},
            {"cache-to", required_argument, NULL, OPT_UNSUPPORTED},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    build_args a = {0};
    int c, idx = 0, exit_code = KILN_EXIT_OK;

    signal(SIGPIPE, SIG_IGN);
    optind = 1;
    opterr = 0;
    while (exit_code == KILN_EXIT_OK &&
           (c = getopt_long(argc, argv, "+f:t:o:qh", longopts, &idx)) != -1) {
        if (c == 'h') {
            build_usage(stdout);
            build_args_dispose(&a);
            return KILN_EXIT_OK;
        }
        if (c == '?') {
            if (optopt)
                fprintf(stderr, "kiln build: unknown shorthand flag or missing value: '%c'\n",
                        optopt);
            else
                fprintf(stderr, "kiln build: unknown flag or missing value: %s\n",
                        argv[optind - 1]);
            exit_code = KILN_EXIT_USAGE;
            break;
        }
        if (parse_opt(&a, c, argv[optind - 1], &err) < 0)
            exit_code = KILN_EXIT_USAGE;
    }
    if (exit_code == KILN_EXIT_OK && optind + 1 != argc) {
        fprintf(stderr, "kiln build: requires exactly 1 argument (the context PATH, or -)\n");
        exit_code = KILN_EXIT_USAGE;
    }
    if (exit_code == KILN_EXIT_OK) {
        a.path = argv[optind];
        if (build_run(&a, &err) < 0)
            exit_code = atomic_load(&interrupted) ? 130 : KILN_EXIT_FAILURE;
    }
    if (err) {
        cleanup_free char *msg = kiln_error_format(err);
        fprintf(stderr, "ERROR: %s\n", msg);
    }
    if (exit_code == KILN_EXIT_USAGE)
        fprintf(stderr, "See 'kiln build --help'.\n");
    build_args_dispose(&a);
    return exit_code;
}
