/*
 * registry_auth.c: the authentication pieces of the registry client that involve no network:
 * parsing WWW-Authenticate challenges (untrusted, fuzzed) and finding credentials in the
 * docker config file (specs.md §3.7): credHelpers[host], credsStore, then auths, running the
 * docker-credential-<name> helpers the way the docker CLI does.
 */
#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

#include "oci/oci_internal.h"
#include "oci/registry.h"
#include "oci/registry_internal.h"

#include "base/base.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/json.h"

#define CONFIG_MAX        (1u << 20) /* config.json */
#define HELPER_OUTPUT_MAX (64u << 10)
#define HELPER_TIMEOUT_MS 30000

extern char **environ;

/* ---- WWW-Authenticate ------------------------------------------------------------------------ */

static bool
is_tchar(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void
skip_ows(const char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
}

/* token68 or token value, or a quoted-string with \-escapes; *out owned by caller. */
static int
parse_value(char **out, const char **p, kiln_error **err)
{
    kiln_buf b = KILN_BUF_INIT;
    const char *s = *p;

    if (*s == '"') {
        s++;
        while (*s && *s != '"') {
            if (*s == '\\' && s[1])
                s++;
            kiln_buf_putc(&b, *s++, NULL);
        }
        if (*s != '"') {
            kiln_buf_dispose(&b);
            return kiln_error_set(err, KILN_EPARSE, "WWW-Authenticate: unterminated quoted string");
        }
        s++;
    } else {
        while (is_tchar(*s) || *s == '/' || *s == ':' || *s == '=')
            kiln_buf_putc(&b, *s++, NULL);
    }
    *out = kiln_buf_detach(&b);
    *p = s;
    return 0;
}

static void
set_param(kiln_registry_challenge *c, const char *name, size_t n, char *value)
{
    char **slot = NULL;

    if (n == 5 && strncasecmp(name, "realm", 5) == 0)
        slot = &c->realm;
    else if (n == 7 && strncasecmp(name, "service", 7) == 0)
        slot = &c->service;
    else if (n == 5 && strncasecmp(name, "scope", 5) == 0)
        slot = &c->scope;
    else if (n == 5 && strncasecmp(name, "error", 5) == 0)
        slot = &c->error;
    if (slot && !*slot)
        *slot = value;
    else
        free(value);
}

/* The auth-params after the scheme, up to the end or the next challenge. */
static int
parse_params(kiln_registry_challenge *c, const char *p, kiln_error **err)
{
    int ret;

    for (;;) {
        const char *name = p;
        size_t n;
        char *value = NULL;

        skip_ows(&p);
        while (*p == ',') {
            p++;
            skip_ows(&p);
        }
        if (*p == '\0')
            return 0;
        name = p;
        while (is_tchar(*p))
            p++;
        n = (size_t)(p - name);
        skip_ows(&p);
        if (n == 0 || *p != '=')
            /* a token without "=" starts the next challenge (e.g. ", Basic realm=...") */
            return n ? 0 : kiln_error_set(err, KILN_EPARSE, "WWW-Authenticate: bad parameter");
        p++;
        skip_ows(&p);
        ret = parse_value(&value, &p, err);
        if (ret < 0)
            return ret;
        set_param(c, name, n, value);
        skip_ows(&p);
        if (*p != ',' && *p != '\0')
            return kiln_error_set(err, KILN_EPARSE, "WWW-Authenticate: expected `,` after `%.*s`",
                                  (int)n, name);
    }
}

/* kiln_registry_parse_challenge: see registry.h. *out is zeroed on failure. */
int
kiln_registry_parse_challenge(kiln_registry_challenge *out, const char *header, kiln_error **err)
{
    kiln_registry_challenge c = {0};
    const char *p = header, *start;
    int ret;

    memset(out, 0, sizeof(*out));
    if (!header)
        return kiln_error_set(err, KILN_EPARSE, "WWW-Authenticate: missing");
    if (strlen(header) > KILN_REGISTRY_CHALLENGE_MAX)
        return kiln_error_set(err, KILN_EINVAL, "WWW-Authenticate: longer than %d bytes",
                              KILN_REGISTRY_CHALLENGE_MAX);
    skip_ows(&p);
    start = p;
    while (is_tchar(*p))
        p++;
    if (p == start || (*p != '\0' && *p != ' ' && *p != '\t'))
        return kiln_error_set(err, KILN_EPARSE, "WWW-Authenticate: missing auth scheme");
    c.scheme = xstrndup(start, (size_t)(p - start));
    for (char *q = c.scheme; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    ret = parse_params(&c, p, err);
    if (ret < 0) {
        kiln_registry_challenge_dispose(&c);
        return ret;
    }
    *out = c;
    return 0;
}

/* kiln_registry_challenge_dispose: free the fields and zero *c. */
void
kiln_registry_challenge_dispose(kiln_registry_challenge *c)
{
    free(c->scheme);
    free(c->realm);
    free(c->service);
    free(c->scope);
    free(c->error);
    memset(c, 0, sizeof(*c));
}

/* ---- docker config ----------------------------------------------------------------------------
 */

/* Normalise an auths key or a host: strip scheme and path ("https://host/v1/" -> "host"). */
static char *
normalize_host(const char *s)
{
    const char *p = strstr(s, "://");

    p = p ? p + 3 : s;
    return xstrndup(p, strcspn(p, "/"));
}

static bool
is_docker_hub(const char *host)
{
    return strcmp(host, "docker.io") == 0 || strcmp(host, "index.docker.io") == 0 ||
           strcmp(host, "registry-1.docker.io") == 0;
}

/* The server URL a helper or auths key uses for `host`. Owned by caller. */
static char *
server_url(const char *host)
{
    return is_docker_hub(host) ? xstrdup("https://index.docker.io/v1/") : xstrdup(host);
}

static bool
helper_name_valid(const char *name)
{
    if (!*name || strlen(name) > 64)
        return false;
    for (; *name; name++) {
        if (!isalnum((unsigned char)*name) && !strchr("._-", *name))
            return false;
    }
    return true;
}

/* write() to a pipe whose reader may be gone (a helper that exits without reading stdin) without
 * killing the process with SIGPIPE: block it in this thread and swallow a pending one. */
static ssize_t
write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t block, old, pending;
    struct timespec zero = {0, 0};
    bool was_pending;
    ssize_t w;
    int saved;

    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    w = write(fd, buf, len);
    saved = errno;
    if (w < 0 && errno == EPIPE && !was_pending)
        (void)sigtimedwait(&block, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

/* Write `input` to fd `in` and collect fd `out` until EOF, within HELPER_TIMEOUT_MS. */
static int
helper_io(kiln_buf *output, int in, int out, const char *input, const char *prog, kiln_error **err)
{
    size_t off = 0, inlen = strlen(input);
    struct pollfd p[2] = {{in, POLLOUT, 0}, {out, POLLIN, 0}};
    int waited = 0;

    while (p[1].fd >= 0) {
        char chunk[4096];
        int n = poll(p, 2, 100);

        if (n < 0 && errno != EINTR)
            return kiln_error_errno(err, errno, "poll `%s`", prog);
        if (n == 0 && (waited += 100) > HELPER_TIMEOUT_MS)
            return kiln_error_set(err, KILN_ETIMEOUT, "`%s` did not answer", prog);
        if (p[0].fd >= 0 && p[0].revents) {
            ssize_t w = (p[0].revents & POLLOUT) && !(p[0].revents & POLLERR)
                                ? write_nosigpipe(in, input + off, inlen - off)
                                : -1;

            if (w > 0)
                off += (size_t)w;
            if (w < 0 || off == inlen) {
                close(p[0].fd);
                p[0].fd = -1;
            }
        }
        if (p[1].revents) {
            ssize_t r = read(out, chunk, sizeof(chunk));

            if (r <= 0) {
                p[1].fd = -1;
                continue;
            }
            if (kiln_buf_put(output, chunk, (size_t)r, err) < 0)
                return kiln_error_wrap(err, "output of `%s`", prog);
        }
    }
    if (p[0].fd >= 0)
        close(p[0].fd);
    return 0;
}

/* Run `docker-credential-<helper> get` with `url` on stdin; its stdout into *output. */
static int
run_helper(kiln_buf *output, int *status, const char *helper, const char *url, kiln_error **err)
{
    cleanup_free char *prog = xasprintf("docker-credential-%s", helper);
    char *argv[] = {prog, (char *)"get", NULL};
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int ret, rc;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        ret = kiln_error_errno(err, errno, "pipe");
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    rc = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    in[0] = out[1] = -1;
    if (rc != 0) {
        ret = kiln_error_errno(err, rc, "run credential helper `%s`", prog);
        goto out;
    }
    ret = helper_io(output, in[1], out[0], url, prog, err);
    in[1] = -1; /* closed by helper_io */
    if (ret < 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    return ret;
}

/* Ask a credential helper; nothing found is not an error (*user stays NULL). */
static int
helper_get(char **user, char **secret, const char *helper, const char *host, kiln_error **err)
{
    cleanup_free char *url = server_url(host);
    cleanup_json json_t *j = NULL;
    kiln_buf output;
    const char *u = NULL, *s = NULL;
    int status = 0, ret;

    if (!helper_name_valid(helper))
        return kiln_error_set(err, KILN_EPARSE, "docker config: invalid credential helper `%s`",
                              helper);
    kiln_buf_init(&output, HELPER_OUTPUT_MAX);
    ret = run_helper(&output, &status, helper, url, err);
    if (ret == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        if (strstr(kiln_buf_cstr(&output), "credentials not found") || output.len == 0)
            ret = 0; /* the helper has nothing for this host */
        else
            ret = kiln_error_set(err, KILN_EAUTH, "docker-credential-%s: %.200s", helper,
                                 kiln_buf_cstr(&output));
        goto out;
    }
    if (ret < 0)
        goto out;
    ret = kiln_json_parse(&j, output.ptr, output.len, HELPER_OUTPUT_MAX, "credential helper output",
                          err);
    if (ret < 0 || (ret = kiln_json_get_str(j, "Username", false, &u, err)) < 0 ||
        (ret = kiln_json_get_str(j, "Secret", true, &s, err)) < 0) {
        kiln_error_wrap(err, "docker-credential-%s", helper);
        goto out;
    }
    *user = xstrdup(u ? u : "");
    *secret = xstrdup(s);
out:
    kiln_buf_dispose(&output);
    return ret;
}

/* The auths entry for host: "auth" (base64 user:pass), or username/password, or a token. */
static int
auths_get(char **user, char **secret, const json_t *auths, const char *host, kiln_error **err)
{
    const char *key;
    json_t *entry;

    json_object_foreach((json_t *)auths, key, entry)
    {
        cleanup_free char *k = normalize_host(key);
        const char *auth = NULL, *u = NULL, *p = NULL, *tok = NULL;
        cleanup_free char *decoded = NULL;
        size_t dlen = 0;
        char *colon;
        int ret;

        if (strcmp(k, host) != 0 && !(is_docker_hub(k) && is_docker_hub(host)))
            continue;
        if (!json_is_object(entry))
            return kiln_error_set(err, KILN_EPARSE, "docker config: auths.%s is not an object",
                                  key);
        if ((ret = kiln_json_get_str(entry, "auth", false, &auth, err)) < 0 ||
            (ret = kiln_json_get_str(entry, "username", false, &u, err)) < 0 ||
            (ret = kiln_json_get_str(entry, "password", false, &p, err)) < 0 ||
            (ret = kiln_json_get_str(entry, "identitytoken", false, &tok, err)) < 0)
            return kiln_error_wrap(err, "docker config: auths.%s", key);
        if (auth && *auth) {
            ret = kiln_oci__base64_decode(&decoded, &dlen, auth, 65536, "auth", err);
            if (ret < 0)
                return kiln_error_wrap(err, "docker config: auths.%s", key);
            colon = memchr(decoded, ':', dlen);
            if (!colon)
                return kiln_error_set(err, KILN_EPARSE,
                                      "docker config: auths.%s.auth is not user:password", key);
            *user = xstrndup(decoded, (size_t)(colon - decoded));
            *secret = xstrdup(tok ? tok : colon + 1);
            return 0;
        }
        if (u && (p || tok)) {
            *user = xstrdup(u);
            *secret = xstrdup(tok ? tok : p);
            return 0;
        }
    }
    return 0;
}

static char *
default_config_dir(void)
{
    const char *d = getenv("DOCKER_CONFIG");
    const char *home = getenv("HOME");

    if (d && *d)
        return xstrdup(d);
    return home && *home ? xasprintf("%s/.docker", home) : NULL;
}

/* Credentials for host `h` from a parsed docker config document; `source` names it in errors. */
static int
lookup_in_config(char **user, char **secret, const json_t *j, const char *h, const char *source,
                 kiln_error **err)
{
    json_t *helpers, *auths;
    const char *helper = NULL;
    int ret;

    if (!json_is_object(j))
        return kiln_error_set(err, KILN_EPARSE, "%s: not a JSON object", source);
    helpers = json_object_get(j, "credHelpers");
    if (json_is_object(helpers))
        helper = json_string_value(json_object_get(helpers, h));
    if (!helper)
        helper = json_string_value(json_object_get(j, "credsStore"));
    if (helper && *helper) {
        ret = helper_get(user, secret, helper, h, err);
        if (ret < 0 || *user)
            return ret < 0 ? kiln_error_wrap(err, "credentials for %s", h) : 0;
    }
    auths = json_object_get(j, "auths");
    if (auths && !json_is_object(auths))
        return kiln_error_set(err, KILN_EPARSE, "%s: `auths` is not an object", source);
    if (!auths)
        return 0;
    ret = auths_get(user, secret, auths, h, err);
    return ret < 0 ? kiln_error_wrap(err, "%s", source) : 0;
}

/* kiln_registry_lookup_credentials: see registry.h. With dir == NULL, $DOCKER_AUTH_CONFIG (a JSON
 * document like config.json, newer docker CLIs) is consulted first. */
int
kiln_registry_lookup_credentials(char **user, char **secret, const char *dir, const char *host,
                                 kiln_error **err)
{
    cleanup_free char *d = dir ? xstrdup(dir) : default_config_dir();
    cleanup_free char *path = NULL, *data = NULL, *h = normalize_host(host);
    const char *env = dir ? NULL : getenv("DOCKER_AUTH_CONFIG");
    cleanup_json json_t *j = NULL;
    size_t len = 0;
    int ret;

    *user = *secret = NULL;
    if (env && *env) {
        if ((ret = kiln_json_parse(&j, env, strlen(env), CONFIG_MAX, "DOCKER_AUTH_CONFIG", err)) <
                    0 ||
            (ret = lookup_in_config(user, secret, j, h, "DOCKER_AUTH_CONFIG", err)) < 0 || *user)
            return ret;
        json_decref(j);
        j = NULL;
    }
    if (!d)
        return 0;
    path = xasprintf("%s/config.json", d);
    if (!kiln_fs_exists(path))
        return 0;
    if ((ret = kiln_fs_read_file(&data, &len, path, CONFIG_MAX, err)) < 0 ||
        (ret = kiln_json_parse(&j, data, len, CONFIG_MAX, path, err)) < 0)
        return ret;
    return lookup_in_config(user, secret, j, h, path, err);
}
