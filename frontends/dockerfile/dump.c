/*
 * dump.c: BuildKit's Node.Dump(), the S-expression form the parser corpus is written in:
 *
 *     (copy ["--from=build"] "/out" "/bin/app")
 *     (onbuild (run "echo" "hi"))
 *
 * keyword lowercased, flags as Go's %q of a []string, each argument as strconv.Quote, a node with
 * children dumped in parentheses; the whole text is trimmed of surrounding whitespace.
 */
#include "base/base.h"
#include "base/buf.h"
#include "frontends/dockerfile/df_internal.h"

static void
put_quoted(kiln_buf *b, const char *s, size_t len)
{
    cleanup_free char *q = kiln_str_go_quote(s, len);

    kiln_buf_puts(b, q, NULL);
}

static void
dump_into(kiln_buf *out, const kiln_df_node *n)
{
    kiln_buf b = KILN_BUF_INIT;
    size_t start, end;

    for (const char *p = n->value; *p; p++)
        kiln_buf_putc(&b, (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p, NULL);
    if (n->flags.len > 0) {
        kiln_buf_puts(&b, " [", NULL);
        for (size_t i = 0; i < n->flags.len; i++) {
            if (i > 0)
                kiln_buf_putc(&b, ' ', NULL);
            put_quoted(&b, n->flags.items[i], strlen(n->flags.items[i]));
        }
        kiln_buf_putc(&b, ']', NULL);
    }
    for (size_t i = 0; i < n->children.len; i++) {
        kiln_buf_putc(&b, '(', NULL);
        dump_into(&b, n->children.items[i]);
        kiln_buf_puts(&b, ")\n", NULL);
    }
    for (const kiln_df_node *a = n->next; a; a = a->next) {
        kiln_buf_putc(&b, ' ', NULL);
        if (a->children.len > 0)
            dump_into(&b, a);
        else
            put_quoted(&b, a->value, a->value_len);
    }
    kiln_df__trim_space(kiln_buf_cstr(&b), b.len, &start, &end);
    kiln_buf_put(out, kiln_buf_cstr(&b) + start, end - start, NULL);
    kiln_buf_dispose(&b);
}

char *
kiln_df_node_dump(const kiln_df_node *n)
{
    kiln_buf out = KILN_BUF_INIT;

    dump_into(&out, n);
    return kiln_buf_detach(&out);
}
