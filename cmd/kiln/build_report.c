/*
 * build_report.c: what `kiln build` prints when a step fails, as buildx does: the step's last
 * output lines in a box, then the Dockerfile lines of the instruction with ">>>" marks, taken
 * from the source locations the frontend put on the LLB vertex.
 */
#include "cmd/kiln/build.h"
#include "llb/llb.h"

#include "base/base.h"

#define REPORT_TAIL_LINES 10
#define REPORT_CONTEXT    2 /* lines shown before and after the instruction */

/* Line `n` (1-based) of data: pointer and length, or NULL past the end. */
static const char *
nth_line(const char *data, size_t len, int n, size_t *llen)
{
    const char *p = data, *end = data + len;

    for (int i = 1; i < n && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return NULL;
        p = nl + 1;
    }
    if (p >= end)
        return NULL;
    {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        *llen = nl ? (size_t)(nl - p) : (size_t)(end - p);
    }
    return p;
}

static void
print_source(FILE *out, const Pb__SourceInfo *info, int start, int end)
{
    const char *data = (const char *)info->data.data;
    size_t len = info->data.len, llen = 0;
    int from = start - REPORT_CONTEXT < 1 ? 1 : start - REPORT_CONTEXT;

    if (start == end)
        fprintf(out, "%s:%d\n", info->filename, start);
    else
        fprintf(out, "%s:%d-%d\n", info->filename, start, end);
    fprintf(out, "--------------------\n");
    for (int n = from; n <= end + REPORT_CONTEXT; n++) {
        const char *l = nth_line(data, len, n, &llen);
        if (!l)
            break;
        if (llen && l[llen - 1] == '\r')
            llen--;
        fprintf(out, " %3d | %s%.*s\n", n, n >= start && n <= end ? ">>> " : "    ", (int)llen, l);
    }
    fprintf(out, "--------------------\n");
}

static void
print_locations(FILE *out, const kiln_llb_graph *g, const char *digest)
{
    const kiln_llb_node *node = kiln_llb_graph_find(g, digest);
    const Pb__Definition *def = kiln_llb_graph_definition(g);

    if (!node || !node->locations || !def->source)
        return;
    for (size_t i = 0; i < node->locations->n_locations; i++) {
        const Pb__Location *loc = node->locations->locations[i];
        if (loc->sourceindex < 0 || (size_t)loc->sourceindex >= def->source->n_infos)
            continue;
        for (size_t j = 0; j < loc->n_ranges; j++) {
            const Pb__Range *r = loc->ranges[j];
            if (!r->start)
                continue;
            print_source(out, def->source->infos[loc->sourceindex], r->start->line,
                         r->end && r->end->line >= r->start->line ? r->end->line : r->start->line);
        }
    }
}

void
build_report_failure(FILE *out, kiln_progress *p, const void *def, size_t def_len)
{
    const char *digest = kiln_progress_failed_digest(p);
    cleanup_free char *name = NULL, *tail = NULL;
    kiln_llb_graph *g = NULL;
    kiln_error *tmp = NULL;

    if (!digest || !kiln_progress_step_tail(&name, &tail, p, digest, REPORT_TAIL_LINES))
        return;
    fprintf(out, "------\n > %s:\n", name);
    if (*tail) {
        const char *l = tail;
        while (l && *l) {
            const char *nl = strchr(l, '\n');
            int n = nl ? (int)(nl - l) : (int)strlen(l);
            fprintf(out, "%.*s\n", n, l);
            l = nl ? nl + 1 : NULL;
        }
    }
    fprintf(out, "------\n");
    if (def && kiln_llb_load(&g, def, def_len, &tmp) == 0)
        print_locations(out, g, digest);
    kiln_error_free(&tmp);
    kiln_llb_graph_free(g);
}
