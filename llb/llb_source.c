/*
 * llb_source.c: SourceOp constructors (image, local, git, http, generic), producing the same
 * identifiers, attrs and caps as BuildKit's Go client (client/llb/source.go) so that the digests
 * of equivalent graphs match.
 */
#include <ctype.h>

#include "base/buf.h"
#include "base/digest.h"
#include "llb/llb_internal.h"

#include "base/base.h"

int
kiln_llb_source(kiln_llb_state *out, kiln_llb_builder *b, const char *identifier,
                const kiln_llb_attr *attrs, size_t n_attrs, kiln_error **err)
{
    kiln_llb_vertex *v;
    Pb__SourceOp *src;

    if (!identifier || !*identifier)
        return kiln_error_set(err, KILN_EINVAL, "source op: empty identifier");
    v = kiln_llb__vertex_new(b);
    src = kiln_llb__alloc(b, sizeof(*src));
    pb__source_op__init(src);
    src->identifier = kiln_llb__strdup(b, identifier);
    for (size_t i = 0; i < n_attrs; i++)
        kiln_llb__set_attr(b, &pb__source_op__attrs_entry__descriptor, &src->attrs, &src->n_attrs,
                           attrs[i].key, attrs[i].value);
    v->op.op_case = PB__OP__OP_SOURCE;
    v->op.source = src;
    v->platform_specific = kiln_str_has_prefix(identifier, "docker-image://") ||
                           kiln_str_has_prefix(identifier, "oci-layout://");
    *out = (kiln_llb_state){v, 0};
    return 0;
}

static bool
repo_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '/';
}

static int
check_path(const char *path, const char *ref, kiln_error **err)
{
    if (!*path || path[0] == '/' || path[strlen(path) - 1] == '/' || strstr(path, "//"))
        return kiln_error_set(err, KILN_EINVAL, "invalid image reference `%s`", ref);
    for (const char *p = path; *p; p++) {
        if (isupper((unsigned char)*p))
            return kiln_error_set(err, KILN_EINVAL,
                                  "invalid image reference `%s`: repository name must be lowercase",
                                  ref);
        if (!repo_char_ok(*p))
            return kiln_error_set(err, KILN_EINVAL,
                                  "invalid image reference `%s`: bad character '%c'", ref, *p);
    }
    return 0;
}

static int
check_tag(const char *tag, const char *ref, kiln_error **err)
{
    size_t n = strlen(tag);

    if (n == 0 || n > 128 || tag[0] == '.' || tag[0] == '-')
        return kiln_error_set(err, KILN_EINVAL, "invalid image reference `%s`: bad tag", ref);
    for (const char *p = tag; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
            return kiln_error_set(err, KILN_EINVAL, "invalid image reference `%s`: bad tag", ref);
    }
    return 0;
}

/* docker's ParseNormalizedNamed + TagNameOnly: "alpine" -> "docker.io/library/alpine:latest". */
static int
normalize_image_ref(char **out, const char *ref, kiln_error **err)
{
    cleanup_free char *name = xstrdup(ref);
    const char *digest = NULL, *tag = NULL, *domain = "docker.io", *path = name;
    char *at = strchr(name, '@'), *slash, *colon;
    int ret;

    if (at) {
        *at = '\0';
        digest = at + 1;
        if (!kiln_digest_valid(digest))
            return kiln_error_set(err, KILN_EINVAL, "invalid image reference `%s`: bad digest",
                                  ref);
    }
    slash = strrchr(name, '/');
    colon = strrchr(slash ? slash : name, ':');
    if (colon) {
        *colon = '\0';
        tag = colon + 1;
        if ((ret = check_tag(tag, ref, err)) < 0)
            return ret;
    }
    slash = strchr(name, '/');
    if (slash &&
        (memchr(name, '.', (size_t)(slash - name)) || memchr(name, ':', (size_t)(slash - name)) ||
         strncmp(name, "localhost/", 10) == 0)) {
        *slash = '\0';
        domain = strcmp(name, "index.docker.io") == 0 ? "docker.io" : name;
        path = slash + 1;
    }
    if ((ret = check_path(path, ref, err)) < 0)
        return ret;
    *out = xasprintf("%s/%s%s%s%s%s%s", domain,
                     strcmp(domain, "docker.io") == 0 && !strchr(path, '/') ? "library/" : "", path,
                     tag || !digest ? ":" : "", tag ? tag : (digest ? "" : "latest"),
                     digest ? "@" : "", digest ? digest : "");
    return 0;
}

int
kiln_llb_image(kiln_llb_state *out, kiln_llb_builder *b, const char *ref, const char *resolve_mode,
               kiln_error **err)
{
    cleanup_free char *norm = NULL;
    cleanup_free char *id = NULL;
    kiln_llb_attr attr = {"image.resolvemode", resolve_mode};
    bool with_mode = resolve_mode && strcmp(resolve_mode, "default") != 0;
    int ret;

    if (!ref || !*ref)
        return kiln_error_set(err, KILN_EINVAL, "image: empty reference");
    if (with_mode && strcmp(resolve_mode, "pull") != 0 && strcmp(resolve_mode, "local") != 0)
        return kiln_error_set(err, KILN_EINVAL, "image `%s`: unknown resolve mode `%s`", ref,
                              resolve_mode);
    if ((ret = normalize_image_ref(&norm, ref, err)) < 0)
        return ret;
    id = xasprintf("docker-image://%s", norm);
    if ((ret = kiln_llb_source(out, b, id, &attr, with_mode ? 1 : 0, err)) < 0)
        return ret;
    kiln_llb_vertex_add_cap(out->vertex, "source.image");
    if (with_mode && strcmp(resolve_mode, "pull") == 0)
        kiln_llb_vertex_add_cap(out->vertex, "source.image.resolvemode");
    return 0;
}

/* Go's encoding/json of a []string: compact, with <, >, & and U+2028/9 escaped. */
static char *
go_json_strings(const char *const *v)
{
    kiln_buf b = KILN_BUF_INIT;

    kiln_buf_putc(&b, '[', NULL);
    for (size_t i = 0; v[i]; i++) {
        kiln_buf_puts(&b, i ? ",\"" : "\"", NULL);
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                kiln_buf_printf(&b, NULL, "\\%c", *p);
            else if (*p == '\n')
                kiln_buf_puts(&b, "\\n", NULL);
            else if (*p == '\r')
                kiln_buf_puts(&b, "\\r", NULL);
            else if (*p == '\t')
                kiln_buf_puts(&b, "\\t", NULL);
            else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&')
                kiln_buf_printf(&b, NULL, "\\u00%02x", *p);
            else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
                kiln_buf_printf(&b, NULL, "\\u202%c", p[2] == 0xa8 ? '8' : '9');
                p += 2;
            } else
                kiln_buf_putc(&b, (char)*p, NULL);
        }
        kiln_buf_putc(&b, '"', NULL);
    }
    kiln_buf_putc(&b, ']', NULL);
    return kiln_buf_detach(&b);
}

static void
local_pattern_attr(kiln_llb_vertex *v, const char *key, const char *cap, const char *const *list)
{
    cleanup_free char *json = NULL;

    if (!list || !list[0])
        return;
    json = go_json_strings(list);
    kiln_llb__set_attr(v->b, &pb__source_op__attrs_entry__descriptor, &v->op.source->attrs,
                       &v->op.source->n_attrs, key, json);
    kiln_llb_vertex_add_cap(v, cap);
}

static void
attr_cap(kiln_llb_vertex *v, const char *key, const char *value, const char *cap)
{
    if (!value || !*value)
        return;
    kiln_llb__set_attr(v->b, &pb__source_op__attrs_entry__descriptor, &v->op.source->attrs,
                       &v->op.source->n_attrs, key, value);
    if (cap)
        kiln_llb_vertex_add_cap(v, cap);
}

int
kiln_llb_local(kiln_llb_state *out, kiln_llb_builder *b, const char *name,
               const kiln_llb_local_opts *opts, kiln_error **err)
{
    cleanup_free char *id = NULL;
    kiln_llb_local_opts none = {0};
    kiln_llb_vertex *v;
    int ret;

    if (!name || !*name)
        return kiln_error_set(err, KILN_EINVAL, "local source: empty name");
    opts = opts ? opts : &none;
    id = xasprintf("local://%s", name);
    if ((ret = kiln_llb_source(out, b, id, NULL, 0, err)) < 0)
        return ret;
    v = out->vertex;
    attr_cap(v, "local.session", opts->session_id, "source.local.sessionid");
    if (!opts->session_id || !*opts->session_id)
        attr_cap(v, "local.unique", opts->unique_id, "source.local.unique");
    local_pattern_attr(v, "local.includepattern", "source.local.includepatterns",
                       opts->include_patterns);
    local_pattern_attr(v, "local.followpaths", "source.local.followpaths", opts->follow_paths);
    local_pattern_attr(v, "local.excludepatterns", "source.local.excludepatterns",
                       opts->exclude_patterns);
    attr_cap(v, "local.sharedkeyhint", opts->shared_key_hint, "source.local.sharedkeyhint");
    kiln_llb_vertex_add_cap(v, "source.local");
    return 0;
}

/* gitutil.ParseProtocol: strip a known scheme; scp-like "user@host:path" is ssh. */
static const char *
git_strip_scheme(const char *remote, bool *known, bool *ssh)
{
    static const char *const schemes[] = {"https://", "http://", "git://", "ssh://"};
    const char *at = strchr(remote, '@'), *colon = strchr(remote, ':');

    *known = true;
    *ssh = false;
    for (size_t i = 0; i < 4; i++) {
        if (kiln_str_has_prefix(remote, schemes[i])) {
            *ssh = i == 3;
            return remote + strlen(schemes[i]);
        }
    }
    /* scp-like: "user@host:path", the ':' before any '/' */
    if (at && colon && at < colon && (!strchr(remote, '/') || strchr(remote, '/') > colon)) {
        *ssh = true;
        return remote;
    }
    *known = false;
    return remote;
}

int
kiln_llb_git(kiln_llb_state *out, kiln_llb_builder *b, const char *remote, const char *ref,
             const kiln_llb_git_opts *opts, kiln_error **err)
{
    cleanup_free char *url = NULL;
    cleanup_free char *rem = NULL;
    cleanup_free char *id = NULL;
    bool known, ssh;
    char *colon;
    kiln_llb_vertex *v;
    int ret;

    if (!remote || !*remote)
        return kiln_error_set(err, KILN_EINVAL, "git source: empty remote");
    url = xstrndup(remote, strcspn(remote, "#"));
    rem = xstrdup(git_strip_scheme(remote, &known, &ssh));
    if (ssh && (colon = strchr(rem, ':')) != NULL)
        *colon = '/'; /* git@host:path -> git@host/path */
    if (!known) {
        char *full = xasprintf("https://%s", url);
        free(url);
        url = full;
    }
    id = xasprintf("git://%s%s%s%s%s", rem, (ref && *ref) || (opts && opts->subdir) ? "#" : "",
                   ref ? ref : "", opts && opts->subdir ? ":" : "",
                   opts && opts->subdir ? opts->subdir : "");
    if ((ret = kiln_llb_source(out, b, id, NULL, 0, err)) < 0)
        return ret;
    v = out->vertex;
    if (opts && opts->keep_git_dir)
        attr_cap(v, "git.keepgitdir", "true", "source.git.keepgitdir");
    attr_cap(v, "git.fullurl", url, "source.git.fullurl");
    attr_cap(v, "git.authtokensecret", "GIT_AUTH_TOKEN", NULL);
    attr_cap(v, "git.authheadersecret", "GIT_AUTH_HEADER", NULL);
    if (ssh) {
        kiln_llb_vertex_add_cap(v, "source.git.knownsshhosts");
        attr_cap(v, "git.mountsshsock", "default", "source.git.mountsshsock");
    }
    kiln_llb_vertex_add_cap(v, "source.git");
    return 0;
}

int
kiln_llb_http(kiln_llb_state *out, kiln_llb_builder *b, const char *url,
              const kiln_llb_http_opts *opts, kiln_error **err)
{
    kiln_llb_http_opts none = {0};
    char num[32];
    kiln_llb_vertex *v;
    int ret;

    if (!url || !(kiln_str_has_prefix(url, "http://") || kiln_str_has_prefix(url, "https://")))
        return kiln_error_set(err, KILN_EINVAL, "http source `%s`: not an http(s) URL",
                              url ? url : "");
    opts = opts ? opts : &none;
    if (opts->checksum && !kiln_digest_valid(opts->checksum))
        return kiln_error_set(err, KILN_EINVAL, "http source `%s`: bad checksum `%s`", url,
                              opts->checksum);
    if ((ret = kiln_llb_source(out, b, url, NULL, 0, err)) < 0)
        return ret;
    v = out->vertex;
    attr_cap(v, "http.checksum", opts->checksum, "source.http.checksum");
    attr_cap(v, "http.filename", opts->filename, NULL);
    if (opts->chmod) {
        snprintf(num, sizeof(num), "0%o", opts->chmod);
        attr_cap(v, "http.perm", num, "source.http.perm");
    }
    if (opts->uid) {
        snprintf(num, sizeof(num), "%d", opts->uid);
        attr_cap(v, "http.uid", num, "source.http.uidgid");
    }
    if (opts->gid) {
        snprintf(num, sizeof(num), "%d", opts->gid);
        attr_cap(v, "http.gid", num, "source.http.uidgid");
    }
    kiln_llb_vertex_add_cap(v, "source.http");
    return 0;
}
