/*
 * cmd_history.c: `kiln history [--root DIR] [--format json] [ID]`: the builds recorded in the
 * state dir, newest first, with their outcome, step counts (executed and cached) and duration;
 * with an ID (or a unique prefix, or "latest"), that build's steps with their status and time.
 */
#include <getopt.h>
#include <jansson.h>
#include <time.h>

#include "base/str.h"
#include "cmd/kiln/cmd_common.h"
#include "cmd/kiln/commands.h"
#include "kiln/engine.h"

#include "base/base.h"

static void
history_usage(FILE *out)
{
    fprintf(out, "Usage: kiln history [OPTIONS] [ID|latest]\n\n"
                 "Show recorded builds, or the steps of one build.\n\n"
                 "  --format json   print the records as JSON, one per line\n"
                 "  --root DIR      state dir (default $KILN_ROOT or /var/lib/kiln)\n");
}

static void
ago(char *buf, size_t len, int64_t then)
{
    int64_t d = (int64_t)time(NULL) - then;

    if (d < 60)
        snprintf(buf, len, "%lld seconds ago", (long long)(d < 0 ? 0 : d));
    else if (d < 3600)
        snprintf(buf, len, "%lld minutes ago", (long long)(d / 60));
    else if (d < 86400)
        snprintf(buf, len, "%lld hours ago", (long long)(d / 3600));
    else
        snprintf(buf, len, "%lld days ago", (long long)(d / 86400));
}

static const char *
jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static double
jnum(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static void
print_list(json_t **recs, size_t n)
{
    printf("%-22s %-30s %-10s %-18s %-9s %s\n", "BUILD ID", "NAME", "STATUS", "STEPS", "DURATION",
           "CREATED");
    for (size_t i = n; i-- > 0;) {
        json_t *r = recs[i];
        char when[64], steps[64], dur[32];
        ago(when, sizeof(when), (int64_t)jnum(r, "started"));
        snprintf(steps, sizeof(steps), "%zu (%lld cached)",
                 json_array_size(json_object_get(r, "steps")), (long long)jnum(r, "cached"));
        snprintf(dur, sizeof(dur), "%.1fs", jnum(r, "duration_ms") / 1000);
        printf("%-22s %-30.30s %-10s %-18s %-9s %s\n", jstr(r, "id"), jstr(r, "name"),
               jstr(r, "status"), steps, dur, when);
    }
}

static void
print_one(json_t *r)
{
    json_t *steps = json_object_get(r, "steps"), *st;
    size_t i;

    printf("Build:    %s\nName:     %s\nStatus:   %s\nDuration: %.2fs\n", jstr(r, "id"),
           jstr(r, "name"), jstr(r, "status"), jnum(r, "duration_ms") / 1000);
    if (*jstr(r, "error"))
        printf("Error:    %s\n", jstr(r, "error"));
    printf("Steps:    %lld run, %lld cached\n\n", (long long)jnum(r, "executed"),
           (long long)jnum(r, "cached"));
    printf("%-9s %8s  %s\n", "STATUS", "TIME", "STEP");
    json_array_foreach(steps, i, st) printf("%-9s %7.2fs  %s\n", jstr(st, "status"),
                                            jnum(st, "duration_ms") / 1000, jstr(st, "name"));
}

static int
history_run(const char *root, const char *which, bool json, kiln_error **err)
{
    kiln_engine *e = NULL;
    char **rows = NULL;
    size_t n = 0, found = 0, match = 0;
    json_t **recs = NULL;
    int ret;

    ret = kiln_cmd_open_engine(&e, root, err);
    if (ret == 0)
        ret = kiln_engine_history_list(&rows, &n, e, err);
    if (ret == 0) {
        recs = xcalloc(n + 1, sizeof(*recs));
        for (size_t i = 0; i < n; i++)
            recs[i] = json_loads(rows[i], 0, NULL);
    }
    for (size_t i = 0; ret == 0 && which && i < n; i++) {
        if (recs[i] &&
            (strcmp(which, "latest") == 0 ? i == n - 1
                                          : kiln_str_has_prefix(jstr(recs[i], "id"), which))) {
            found++;
            match = i;
        }
    }
    if (ret == 0 && which && found == 0)
        ret = kiln_error_set(err, KILN_ENOTFOUND, "no build record %s", which);
    else if (ret == 0 && which && found > 1)
        ret = kiln_error_set(err, KILN_EINVAL, "build id prefix %s is ambiguous", which);
    if (ret == 0 && json) {
        for (size_t i = which ? match : 0; i < (which ? match + 1 : n); i++)
            printf("%s\n", rows[i]);
    } else if (ret == 0 && which) {
        print_one(recs[match]);
    } else if (ret == 0) {
        print_list(recs, n);
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i]);
        if (recs)
            json_decref(recs[i]);
    }
    free(rows);
    free(recs);
    kiln_engine_free(e);
    return ret;
}

int
kiln_cmd_history(int argc, char **argv)
{
    static const struct option longopts[] = {{"root", required_argument, NULL, 'r'},
                                             {"format", required_argument, NULL, 'F'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    cleanup_kiln_error kiln_error *err = NULL;
    const char *root = NULL;
    bool json = false;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'r') {
            root = optarg;
        } else if (c == 'F' && strcmp(optarg, "json") == 0) {
            json = true;
        } else if (c == 'h') {
            history_usage(stdout);
            return KILN_EXIT_OK;
        } else {
            if (c == 'F')
                fprintf(stderr, "kiln history: unknown format \"%s\" (want json)\n", optarg);
            history_usage(stderr);
            return KILN_EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        history_usage(stderr);
        return KILN_EXIT_USAGE;
    }
    if (history_run(root, optind < argc ? argv[optind] : NULL, json, &err) < 0) {
        kiln_cmd_report(err);
        return KILN_EXIT_FAILURE;
    }
    return KILN_EXIT_OK;
}
