/*
 * platform.c: OCI platforms ("linux/arm64/v8") and the matching rules used to pick an image from
 * an index. Architectures are normalised to GOARCH names the way containerd's platforms package
 * does it (x86_64 -> amd64, aarch64 -> arm64, armhf -> arm/v7 ...), so a platform given by a user,
 * read from uname or read from a manifest list compare equal.
 */
#include <ctype.h>
#include <sys/utsname.h>

#include "oci/oci.h"

#include "base/base.h"

static void
set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

static void
lower(char *s)
{
    for (; s && *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Architecture aliases -> (GOARCH, implied variant or NULL). */
static const struct {
    const char *alias;
    const char *arch;
    const char *variant;
} arch_aliases[] = {
        {"x86_64", "amd64", NULL}, {"x86-64", "amd64", NULL},    {"i386", "386", NULL},
        {"i686", "386", NULL},     {"aarch64", "arm64", NULL},   {"armhf", "arm", "v7"},
        {"armel", "arm", "v6"},    {"armv7l", "arm", "v7"},      {"armv6l", "arm", "v6"},
        {"armv8l", "arm", "v8"},   {"ppc64el", "ppc64le", NULL},
};

/* kiln_oci_platform_normalize: see oci.h. */
void
kiln_oci_platform_normalize(kiln_oci_platform *p)
{
    lower(p->os);
    lower(p->architecture);
    lower(p->variant);
    if (p->os && strcmp(p->os, "macos") == 0)
        set_str(&p->os, "darwin");
    for (size_t i = 0; p->architecture && i < sizeof(arch_aliases) / sizeof(arch_aliases[0]); i++) {
        if (strcmp(p->architecture, arch_aliases[i].alias) == 0) {
            set_str(&p->architecture, arch_aliases[i].arch);
            if (!p->variant && arch_aliases[i].variant)
                set_str(&p->variant, arch_aliases[i].variant);
            break;
        }
    }
    if (p->variant && p->variant[0] == '\0')
        set_str(&p->variant, NULL);
    if (!p->architecture)
        return;
    if (strcmp(p->architecture, "arm64") == 0 && (!p->variant || strcmp(p->variant, "8") == 0))
        set_str(&p->variant, "v8");
    else if (strcmp(p->architecture, "arm") == 0 && !p->variant)
        set_str(&p->variant, "v7");
    else if (strcmp(p->architecture, "arm") == 0 && p->variant[0] >= '5' && p->variant[0] <= '8' &&
             p->variant[1] == '\0') {
        char v[3] = {'v', p->variant[0], '\0'};

        set_str(&p->variant, v);
    } else if (strcmp(p->architecture, "amd64") == 0 && p->variant &&
               strcmp(p->variant, "v1") == 0) {
        set_str(&p->variant, NULL); /* amd64/v1 is plain amd64 */
    }
}

static bool
part_valid(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    }
    return true;
}

/*
 * kiln_oci_platform_parse: "os/arch[/variant]" (an OS is required, as in `--platform linux/amd64`),
 * normalised. Returns 0 or KILN_EINVAL naming the input. *out owned by caller.
 */
int
kiln_oci_platform_parse(kiln_oci_platform *out, const char *s, kiln_error **err)
{
    cleanup_free char *copy = NULL;
    char *parts[3] = {NULL, NULL, NULL};
    char *p;
    int n = 0;

    memset(out, 0, sizeof(*out));
    if (!s || strlen(s) > 256)
        return kiln_error_set(err, KILN_EINVAL, "invalid platform: empty or too long");
    copy = xstrdup(s);
    p = copy;
    for (;;) {
        char *slash = strchr(p, '/');

        if (n == 3)
            return kiln_error_set(err, KILN_EINVAL,
                                  "invalid platform `%s`: expected os/arch[/variant]", s);
        parts[n++] = p;
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    for (int i = 0; i < n; i++) {
        if (!part_valid(parts[i]))
            return kiln_error_set(err, KILN_EINVAL,
                                  "invalid platform `%s`: expected os/arch[/variant]", s);
    }
    if (n < 2)
        return kiln_error_set(err, KILN_EINVAL, "invalid platform `%s`: expected os/arch[/variant]",
                              s);
    out->os = xstrdup(parts[0]);
    out->architecture = xstrdup(parts[1]);
    out->variant = xstrdup(parts[2]);
    kiln_oci_platform_normalize(out);
    return 0;
}

/* kiln_oci_platform_host: linux/<GOARCH of uname -m>[/variant]; *out owned by caller. */
void
kiln_oci_platform_host(kiln_oci_platform *out)
{
    struct utsname u;

    memset(out, 0, sizeof(*out));
    out->os = xstrdup("linux");
    out->architecture = xstrdup(uname(&u) == 0 ? u.machine : "amd64");
    kiln_oci_platform_normalize(out);
}

/*
 * kiln_oci_platform_match: equal os and architecture; variants equal after normalisation. An
 * entry without a variant matches any wanted variant of arm64 (most arm64 images omit "v8"), and
 * a wanted arm variant vN also runs entries for lower variants (v7 runs v6 and v5).
 */
bool
kiln_oci_platform_match(const kiln_oci_platform *want, const kiln_oci_platform *have)
{
    kiln_oci_platform w = {0}, h = {0};
    bool ok = false;

    kiln_oci_platform_copy(&w, want);
    kiln_oci_platform_copy(&h, have);
    kiln_oci_platform_normalize(&w);
    kiln_oci_platform_normalize(&h);
    if (!kiln_str_eq(w.os, h.os) || !kiln_str_eq(w.architecture, h.architecture))
        goto out;
    if (!w.variant || !h.variant || kiln_str_eq(w.variant, h.variant)) {
        ok = true;
        goto out;
    }
    if (strcmp(w.architecture, "arm") == 0 && w.variant[0] == 'v' && h.variant[0] == 'v')
        ok = strcmp(h.variant, w.variant) < 0;
out:
    kiln_oci_platform_dispose(&w);
    kiln_oci_platform_dispose(&h);
    return ok;
}

/* kiln_oci_platform_string: "os/arch[/variant]", owned by caller. */
char *
kiln_oci_platform_string(const kiln_oci_platform *p)
{
    return xasprintf("%s/%s%s%s", p->os ? p->os : "?", p->architecture ? p->architecture : "?",
                     p->variant ? "/" : "", p->variant ? p->variant : "");
}

static void
strvec_copy(kiln_vec *dst, const kiln_vec *src)
{
    const char *s;

    kiln_vec_init(dst);
    kiln_vec_foreach(src, i, s) {
        kiln_strvec_push(dst, s);
    }
}

/* kiln_oci_platform_copy: deep copy; *out owned by caller. */
void
kiln_oci_platform_copy(kiln_oci_platform *out, const kiln_oci_platform *p)
{
    out->os = xstrdup(p->os);
    out->architecture = xstrdup(p->architecture);
    out->variant = xstrdup(p->variant);
    out->os_version = xstrdup(p->os_version);
    strvec_copy(&out->os_features, &p->os_features);
    strvec_copy(&out->features, &p->features);
}

/* kiln_oci_platform_dispose: free the fields and zero *p. */
void
kiln_oci_platform_dispose(kiln_oci_platform *p)
{
    free(p->os);
    free(p->architecture);
    free(p->variant);
    free(p->os_version);
    kiln_strvec_dispose(&p->os_features);
    kiln_strvec_dispose(&p->features);
    memset(p, 0, sizeof(*p));
}
