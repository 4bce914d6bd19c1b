/*
 * cmd_du.c: `kiln du` and `kiln prune`, the build cache's disk usage and its removal, shaped
 * like `docker buildx du` and `docker buildx prune`:
 *
 *   kiln du [--verbose] [--root DIR]
 *   kiln prune [-a|--all] [--keep-storage SIZE] [--filter until=24h] [-n|--dry-run] [-f|--force]
 *              [--root DIR]
 *
 * Sizes print as buildx prints them (decimal units, four significant digits: "12.35MB"); input
 * sizes take docker's binary suffixes ("512MB", "2GiB", "1.5g"). The state dir is --root, else
 * $KILN_ROOT, else the engine's default.
 */
#include <ctype.h>
#include <getopt.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/str.h"
#include "cmd/kiln/cmd_common.h"
#include "cmd/kiln/commands.h"
#include "kiln/engine.h"

#include "base/base.h"

/* ---------------------------------------------------------------------------------------------
 * Formatting, as buildx (go-units HumanSize and HumanDuration)
 */

/* Decimal units with 4 significant digits: "0B", "4.096kB", "12.35MB". */
static void
human_size(char *out, size_t len, uint64_t bytes)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        u++;
    }
    snprintf(out, len, "%.4g%s", v, units[u]);
}

/* "Less than a second", "About a minute", "3 hours"... as go-units HumanDuration. */
static void
human_duration(char *out, size_t len, int64_t secs)
{
    int64_t mins = secs / 60, hours = (secs + 1800) / 3600; /* go-units rounds hours */
    if (secs < 1)
        snprintf(out, len, "Less than a second");
    else if (secs == 1)
        snprintf(out, len, "1 second");
    else if (secs < 60)
        snprintf(out, len, "%lld seconds", (long long)secs);
    else if (mins == 1)
        snprintf(out, len, "About a minute");
    else if (mins < 60)
        snprintf(out, len, "%lld minutes", (long long)mins);
    else if (hours == 1)
        snprintf(out, len, "About an hour");
    else if (hours < 48)
        snprintf(out, len, "%lld hours", (long long)hours);
    else if (hours < 24 * 7 * 2)
        snprintf(out, len, "%lld days", (long long)hours / 24);
    else if (hours < 24 * 30 * 2)
        snprintf(out, len, "%lld weeks", (long long)hours / 24 / 7);
    else if (hours < 24 * 365 * 2)
        snprintf(out, len, "%lld months", (long long)hours / 24 / 30);
    else
        snprintf(out, len, "%lld years", (long long)hours / 24 / 365);
}

/* "5 minutes ago", or "" when the time is not recorded. */
static void
last_used(char *out, size_t len, int64_t when)
{
    char d[64];
    int64_t now = (int64_t)time(NULL);
    if (when <= 0) {
        out[0] = '\0';
        return;
    }
    human_duration(d, sizeof(d), now > when ? now - when : 0);
    snprintf(out, len, "%s ago", d);
}

static int
usage_by_size(const void *a, const void *b)
{
    const kiln_engine_usage *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void
print_header(void)
{
    printf("%-72s %-12s %-12s %s\n", "ID", "RECLAIMABLE", "SIZE", "LAST ACCESSED");
}

static void
print_row(const kiln_engine_usage *u)
{
    char size[32], when[96];
    human_size(size, sizeof(size), u->size);
    last_used(when, sizeof(when), u->last_used);
    printf("%-72s %-12s %-12s %s\n", u->id, u->in_use ? "false" : "true", size, when);
}

static void
print_verbose(const kiln_engine_usage *u)
{
    char size[32], when[96], created[64];
    struct tm tm;
    time_t t = (time_t)u->created;
    human_size(size, sizeof(size), u->size);
    last_used(when, sizeof(when), u->last_used);
    printf("ID:\t\t%s\n", u->id);
    printf("Type:\t\t%s\n", u->kind);
    if (u->parent)
        printf("Parent:\t\t%s\n", u->parent);
    if (u->created > 0 && gmtime_r(&t, &tm) &&
        strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm) > 0)
        printf("Created at:\t%s\n", created);
    printf("Reclaimable:\t%s\n", u->in_use ? "false" : "true");
    printf("Shared:\t\t%s\n", u->shared ? "true" : "false");
    printf("Size:\t\t%s\n", size);
    if (u->description)
        printf("Description:\t%s\n", u->description);
    if (when[0])
        printf("Last used:\t%s\n", when);
    printf("\n");
}

static void
print_total_line(const char *what, uint64_t bytes)
{
    char size[32];
    human_size(size, sizeof(size), bytes);
    printf("%-16s%s\n", what, size);
}

/* ---------------------------------------------------------------------------------------------
 * kiln du
 */

static void
du_usage(FILE *out)
{
    fprintf(out, "Usage: kiln du [OPTIONS]\n\n"
                 "Show the disk usage of the build cache, one line per record.\n\n"
                 "  -v, --verbose   every detail of each record\n"
                 "      --root DIR  state dir (default $KILN_ROOT or /var/lib/kiln)\n");
}

static void
du_print(kiln_engine_usage *v, size_t n, bool verbose)
{
    uint64_t shared = 0, private_ = 0, reclaimable = 0, total = 0;
    if (n > 1)
        qsort(v, n, sizeof(*v), usage_by_size);
    if (!verbose && n > 0)
        print_header();
    for (size_t i = 0; i < n; i++) {
        if (verbose)
            print_verbose(&v[i]);
        else
            print_row(&v[i]);
        if (v[i].shared)
            shared += v[i].size;
        else
            private_ += v[i].size;
        if (!v[i].in_use)
            reclaimable += v[i].size;
        total += v[i].size;
    }
    if (n > 0 && !verbose)
        printf("\n");
    print_total_line("Shared:", shared);
    print_total_line("Private:", private_);
    print_total_line("Reclaimable:", reclaimable);
    print_total_line("Total:", total);
}

/* `kiln du`: exit 0, 1 when the store cannot be read, 2 on bad usage. */
int
kiln_cmd_du(int argc, char **argv)
{
    static const struct option longopts[] = {{"verbose", no_argument, NULL, 'v'},
                                             {"root", required_argument, NULL, 'r'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    const char *root = NULL;
    kiln_engine *e = NULL;
    kiln_engine_usage *v = NULL;
    size_t n = 0;
    bool verbose = false;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
        if (c == 'v') {
            verbose = true;
        } else if (c == 'r') {
            root = optarg;
        } else if (c == 'h') {
            du_usage(stdout);
            return KILN_EXIT_OK;
        } else {
            kiln_cmd_bad_flag("du", c, argc, argv);
            du_usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kiln du: unexpected argument `%s`\n", argv[optind]);
        du_usage(stderr);
        return KILN_EXIT_USAGE;
    }
    if (kiln_cmd_open_engine(&e, root, &err) < 0 || kiln_engine_du(&v, &n, e, &err) < 0) {
        kiln_cmd_report(err);
        kiln_engine_free(e);
        return KILN_EXIT_FAILURE;
    }
    du_print(v, n, verbose);
    kiln_engine_usage_free(v, n);
    kiln_engine_free(e);
    return KILN_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * kiln prune
 */

static void
prune_usage(FILE *out)
{
    fprintf(out, "Usage: kiln prune [OPTIONS]\n\n"
                 "Remove build cache that no image, history record or running build uses.\n\n"
                 "  -a, --all                 also remove internal records\n"
                 "      --filter until=DUR    only cache unused for DUR (Go duration: 24h, 90m)\n"
                 "      --keep-storage SIZE   keep this much cache (512MB, 2GiB, 1.5g)\n"
                 "  -n, --dry-run             show what would be removed, remove nothing\n"
                 "  -f, --force               do not ask for confirmation\n"
                 "      --root DIR            state dir (default $KILN_ROOT or /var/lib/kiln)\n");
}

/* A Go duration ("24h", "1h30m", "90s", "1.5h", "500ms") in whole seconds, rounded down.
 * KILN_EINVAL naming the text on anything else. */
static int
parse_duration(int64_t *out, const char *s, kiln_error **err)
{
    static const struct {
        const char *unit;
        double secs;
    } units[] = {{"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},
                 {"s", 1},     {"m", 60},    {"h", 3600}};
    const char *p = s;
    double total = 0;
    if (!*p)
        return kiln_error_set(err, KILN_EINVAL, "invalid duration ``");
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return 0;
    }
    while (*p) {
        char *end = NULL;
        double v;
        size_t best = 0, u = 0;
        if (!isdigit((unsigned char)*p) && *p != '.')
            return kiln_error_set(err, KILN_EINVAL, "invalid duration `%s`", s);
        v = strtod(p, &end);
        if (end == p)
            return kiln_error_set(err, KILN_EINVAL, "invalid duration `%s`", s);
        p = end;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t l = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, l) == 0 && l > best) {
                best = l;
                u = i;
            }
        }
        if (best == 0)
            return kiln_error_set(err, KILN_EINVAL, "invalid duration `%s`: missing unit", s);
        total += v * units[u].secs;
        p += best;
    }
    if (total > 9.2e18)
        return kiln_error_set(err, KILN_EINVAL, "invalid duration `%s`: too long", s);
    *out = (int64_t)total;
    return 0;
}

/* One --filter KEY=VALUE: until (and BuildKit's unused-for) are the ones kiln knows. */
static int
parse_filter(kiln_engine_prune_opts *o, const char *f, kiln_error **err)
{
    const char *eq = strchr(f, '=');
    if (!eq)
        return kiln_error_set(err, KILN_EINVAL, "--filter `%s`: want KEY=VALUE", f);
    if ((size_t)(eq - f) == strlen("until") && strncmp(f, "until", 5) == 0)
        return parse_duration(&o->until, eq + 1, err);
    if ((size_t)(eq - f) == strlen("unused-for") && strncmp(f, "unused-for", 10) == 0)
        return parse_duration(&o->until, eq + 1, err);
    return kiln_error_set(err, KILN_EINVAL, "--filter `%s`: unsupported filter (want until=DUR)",
                          f);
}

/* docker's question; true to go on. */
static bool
prune_confirm(bool all)
{
    char line[64];
    fprintf(stderr,
            "WARNING! This will remove all %sbuild cache. Are you sure you want to "
            "continue? [y/N] ",
            all ? "" : "dangling ");
    fflush(stderr);
    if (!fgets(line, sizeof(line), stdin))
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    return strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0;
}

static void
prune_print(const kiln_engine_usage *v, size_t n)
{
    uint64_t total = 0;
    bool header = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].kind, "key") == 0)
            continue; /* cache keys hold no bytes themselves */
        if (!header)
            print_header();
        header = true;
        print_row(&v[i]);
        total += v[i].size;
    }
    print_total_line("Total:", total);
}

typedef struct prune_args {
    kiln_engine_prune_opts o;
    const char *root;
    bool force;
} prune_args;

/* Parse the flags into *a; KILN_EXIT_OK, KILN_EXIT_USAGE (reported), or -1 after --help. */
static int
prune_parse(prune_args *a, int argc, char **argv)
{
    static const struct option longopts[] = {{"all", no_argument, NULL, 'a'},
                                             {"filter", required_argument, NULL, 'F'},
                                             {"keep-storage", required_argument, NULL, 'k'},
                                             {"dry-run", no_argument, NULL, 'n'},
                                             {"force", no_argument, NULL, 'f'},
                                             {"root", required_argument, NULL, 'r'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":afnh", longopts, NULL)) != -1) {
        if (c == 'a') {
            a->o.all = true;
        } else if (c == 'F') {
            if (parse_filter(&a->o, optarg, &err) < 0)
                break;
        } else if (c == 'k') {
            if (kiln_parse_size(optarg, &a->o.keep_storage, &err) < 0) {
                kiln_error_wrap(&err, "--keep-storage");
                break;
            }
        } else if (c == 'n') {
            a->o.dry_run = true;
        } else if (c == 'f') {
            a->force = true;
        } else if (c == 'r') {
            a->root = optarg;
        } else if (c == 'h') {
            prune_usage(stdout);
            return -1;
        } else {
            kiln_cmd_bad_flag("prune", c, argc, argv);
            prune_usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (err) {
        fprintf(stderr, "kiln prune: %s\n", err->msg);
        return KILN_EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "kiln prune: unexpected argument `%s`\n", argv[optind]);
        prune_usage(stderr);
        return KILN_EXIT_USAGE;
    }
    return KILN_EXIT_OK;
}

/* `kiln prune`: exit 0, 1 when the prune fails, 2 on bad usage. */
int
kiln_cmd_prune(int argc, char **argv)
{
    prune_args a = {KILN_ENGINE_PRUNE_OPTS_INIT, NULL, false};
    cleanup_kiln_error kiln_error *err = NULL;
    kiln_engine *e = NULL;
    kiln_engine_usage *v = NULL;
    size_t n = 0;
    int rc = prune_parse(&a, argc, argv);

    if (rc != KILN_EXIT_OK)
        return rc < 0 ? KILN_EXIT_OK : rc;
    if (!a.force && !a.o.dry_run && !prune_confirm(a.o.all))
        return KILN_EXIT_OK;
    if (kiln_cmd_open_engine(&e, a.root, &err) < 0 ||
        kiln_engine_prune(&v, &n, e, &a.o, &err) < 0) {
        kiln_cmd_report(err);
        kiln_engine_free(e);
        return KILN_EXIT_FAILURE;
    }
    prune_print(v, n);
    kiln_engine_usage_free(v, n);
    kiln_engine_free(e);
    return KILN_EXIT_OK;
}
