/*
 * cmd_image.c: the local image store commands, as docker spells them: `kiln images`, `tag`,
 * `rmi`, `inspect`, `push`, `pull`, `save`, `load` and `run`. Each opens the embedded engine on
 * --root DIR (or $KILN_ROOT, or the default state dir) and calls the Images section of
 * include/kiln/engine.h. Exit codes: 0 ok, 1 failure, 2 usage (unknown flags included); `run`
 * exits with the container's status.
 */
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <time.h>

#include "base/vec.h"
#include "cmd/kiln/cmd_common.h"
#include "cmd/kiln/commands.h"
#include "kiln/engine.h"

#include "base/base.h"

#define OPT_ROOT 0x100

/* Parse state every command shares: --root and -h. */
typedef struct cmd_opts {
    const char *root;
    bool help;
} cmd_opts;

/* Handle the shared options; false when c is not one of them. */
static bool
common_opt(cmd_opts *o, int c)
{
    if (c == OPT_ROOT) {
        o->root = optarg;
        return true;
    }
    if (c == 'h') {
        o->help = true;
        return true;
    }
    return false;
}

static void
getopt_reset(void)
{
    optind = 1;
    opterr = 0;
}

/* Report err (when set) and pick the exit code. */
static int
finish(kiln_error *err, int code)
{
    if (err)
        kiln_cmd_report(err);
    kiln_error_free(&err);
    return code;
}

static int
usage(const char *text, int code)
{
    fputs(text, code == KILN_EXIT_OK ? stdout : stderr);
    return code;
}

/* "docker.io/library/x:t" -> repository "x", tag "t" (both owned by the caller). */
static void
split_name(char **repo, char **tag, const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *colon = strrchr(name, ':');
    const char *at = strchr(name, '@');
    const char *r = name;
    size_t rlen;

    if (at) {
        rlen = (size_t)(at - name);
        *tag = xstrdup("<none>");
    } else if (colon && (!slash || colon > slash)) {
        rlen = (size_t)(colon - name);
        *tag = xstrdup(colon + 1);
    } else {
        rlen = strlen(name);
        *tag = xstrdup("latest");
    }
    if (kiln_str_has_prefix(r, "docker.io/library/") && !memchr(r + 18, '/', rlen - 18)) {
        r += 18;
        rlen -= 18;
    } else if (kiln_str_has_prefix(r, "docker.io/")) {
        r += 10;
        rlen -= 10;
    }
    *repo = xstrndup(r, rlen);
}

/* The 12 hex digits docker shows for an id. */
static void
short_id(char out[13], const char *digest)
{
    const char *hex = strchr(digest, ':');

    kiln_strlcpy(out, hex ? hex + 1 : digest, 13);
}

static void
human_size(char *out, size_t n, int64_t bytes)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;

    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%lldB", (long long)bytes);
    else
        snprintf(out, n, "%.3g%s", v, units[u]);
}

static void
human_age(char *out, size_t n, int64_t created)
{
    int64_t d = (int64_t)time(NULL) - created;

    if (created <= 0)
        snprintf(out, n, "N/A");
    else if (d < 60)
        snprintf(out, n, "Less than a minute ago");
    else if (d < 3600)
        snprintf(out, n, "%lld minutes ago", (long long)(d / 60));
    else if (d < 2 * 86400)
        snprintf(out, n, "%lld hours ago", (long long)(d / 3600));
    else if (d < 2 * 86400 * 365)
        snprintf(out, n, "%lld days ago", (long long)(d / 86400));
    else
        snprintf(out, n, "%lld years ago", (long long)(d / (86400 * 365)));
}

/* ---- images --------------------------------------------------------------------------------- */

static const char images_usage[] =
        "Usage: kiln images [OPTIONS]\n\n"
        "List the images of the local store.\n\n"
        "  -q, --quiet         only image ids\n"
        "      --digests       show manifest digests\n"
        "      --format json   one JSON array\n"
        "      --root DIR      state dir (default $KILN_ROOT, or /var/lib/kiln for root)\n";

static void
images_json(const kiln_engine_image_entry *v, size_t n)
{
    json_t *arr = json_array();
    char *s;

    for (size_t i = 0; i < n; i++) {
        cleanup_free char *repo = NULL;
        cleanup_free char *tag = NULL;
        split_name(&repo, &tag, v[i].name);
        json_array_append_new(
                arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "name", v[i].name, "repository",
                               repo, "tag", tag, "digest", v[i].digest, "id", v[i].config_digest,
                               "size", (json_int_t)v[i].size, "created", (json_int_t)v[i].created));
    }
    s = json_dumps(arr, JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(arr);
}

static void
images_table(const kiln_engine_image_entry *v, size_t n, bool quiet, bool digests)
{
    kiln_vec seen = KILN_VEC_INIT;

    if (!quiet)
        printf(digests ? "%-40s %-12s %-71s %-12s %-20s %s\n" : "%-40s %-12s%.0s %-12s %-20s %s\n",
               "REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE");
    for (size_t i = 0; i < n; i++) {
        cleanup_free char *repo = NULL;
        cleanup_free char *tag = NULL;
        char id[13], size[32], age[64];
        bool dup = false;

        short_id(id, v[i].config_digest);
        if (quiet) {
            for (size_t j = 0; j < seen.len; j++)
                dup = dup || strcmp(seen.items[j], id) == 0;
            if (!dup) {
                kiln_strvec_push(&seen, id);
                printf("%s\n", id);
            }
            continue;
        }
        split_name(&repo, &tag, v[i].name);
        human_size(size, sizeof(size), v[i].size);
        human_age(age, sizeof(age), v[i].created);
        if (digests)
            printf("%-40s %-12s %-71s %-12s %-20s %s\n", repo, tag, v[i].digest, id, age, size);
        else
            printf("%-40s %-12s %-12s %-20s %s\n", repo, tag, id, age, size);
    }
    kiln_strvec_dispose(&seen);
}

int
kiln_cmd_images(int argc, char **argv)
{
    static const struct option longopts[] = {
            {"quiet", no_argument, NULL, 'q'},        {"digests", no_argument, NULL, 'd'},
            {"format", required_argument, NULL, 'f'}, {"root", required_argument, NULL, OPT_ROOT},
            {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    cmd_opts o = {0};
    kiln_error *err = NULL;
    kiln_engine *e = NULL;
    kiln_engine_image_entry *v = NULL;
    bool quiet = false, digests = false, json = false;
    size_t n = 0;
    int c, ret;

    getopt_reset();
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        if (common_opt(&o, c))
            continue;
        if (c == 'q') {
            quiet = true;
        } else if (c == 'd') {
            digests = true;
        } else if (c == 'f' && strcmp(optarg, "json") == 0) {
            json = true;
        } else if (c == 'f' && strcmp(optarg, "table") != 0) {
            fprintf(stderr, "kiln images: --format `%s`: want json or table\n", optarg);
            return KILN_EXIT_USAGE;
        } else if (c != 'f') {
            kiln_cmd_bad_flag("images", c, argc, argv);
            return usage(images_usage, KILN_EXIT_USAGE);
        }
    }
    if (o.help)
        return usage(images_usage, KILN_EXIT_OK);
    if (optind != argc) {
        fprintf(stderr, "kiln images: unexpected argument `%s`\n", argv[optind]);
        return usage(images_usage, KILN_EXIT_USAGE);
    }
    ret = kiln_cmd_open_engine(&e, o.root, &err);
    if (ret == 0)
        ret = kiln_engine_image_list(&v, &n, e, &err);
    if (ret == 0 && json)
        images_json(v, n);
    else if (ret == 0)
        images_table(v, n, quiet, digests);
    kiln_engine_image_entries_free(v, n);
    kiln_engine_free(e);
    return finish(err, ret < 0 ? KILN_EXIT_FAILURE : KILN_EXIT_OK);
}

/* ---- commands taking names: tag, rmi, inspect, push, pull ----------------------------------- */

typedef int (*names_fn)(kiln_engine *e, int argc, char **argv, bool flag, kiln_error **err);

typedef struct names_cmd {
    const char *name;
    const char *usage;
    int min_args, max_args; /* positional arguments; max -1 = any */
    const char *flag;       /* an optional boolean long flag, or NULL */
    names_fn fn;
} names_cmd;

static int
run_names_cmd(const names_cmd *nc, int argc, char **argv)
{
    struct option longopts[] = {{"root", required_argument, NULL, OPT_ROOT},
                                {"help", no_argument, NULL, 'h'},
                                {nc->flag ? nc->flag : "help", no_argument, NULL, 'F'},
                                {NULL, 0, NULL, 0}};
    cmd_opts o = {0};
    kiln_error *err = NULL;
    kiln_engine *e = NULL;
    bool flag = false;
    int c, ret, nargs;

    getopt_reset();
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        if (common_opt(&o, c))
            continue;
        if (c == 'F' && nc->flag) {
            flag = true;
            continue;
        }
        kiln_cmd_bad_flag(nc->name, c, argc, argv);
        return usage(nc->usage, KILN_EXIT_USAGE);
    }
    if (o.help)
        return usage(nc->usage, KILN_EXIT_OK);
    nargs = argc - optind;
    if (nargs < nc->min_args || (nc->max_args >= 0 && nargs > nc->max_args)) {
        fprintf(stderr, "kiln %s: wrong number of arguments\n", nc->name);
        return usage(nc->usage, KILN_EXIT_USAGE);
    }
    signal(SIGPIPE, SIG_IGN); /* the registry client needs it */
    ret = kiln_cmd_open_engine(&e, o.root, &err);
    if (ret == 0)
        ret = nc->fn(e, nargs, argv + optind, flag, &err);
    kiln_engine_free(e);
    return finish(err, ret < 0 ? KILN_EXIT_FAILURE : KILN_EXIT_OK);
}

static int
tag_fn(kiln_engine *e, int argc, char **argv, bool flag, kiln_error **err)
{
    kiln_engine_image *img = NULL;
    int ret = kiln_engine_image_get(&img, e, argv[0], err);

    (void)argc, (void)flag;
    if (ret == 0)
        ret = kiln_engine_image_tag(e, img, argv[1], err);
    kiln_engine_image_free(img);
    return ret;
}

int
kiln_cmd_tag(int argc, char **argv)
{
    static const names_cmd nc = {"tag",
                                 "Usage: kiln tag [--root DIR] SOURCE_IMAGE TARGET_IMAGE\n\n"
                                 "Name an image of the local store.\n",
                                 2,
                                 2,
                                 NULL,
                                 tag_fn};

    return run_names_cmd(&nc, argc, argv);
}

/* `kiln rmi ID`: untag every name of the image id (prefix) ID, as docker rmi does. */
static int
rmi_id(kiln_engine *e, const char *id, kiln_error **err)
{
    kiln_engine_image *img = NULL;
    kiln_engine_image_entry *v = NULL;
    size_t n = 0;
    int ret = kiln_engine_image_get(&img, e, id, err);

    if (ret == 0)
        ret = kiln_engine_image_list(&v, &n, e, err);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        if (strcmp(v[i].config_digest, kiln_engine_image_config_digest(img)) != 0)
            continue;
        ret = kiln_engine_image_untag(e, v[i].name, err);
        if (ret == 0)
            printf("Untagged: %s\n", v[i].name);
    }
    kiln_engine_image_entries_free(v, n);
    kiln_engine_image_free(img);
    return ret;
}

static bool
looks_like_id(const char *s)
{
    if (kiln_str_has_prefix(s, "sha256:"))
        s += strlen("sha256:");
    return *s && strspn(s, "0123456789abcdef") == strlen(s);
}

static int
rmi_fn(kiln_engine *e, int argc, char **argv, bool flag, kiln_error **err)
{
    int ret = 0;

    (void)flag;
    for (int i = 0; i < argc; i++) {
        kiln_error *one = NULL;
        int r = kiln_engine_image_untag(e, argv[i], &one);
        if (r == 0) {
            printf("Untagged: %s\n", argv[i]);
            continue;
        }
        if (r == KILN_ENOTFOUND && looks_like_id(argv[i])) {
            kiln_error_free(&one);
            if (rmi_id(e, argv[i], &one) == 0)
                continue;
        }
        /* report each failure, go on with the rest, fail at the end */
        if (ret == 0) {
            ret = one->code;
            kiln_error_move(err, &one);
        } else {
            kiln_cmd_report(one);
            kiln_error_free(&one);
        }
    }
    return ret;
}

int
kiln_cmd_rmi(int argc, char **argv)
{
    static const names_cmd nc = {"rmi",
                                 "Usage: kiln rmi [--root DIR] IMAGE...\n\n"
                                 "Remove names from the local store (the content goes at the "
                                 "next prune).\n",
                                 1,
                                 -1,
                                 NULL,
                                 rmi_fn};

    return run_names_cmd(&nc, argc, argv);
}

static json_t *
inspect_one(const kiln_engine_image *img, const char *name)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "digest", json_string(kiln_engine_image_digest(img)));
    json_object_set_new(o, "id", json_string(kiln_engine_image_config_digest(img)));
    json_object_set_new(o, "size", json_integer(kiln_engine_image_size(img)));
    json_object_set_new(o, "manifest", json_loads(kiln_engine_image_manifest_json(img), 0, NULL));
    json_object_set_new(o, "config", json_loads(kiln_engine_image_config_json(img), 0, NULL));
    return o;
}

static int
inspect_fn(kiln_engine *e, int argc, char **argv, bool flag, kiln_error **err)
{
    json_t *arr = json_array();
    char *s;
    int ret = 0;

    (void)flag;
    for (int i = 0; ret == 0 && i < argc; i++) {
        kiln_engine_image *img = NULL;
        ret = kiln_engine_image_get(&img, e, argv[i], err);
        if (ret == 0)
            json_array_append_new(arr, inspect_one(img, argv[i]));
        kiln_engine_image_free(img);
    }
    if (ret == 0) {
        s = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
    }
    json_decref(arr);
    return ret;
}

int
kiln_cmd_inspect(int argc, char **argv)
{
    static const names_cmd nc = {"inspect",
                                 "Usage: kiln inspect [--root DIR] IMAGE...\n\n"
                                 "Print images of the local store as a JSON array (name, digest, "
                                 "id, size, manifest, config).\n",
                                 1,
                                 -1,
                                 NULL,
                                 inspect_fn};

    return run_names_cmd(&nc, argc, argv);
}

static int
push_fn(kiln_engine *e, int argc, char **argv, bool insecure, kiln_error **err)
{
    kiln_engine_image *img = NULL;
    const char *dest = argc > 1 ? argv[1] : argv[0];
    int ret = kiln_engine_image_get(&img, e, argv[0], err);

    if (ret == 0)
        ret = kiln_engine_image_push(e, img, dest, insecure, err);
    if (ret == 0)
        printf("%s: digest: %s size: %zu\n", dest, kiln_engine_image_digest(img),
               strlen(kiln_engine_image_manifest_json(img)));
    kiln_engine_image_free(img);
    return ret;
}

int
kiln_cmd_push(int argc, char **argv)
{
    static const names_cmd nc = {"push",
                                 "Usage: kiln push [--root DIR] [--insecure] NAME [DEST]\n\n"
                                 "Push an image of the local store to its registry (or as DEST).\n"
                                 "  --insecure   plain http to the registry (always for "
                                 "loopback)\n",
                                 1,
                                 2,
                                 "insecure",
                                 push_fn};

    return run_names_cmd(&nc, argc, argv);
}

static int
pull_fn(kiln_engine *e, int argc, char **argv, bool flag, kiln_error **err)
{
    kiln_engine_image *img = NULL;
    int ret = kiln_engine_image_pull(&img, e, argv[0], err);

    (void)argc, (void)flag;
    if (ret == 0)
        printf("Digest: %s\n", kiln_engine_image_digest(img));
    kiln_engine_image_free(img);
    return ret;
}

int
kiln_cmd_pull(int argc, char **argv)
{
    static const names_cmd nc = {"pull",
                                 "Usage: kiln pull [--root DIR] REF\n\n"
                                 "Pull an image (host platform) into the local store.\n",
                                 1,
                                 1,
                                 NULL,
                                 pull_fn};

    return run_names_cmd(&nc, argc, argv);
}

/* ---- save and load -------------------------------------------------------------------------- */

static const char save_usage[] = "Usage: kiln save [OPTIONS] IMAGE...\n\n"
                                 "Write images as a tar archive (default: stdout).\n\n"
                                 "  -o, --output FILE        write to FILE\n"
                                 "      --format docker|oci  archive kind (default docker)\n"
                                 "      --root DIR           state dir\n";

/* Every name must resolve to one image (the archive holds one); names that are ids tag nothing. */
static int
save_run(kiln_engine *e, char **names, int n, kiln_engine_archive kind, const char *out,
         kiln_error **err)
{
    kiln_engine_image *img = NULL;
    kiln_vec tags = KILN_VEC_INIT;
    int fd = STDOUT_FILENO, ret = 0;

    for (int i = 0; ret == 0 && i < n; i++) {
        kiln_engine_image *one = NULL;
        ret = kiln_engine_image_get(&one, e, names[i], err);
        if (ret == 0 && img &&
            strcmp(kiln_engine_image_digest(one), kiln_engine_image_digest(img)) != 0)
            ret = kiln_error_set(err, KILN_EUNSUPPORTED,
                                 "save: `%s` is another image; one archive holds one image",
                                 names[i]);
        /* an id (12+ hex digits) names no tag */
        if (ret == 0 && !(looks_like_id(names[i]) && strlen(names[i]) >= 12))
            kiln_vec_push(&tags, names[i]);
        if (!img)
            img = one;
        else
            kiln_engine_image_free(one);
    }
    kiln_vec_push(&tags, NULL);
    if (ret == 0 && out) {
        fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            ret = kiln_error_errno(err, errno, "open `%s`", out);
    } else if (ret == 0 && isatty(STDOUT_FILENO)) {
        ret = kiln_error_set(err, KILN_EINVAL,
                             "refusing to write an archive to a terminal: use -o FILE");
    }
    if (ret == 0)
        ret = kiln_engine_image_write_archive(e, img, kind, (const char *const *)tags.items, fd,
                                              err);
    if (out && fd >= 0 && close(fd) < 0 && ret == 0)
        ret = kiln_error_errno(err, errno, "close `%s`", out);
    if (ret < 0 && out && fd >= 0)
        unlink(out);
    kiln_vec_dispose(&tags, NULL);
    kiln_engine_image_free(img);
    return ret;
}

int
kiln_cmd_save(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"format", required_argument, NULL, 'f'},
                                             {"root", required_argument, NULL, OPT_ROOT},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    kiln_engine_archive kind = KILN_ENGINE_ARCHIVE_DOCKER;
    const char *out = NULL;
    cmd_opts o = {0};
    kiln_error *err = NULL;
    kiln_engine *e = NULL;
    int c, ret;

    getopt_reset();
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        if (common_opt(&o, c))
            continue;
        if (c == 'o') {
            out = optarg;
        } else if (c == 'f' && strcmp(optarg, "docker") == 0) {
            kind = KILN_ENGINE_ARCHIVE_DOCKER;
        } else if (c == 'f' && strcmp(optarg, "oci") == 0) {
            kind = KILN_ENGINE_ARCHIVE_OCI;
        } else if (c == 'f') {
            fprintf(stderr, "kiln save: --format `%s`: want docker or oci\n", optarg);
            return KILN_EXIT_USAGE;
        } else {
            kiln_cmd_bad_flag("save", c, argc, argv);
            return usage(save_usage, KILN_EXIT_USAGE);
        }
    }
    if (o.help)
        return usage(save_usage, KILN_EXIT_OK);
    if (optind >= argc) {
        fprintf(stderr, "kiln save: no image given\n");
        return usage(save_usage, KILN_EXIT_USAGE);
    }
    ret = kiln_cmd_open_engine(&e, o.root, &err);
    if (ret == 0)
        ret = save_run(e, argv + optind, argc - optind, kind, out, &err);
    kiln_engine_free(e);
    return finish(err, ret < 0 ? KILN_EXIT_FAILURE : KILN_EXIT_OK);
}

static const char load_usage[] = "Usage: kiln load [OPTIONS]\n\n"
                                 "Load images from a docker or OCI archive (default: stdin).\n\n"
                                 "  -i, --input FILE   read FILE\n"
                                 "      --root DIR     state dir\n";

static int
load_run(kiln_engine *e, const char *in, kiln_error **err)
{
    char **names = NULL;
    int fd = STDIN_FILENO, ret = 0;

    if (in) {
        fd = open(in, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_errno(err, errno, "open `%s`", in);
    }
    ret = kiln_engine_image_load(&names, e, fd, err);
    for (size_t i = 0; ret == 0 && names && names[i]; i++) {
        if (kiln_str_has_prefix(names[i], "sha256:"))
            printf("Loaded image ID: %s\n", names[i]);
        else
            printf("Loaded image: %s\n", names[i]);
    }
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
    if (in)
        close(fd);
    return ret;
}

int
kiln_cmd_load(int argc, char **argv)
{
    static const struct option longopts[] = {{"input", required_argument, NULL, 'i'},
                                             {"root", required_argument, NULL, OPT_ROOT},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *in = NULL;
    cmd_opts o = {0};
    kiln_error *err = NULL;
    kiln_engine *e = NULL;
    int c, ret;

    getopt_reset();
    while ((c = getopt_long(argc, argv, ":hi:", longopts, NULL)) != -1) {
        if (common_opt(&o, c))
            continue;
        if (c == 'i') {
            in = optarg;
            continue;
        }
        kiln_cmd_bad_flag("load", c, argc, argv);
        return usage(load_usage, KILN_EXIT_USAGE);
    }
    if (o.help)
        return usage(load_usage, KILN_EXIT_OK);
    if (optind != argc) {
        fprintf(stderr, "kiln load: unexpected argument `%s`\n", argv[optind]);
        return usage(load_usage, KILN_EXIT_USAGE);
    }
    ret = kiln_cmd_open_engine(&e, o.root, &err);
    if (ret == 0)
        ret = load_run(e, in, &err);
    kiln_engine_free(e);
    return finish(err, ret < 0 ? KILN_EXIT_FAILURE : KILN_EXIT_OK);
}

/* ---- run ------------------------------------------------------------------------------------ */

static const char run_usage[] =
        "Usage: kiln run [OPTIONS] IMAGE [COMMAND [ARG...]]\n\n"
        "Run a command in a new sandbox on an image of the local store (its writable layer is "
        "removed afterwards).\n\n"
        "      --rm                remove the container afterwards (always done)\n"
        "  -i, --interactive       keep stdin attached (the command reads kiln's stdin)\n"
        "  -e, --env K=V           set an environment variable (repeatable)\n"
        "  -u, --user USER         user[:group] to run as\n"
        "  -w, --workdir DIR       working directory\n"
        "      --entrypoint CMD    override the image's entrypoint\n"
        "      --network host|none network (default none)\n"
        "      --root DIR          state dir\n";

typedef struct run_args {
    kiln_vec env; /* borrowed from argv */
    const char *user, *workdir, *entrypoint;
    bool network_host, interactive;
} run_args;

/* Parse run's flags; returns -1 to go on, else an exit code. */
static int
run_parse(run_args *ra, cmd_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {{"rm", no_argument, NULL, 'R'},
                                             {"env", required_argument, NULL, 'e'},
                                             {"interactive", no_argument, NULL, 'i'},
                                             {"user", required_argument, NULL, 'u'},
                                             {"workdir", required_argument, NULL, 'w'},
                                             {"entrypoint", required_argument, NULL, 'E'},
                                             {"network", required_argument, NULL, 'n'},
                                             {"root", required_argument, NULL, OPT_ROOT},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;

    getopt_reset();
    /* "+": options stop at the image name; the command's own flags follow it */
    while ((c = getopt_long(argc, argv, "+:hie:u:w:", longopts, NULL)) != -1) {
        if (common_opt(o, c) || c == 'R')
            continue;
        if (c == 'i') {
            ra->interactive = true;
        } else if (c == 'e' && strchr(optarg, '=') && optarg[0] != '=') {
            kiln_vec_push(&ra->env, optarg);
        } else if (c == 'e') {
            fprintf(stderr, "kiln run: --env `%s`: want K=V\n", optarg);
            return KILN_EXIT_USAGE;
        } else if (c == 'u') {
            ra->user = optarg;
        } else if (c == 'w') {
            ra->workdir = optarg;
        } else if (c == 'E') {
            ra->entrypoint = optarg;
        } else if (c == 'n' && (strcmp(optarg, "host") == 0 || strcmp(optarg, "none") == 0)) {
            ra->network_host = strcmp(optarg, "host") == 0;
        } else if (c == 'n') {
            fprintf(stderr, "kiln run: --network `%s`: want host or none\n", optarg);
            return KILN_EXIT_USAGE;
        } else {
            kiln_cmd_bad_flag("run", c, argc, argv);
            return usage(run_usage, KILN_EXIT_USAGE);
        }
    }
    if (o->help)
        return usage(run_usage, KILN_EXIT_OK);
    if (optind >= argc) {
        fprintf(stderr, "kiln run: no image given\n");
        return usage(run_usage, KILN_EXIT_USAGE);
    }
    return -1;
}

int
kiln_cmd_run(int argc, char **argv)
{
    run_args ra = {.env = KILN_VEC_INIT};
    kiln_engine_run_opts ro = {.version = KILN_ENGINE_RUN_OPTS_VERSION};
    const char *ep[2] = {NULL, NULL};
    cmd_opts o = {0};
    kiln_error *err = NULL;
    kiln_engine *e = NULL;
    kiln_engine_image *img = NULL;
    int status = 0, ret, code = run_parse(&ra, &o, argc, argv);

    if (code >= 0) {
        kiln_vec_dispose(&ra.env, NULL);
        return code;
    }
    kiln_vec_push(&ra.env, NULL);
    ep[0] = ra.entrypoint;
    ro.args = optind + 1 < argc ? (const char *const *)argv + optind + 1 : NULL;
    ro.entrypoint = ra.entrypoint ? ep : NULL;
    ro.env = (const char *const *)ra.env.items;
    ro.user = ra.user;
    ro.workdir = ra.workdir;
    ro.network_host = ra.network_host;
    ro.interactive = ra.interactive;
    ret = kiln_cmd_open_engine(&e, o.root, &err);
    if (ret == 0)
        ret = kiln_engine_image_get(&img, e, argv[optind], &err);
    if (ret == 0)
        ret = kiln_engine_image_run(&status, e, img, &ro, &err);
    kiln_engine_image_free(img);
    kiln_engine_free(e);
    kiln_vec_dispose(&ra.env, NULL);
    /* kiln's own failure is 1, as for every command; else the command's status */
    return finish(err, ret < 0 ? KILN_EXIT_FAILURE : status);
}
