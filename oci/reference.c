/*
 * reference.c: image references, parsed and normalised the way docker's distribution/reference
 * package does it (ParseNormalizedNamed + TagNameOnly):
 *
 *   [domain[:port]/]path[:tag][@algorithm:hex]
 *
 * The first path component is a domain when it contains '.' or ':' or is "localhost" (or an IPv6
 * literal in brackets); otherwise the domain is docker.io, and a single-component path gets the
 * "library/" prefix. A reference without tag and digest gets the tag "latest". Names must be lower
 * case; tag and digest follow the grammar of specs.md §3.1 and §1.2. Every error names the input.
 */
#include <ctype.h>

#include "oci/oci.h"

#include "base/base.h"

#define DOCKER_DOMAIN "docker.io"

static bool
is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component ::= [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* */
static bool
component_valid(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
        return false;
    while (i < len) {
        if (is_lower_alnum(s[i])) {
            i++;
            continue;
        }
        /* a separator run: ".", "_", "__" or "-+", always followed by alnum */
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i += (i + 1 < len && s[i + 1] == '_') ? 2 : 1;
        } else if (s[i] == '-') {
            while (i < len && s[i] == '-')
                i++;
        } else {
            return false;
        }
        if (i >= len || !is_lower_alnum(s[i]))
            return false;
    }
    return true;
}

static bool
path_valid(const char *path)
{
    const char *p = path;

    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);

        if (!component_valid(p, n))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

/* domain ::= host [":" port]; host ::= label ("." label)* | "[" ipv6 "]" */
static bool
domain_valid(const char *d)
{
    const char *port = NULL;
    size_t hostlen;

    if (d[0] == '[') {
        const char *end = strchr(d, ']');

        if (!end || end == d + 1)
            return false;
        for (const char *q = d + 1; q < end; q++) {
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
                return false;
        }
        port = end + 1;
        if (*port == '\0')
            return true;
        if (*port != ':')
            return false;
    } else {
        port = strchr(d, ':');
        hostlen = port ? (size_t)(port - d) : strlen(d);
        if (hostlen == 0)
            return false;
        for (size_t i = 0; i < hostlen; i++) {
            char c = d[i];
            bool edge = i == 0 || i == hostlen - 1 || d[i - 1] == '.' || d[i + 1] == '.';

            if (isalnum((unsigned char)c))
                continue;
            if (c == '-' && !edge)
                continue;
            if (c == '.' && i != 0 && i != hostlen - 1 && d[i + 1] != '.')
                continue;
            return false;
        }
        if (!port)
            return true;
    }
    /* ":" port: 1-5 digits */
    port++;
    if (*port == '\0' || strlen(port) > 5)
        return false;
    for (const char *q = port; *q; q++) {
        if (!isdigit((unsigned char)*q))
            return false;
    }
    return true;
}

/* tag ::= [A-Za-z0-9_][A-Za-z0-9._-]{0,127} */
static bool
tag_valid(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!isalnum((unsigned char)t[i]) && t[i] != '_' && t[i] != '.' && t[i] != '-')
            return false;
    }
    return true;
}

static bool
is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (const char *q = s; *q; q++) {
        if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')))
            return false;
    }
    return true;
}

static bool
has_upper(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z')
            return true;
    }
    return false;
}

/* Split "name" into domain and remainder (docker's splitDockerDomain). Both owned by caller. */
static void
split_domain(const char *name, char **domain, char **rest)
{
    const char *slash = strchr(name, '/');

    if (slash) {
        size_t n = (size_t)(slash - name);
        bool is_domain = memchr(name, '.', n) || memchr(name, ':', n) ||
                         (n == 9 && memcmp(name, "localhost", 9) == 0) || has_upper(name, n) ||
                         name[0] == '[';

        if (is_domain) {
            *domain = xstrndup(name, n);
            *rest = xstrdup(slash + 1);
            if (strcmp(*domain, "index.docker.io") == 0) {
                free(*domain);
                *domain = xstrdup(DOCKER_DOMAIN);
            }
            goto library;
        }
    }
    *domain = xstrdup(DOCKER_DOMAIN);
    *rest = xstrdup(name);
library:
    if (strcmp(*domain, DOCKER_DOMAIN) == 0 && !strchr(*rest, '/')) {
        char *p = xasprintf("library/%s", *rest);

        free(*rest);
        *rest = p;
    }
}

/* Check the digest part ("algorithm:encoded") of a reference. */
static int
check_digest(const char *input, const char *digest, kiln_error **err)
{
    if (!kiln_oci_digest_valid(digest))
        return kiln_error_set(err, KILN_EINVAL, "invalid reference `%s`: invalid digest `%s`",
                              input, digest);
    return 0;
}

/* Split "name[:tag]" where the tag is after the last ':' that follows the last '/'. */
static void
split_tag(char *name_tag, char **tag_out)
{
    char *slash = strrchr(name_tag, '/');
    char *colon = strrchr(slash ? slash : name_tag, ':');

    *tag_out = NULL;
    if (colon) {
        *colon = '\0';
        *tag_out = colon + 1;
    }
}

static int
parse_name(kiln_oci_ref *r, const char *input, char *name, kiln_error **err)
{
    if (name[0] == '\0')
        return kiln_error_set(err, KILN_EINVAL, "invalid reference `%s`: empty repository name",
                              input);
    if (is_hex64(name))
        return kiln_error_set(err, KILN_EINVAL,
                              "invalid reference `%s`: cannot specify 64-byte hexadecimal strings",
                              input);
    split_domain(name, &r->domain, &r->path);
    if (!domain_valid(r->domain))
        return kiln_error_set(err, KILN_EINVAL, "invalid reference `%s`: invalid domain `%s`",
                              input, r->domain);
    if (has_upper(r->path, strlen(r->path)))
        return kiln_error_set(err, KILN_EINVAL,
                              "invalid reference `%s`: repository name must be lowercase", input);
    if (!path_valid(r->path))
        return kiln_error_set(err, KILN_EINVAL,
                              "invalid reference `%s`: invalid repository name `%s`", input,
                              r->path);
    if (strlen(r->domain) + 1 + strlen(r->path) > KILN_OCI_REF_MAX)
        return kiln_error_set(err, KILN_EINVAL,
                              "invalid reference `%s`: repository name longer than %d characters",
                              input, KILN_OCI_REF_MAX);
    return 0;
}

/*
 * kiln_oci_ref_parse: see oci.h. Returns 0, or KILN_EINVAL with a message naming the input and
 * what is wrong with it. On failure *out is left zeroed.
 */
int
kiln_oci_ref_parse(kiln_oci_ref *out, const char *s, kiln_error **err)
{
    kiln_oci_ref r = {0};
    cleanup_free char *copy = NULL;
    char *at, *tag = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    if (!s || s[0] == '\0')
        return kiln_error_set(err, KILN_EINVAL, "invalid reference: empty string");
    if (strlen(s) > 4 * KILN_OCI_REF_MAX)
        return kiln_error_set(err, KILN_EINVAL, "invalid reference: longer than %d bytes",
                              4 * KILN_OCI_REF_MAX);
    copy = xstrdup(s);
    at = strchr(copy, '@');
    if (at) {
        *at = '\0';
        ret = check_digest(s, at + 1, err);
        if (ret < 0)
            return ret;
        r.digest = xstrdup(at + 1);
    }
    split_tag(copy, &tag);
    ret = parse_name(&r, s, copy, err);
    if (ret < 0)
        goto fail;
    if (tag) {
        if (!tag_valid(tag)) {
            ret = kiln_error_set(err, KILN_EINVAL, "invalid reference `%s`: invalid tag `%s`", s,
                                 tag);
            goto fail;
        }
        r.tag = xstrdup(tag);
    } else if (!r.digest) {
        r.tag = xstrdup("latest");
    }
    *out = r;
    return 0;
fail:
    kiln_oci_ref_dispose(&r);
    return ret;
}

/* kiln_oci_ref_dispose: free the strings of *ref (NULL-safe fields) and zero it. */
void
kiln_oci_ref_dispose(kiln_oci_ref *ref)
{
    free(ref->domain);
    free(ref->path);
    free(ref->tag);
    free(ref->digest);
    memset(ref, 0, sizeof(*ref));
}

/* kiln_oci_ref_string: "domain/path[:tag][@digest]", owned by the caller. */
char *
kiln_oci_ref_string(const kiln_oci_ref *ref)
{
    return xasprintf("%s/%s%s%s%s%s", ref->domain, ref->path, ref->tag ? ":" : "",
                     ref->tag ? ref->tag : "", ref->digest ? "@" : "",
                     ref->digest ? ref->digest : "");
}

/* kiln_oci_ref_name: "domain/path", owned by the caller. */
char *
kiln_oci_ref_name(const kiln_oci_ref *ref)
{
    return xasprintf("%s/%s", ref->domain, ref->path);
}

/* kiln_oci_ref_object: the digest when set, else the tag; borrowed from ref. */
const char *
kiln_oci_ref_object(const kiln_oci_ref *ref)
{
    return ref->digest ? ref->digest : ref->tag;
}

/* kiln_oci_ref_copy: deep copy; *out owned by the caller. */
void
kiln_oci_ref_copy(kiln_oci_ref *out, const kiln_oci_ref *ref)
{
    out->domain = xstrdup(ref->domain);
    out->path = xstrdup(ref->path);
    out->tag = xstrdup(ref->tag);
    out->digest = xstrdup(ref->digest);
}
