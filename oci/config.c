/*
 * config.c: the image config (OCI image-spec config.md plus Docker's extensions: Healthcheck,
 * OnBuild, Shell; specs.md §1.5). Parsed from untrusted bytes with a size cap; unknown top-level
 * keys are kept in `extra` so that a config read and written back keeps them (the inline cache of
 * BuildKit lives there). Serialisation is canonical (sorted keys, compact) so digests are stable.
 */
#include "oci/oci.h"

#include "base/base.h"
#include "base/json.h"
#include "oci/oci_internal.h"

static const char *const known_keys[] = {"created",    "author",      "architecture", "os",
                                         "os.version", "os.features", "variant",      "config",
                                         "rootfs",     "history"};

/* kiln_oci_config_init: an empty config (all vectors empty, no strings). */
void
kiln_oci_config_init(kiln_oci_config *c)
{
    memset(c, 0, sizeof(*c));
}

/* The keys of an object used as a set ({"80/tcp": {}}), sorted. */
static int
set_field(kiln_vec *out, const json_t *obj, const char *key, const char *what, kiln_error **err)
{
    json_t *m = json_object_get(obj, key);
    const char *k;
    json_t *v;

    if (!m || json_is_null(m))
        return 0;
    if (!json_is_object(m))
        return kiln_error_set(err, KILN_EPARSE, "%s: `%s` is not an object", what, key);
    json_object_foreach(m, k, v)
    {
        (void)v;
        kiln_strvec_push(out, k);
    }
    kiln_vec_sort(out, kiln_strvec_cmp);
    return 0;
}

static int
int_field(int64_t *out, const json_t *obj, const char *key, const char *what, kiln_error **err)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return kiln_error_set(err, KILN_EPARSE, "%s: `%s` is not an integer", what, key);
    *out = json_integer_value(v);
    return 0;
}

static int
parse_healthcheck(kiln_oci_config *c, const json_t *cfg, kiln_error **err)
{
    const char *what = "image config: config.Healthcheck";
    json_t *h = json_object_get(cfg, "Healthcheck");
    kiln_oci_healthcheck *hc;
    int ret;

    if (!h || json_is_null(h))
        return 0;
    if (!json_is_object(h))
        return kiln_error_set(err, KILN_EPARSE, "%s: not an object", what);
    hc = c->healthcheck = xnew(kiln_oci_healthcheck);
    if ((ret = kiln_oci__opt_strv(&hc->test, NULL, h, "Test", what, err)) < 0 ||
        (ret = int_field(&hc->interval, h, "Interval", what, err)) < 0 ||
        (ret = int_field(&hc->timeout, h, "Timeout", what, err)) < 0 ||
        (ret = int_field(&hc->start_period, h, "StartPeriod", what, err)) < 0 ||
        (ret = int_field(&hc->start_interval, h, "StartInterval", what, err)) < 0 ||
        (ret = int_field(&hc->retries, h, "Retries", what, err)) < 0)
        return ret;
    return 0;
}

static int
parse_exec_config(kiln_oci_config *c, const json_t *root, kiln_error **err)
{
    const char *what = "image config: config";
    json_t *cfg = json_object_get(root, "config");
    json_t *ae;
    int ret;

    if (!cfg || json_is_null(cfg))
        return 0;
    if (!json_is_object(cfg))
        return kiln_error_set(err, KILN_EPARSE, "%s: not an object", what);
    if ((ret = kiln_oci__opt_str(&c->user, cfg, "User", what, err)) < 0 ||
        (ret = set_field(&c->exposed_ports, cfg, "ExposedPorts", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&c->env, NULL, cfg, "Env", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&c->entrypoint, &c->has_entrypoint, cfg, "Entrypoint", what,
                                  err)) < 0 ||
        (ret = kiln_oci__opt_strv(&c->cmd, &c->has_cmd, cfg, "Cmd", what, err)) < 0 ||
        (ret = set_field(&c->volumes, cfg, "Volumes", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&c->working_dir, cfg, "WorkingDir", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&c->stop_signal, cfg, "StopSignal", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&c->on_build, NULL, cfg, "OnBuild", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&c->shell, NULL, cfg, "Shell", what, err)) < 0 ||
        (ret = parse_healthcheck(c, cfg, err)) < 0)
        return ret;
    ae = json_object_get(cfg, "ArgsEscaped");
    if (ae && !json_is_null(ae) && !json_is_boolean(ae))
        return kiln_error_set(err, KILN_EPARSE, "%s: `ArgsEscaped` is not a boolean", what);
    c->args_escaped = json_is_true(ae);
    return kiln_oci__opt_string_map(&c->labels, cfg, "Labels", "label", what, err);
}

static int
parse_rootfs(kiln_oci_config *c, const json_t *root, kiln_error **err)
{
    const char *what = "image config: rootfs";
    json_t *rootfs = json_object_get(root, "rootfs");
    const char *type;
    const char *d;
    int ret;

    if (!json_is_object(rootfs))
        return kiln_error_set(err, KILN_EPARSE, "%s: missing or not an object", what);
    type = json_string_value(json_object_get(rootfs, "type"));
    if (!type || strcmp(type, "layers") != 0) /* image-spec: unknown value MUST error */
        return kiln_error_set(err, KILN_EPARSE, "%s: `type` must be \"layers\"", what);
    if (!json_is_array(json_object_get(rootfs, "diff_ids")))
        return kiln_error_set(err, KILN_EPARSE, "%s: missing `diff_ids`", what);
    ret = kiln_oci__opt_strv(&c->diff_ids, NULL, rootfs, "diff_ids", what, err);
    if (ret < 0)
        return ret;
    kiln_vec_foreach(&c->diff_ids, i, d) {
        if (!kiln_oci_digest_valid(d))
            return kiln_error_set(err, KILN_EPARSE, "%s: diff_ids[%zu] `%s` is not a digest", what,
                                  i, d);
    }
    return 0;
}

static int
parse_history(kiln_oci_config *c, const json_t *root, kiln_error **err)
{
    json_t *h = json_object_get(root, "history");
    size_t non_empty = 0;
    int ret;

    if (!h || json_is_null(h))
        return 0;
    if (!json_is_array(h))
        return kiln_error_set(err, KILN_EPARSE, "image config: `history` is not an array");
    c->history = xcalloc(json_array_size(h) + 1, sizeof(*c->history));
    for (size_t i = 0; i < json_array_size(h); i++) {
        json_t *e = json_array_get(h, i);
        kiln_oci_history *he = &c->history[i];
        cleanup_free char *what = xasprintf("image config: history[%zu]", i);
        json_t *el;

        c->n_history = i + 1;
        if (!json_is_object(e))
            return kiln_error_set(err, KILN_EPARSE, "%s: not an object", what);
        if ((ret = kiln_oci__opt_str(&he->created, e, "created", what, err)) < 0 ||
            (ret = kiln_oci__opt_str(&he->author, e, "author", what, err)) < 0 ||
            (ret = kiln_oci__opt_str(&he->created_by, e, "created_by", what, err)) < 0 ||
            (ret = kiln_oci__opt_str(&he->comment, e, "comment", what, err)) < 0)
            return ret;
        el = json_object_get(e, "empty_layer");
        if (el && !json_is_null(el) && !json_is_boolean(el))
            return kiln_error_set(err, KILN_EPARSE, "%s: `empty_layer` is not a boolean", what);
        he->empty_layer = json_is_true(el);
        non_empty += he->empty_layer ? 0 : 1;
    }
    /* Docker and BuildKit reject images whose history disagrees with the layers; an empty history
     * (some tools write none) is accepted. */
    if (c->n_history && non_empty != c->diff_ids.len)
        return kiln_error_set(err, KILN_EPARSE,
                              "image config: %zu non-empty history entries for %zu layers",
                              non_empty, c->diff_ids.len);
    return 0;
}

static void
keep_extra(kiln_oci_config *c, json_t *root)
{
    const char *k;
    json_t *v;

    json_object_foreach(root, k, v)
    {
        bool known = false;

        for (size_t i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]); i++)
            known = known || strcmp(k, known_keys[i]) == 0;
        if (known)
            continue;
        if (!c->extra)
            c->extra = json_object();
        json_object_set(c->extra, k, v);
    }
}

/* kiln_oci_config_parse: see oci.h. *out is owned by the caller; disposed and zeroed on failure. */
int
kiln_oci_config_parse(kiln_oci_config *out, const char *data, size_t len, kiln_error **err)
{
    cleanup_json json_t *root = NULL;
    const char *what = "image config";
    kiln_oci_config c;
    int ret;

    kiln_oci_config_init(&c);
    kiln_oci_config_init(out);
    ret = kiln_json_parse(&root, data, len, KILN_OCI_CONFIG_MAX, what, err);
    if (ret < 0)
        return ret;
    if (!json_is_object(root))
        return kiln_error_set(err, KILN_EPARSE, "image config: not a JSON object");
    if ((ret = kiln_oci__opt_str(&c.created, root, "created", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&c.author, root, "author", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&c.platform.architecture, root, "architecture", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&c.platform.os, root, "os", what, err)) < 0 ||
        (ret = kiln_oci__opt_str(&c.platform.os_version, root, "os.version", what, err)) < 0 ||
        (ret = kiln_oci__opt_strv(&c.platform.os_features, NULL, root, "os.features", what, err)) <
                0 ||
        (ret = kiln_oci__opt_str(&c.platform.variant, root, "variant", what, err)) < 0 ||
        (ret = parse_exec_config(&c, root, err)) < 0 || (ret = parse_rootfs(&c, root, err)) < 0 ||
        (ret = parse_history(&c, root, err)) < 0)
        goto fail;
    if (!c.platform.architecture || !c.platform.os) {
        ret = kiln_error_set(err, KILN_EPARSE, "image config: missing `architecture` or `os`");
        goto fail;
    }
    keep_extra(&c, root);
    *out = c;
    return 0;
fail:
    kiln_oci_config_dispose(&c);
    return ret;
}

/* ---- serialisation ------------------------------------------------------------------------- */

static json_t *
set_json(const kiln_vec *v)
{
    json_t *o = json_object();
    const char *s;

    kiln_vec_foreach(v, i, s) {
        json_object_set_new(o, s, json_object());
    }
    return o;
}

static void
put_str(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

static json_t *
healthcheck_json(const kiln_oci_healthcheck *h)
{
    json_t *o = json_object();

    if (h->test.len)
        json_object_set_new(o, "Test", kiln_oci__strv_json(&h->test));
    if (h->interval)
        json_object_set_new(o, "Interval", json_integer(h->interval));
    if (h->timeout)
        json_object_set_new(o, "Timeout", json_integer(h->timeout));
    if (h->start_period)
        json_object_set_new(o, "StartPeriod", json_integer(h->start_period));
    if (h->start_interval)
        json_object_set_new(o, "StartInterval", json_integer(h->start_interval));
    if (h->retries)
        json_object_set_new(o, "Retries", json_integer(h->retries));
    return o;
}

static json_t *
exec_config_json(const kiln_oci_config *c)
{
    json_t *o = json_object();

    put_str(o, "User", c->user);
    if (c->exposed_ports.len)
        json_object_set_new(o, "ExposedPorts", set_json(&c->exposed_ports));
    if (c->env.len)
        json_object_set_new(o, "Env", kiln_oci__strv_json(&c->env));
    if (c->has_entrypoint)
        json_object_set_new(o, "Entrypoint", kiln_oci__strv_json(&c->entrypoint));
    if (c->has_cmd)
        json_object_set_new(o, "Cmd", kiln_oci__strv_json(&c->cmd));
    if (c->volumes.len)
        json_object_set_new(o, "Volumes", set_json(&c->volumes));
    put_str(o, "WorkingDir", c->working_dir);
    if (c->labels && json_object_size(c->labels))
        json_object_set(o, "Labels", c->labels);
    put_str(o, "StopSignal", c->stop_signal);
    if (c->args_escaped)
        json_object_set_new(o, "ArgsEscaped", json_true());
    if (c->healthcheck)
        json_object_set_new(o, "Healthcheck", healthcheck_json(c->healthcheck));
    if (c->on_build.len)
        json_object_set_new(o, "OnBuild", kiln_oci__strv_json(&c->on_build));
    if (c->shell.len)
        json_object_set_new(o, "Shell", kiln_oci__strv_json(&c->shell));
    return o;
}

/* kiln_oci_config_to_json: canonical JSON bytes, owned by the caller. */
char *
kiln_oci_config_to_json(const kiln_oci_config *c, size_t *len_out)
{
    json_t *root = c->extra ? json_deep_copy(c->extra) : json_object();
    json_t *rootfs = json_object();
    json_t *hist = json_array();
    char *s;

    put_str(root, "created", c->created);
    put_str(root, "author", c->author);
    json_object_set_new(root, "architecture",
                        json_string(c->platform.architecture ? c->platform.architecture : ""));
    json_object_set_new(root, "os", json_string(c->platform.os ? c->platform.os : ""));
    put_str(root, "os.version", c->platform.os_version);
    if (c->platform.os_features.len)
        json_object_set_new(root, "os.features", kiln_oci__strv_json(&c->platform.os_features));
    put_str(root, "variant", c->platform.variant);
    json_object_set_new(root, "config", exec_config_json(c));
    json_object_set_new(rootfs, "type", json_string("layers"));
    json_object_set_new(rootfs, "diff_ids", kiln_oci__strv_json(&c->diff_ids));
    json_object_set_new(root, "rootfs", rootfs);
    for (size_t i = 0; i < c->n_history; i++) {
        const kiln_oci_history *h = &c->history[i];
        json_t *e = json_object();

        put_str(e, "created", h->created);
        put_str(e, "author", h->author);
        put_str(e, "created_by", h->created_by);
        put_str(e, "comment", h->comment);
        if (h->empty_layer)
            json_object_set_new(e, "empty_layer", json_true());
        json_array_append_new(hist, e);
    }
    if (c->n_history)
        json_object_set_new(root, "history", hist);
    else
        json_decref(hist);
    s = kiln_json_dump_canonical(root);
    json_decref(root);
    *len_out = strlen(s);
    return s;
}

/* kiln_oci_config_dispose: free everything *c owns and re-initialise it. */
void
kiln_oci_config_dispose(kiln_oci_config *c)
{
    free(c->created);
    free(c->author);
    kiln_oci_platform_dispose(&c->platform);
    free(c->user);
    kiln_strvec_dispose(&c->exposed_ports);
    kiln_strvec_dispose(&c->env);
    kiln_strvec_dispose(&c->entrypoint);
    kiln_strvec_dispose(&c->cmd);
    kiln_strvec_dispose(&c->volumes);
    free(c->working_dir);
    if (c->labels)
        json_decref(c->labels);
    free(c->stop_signal);
    if (c->healthcheck) {
        kiln_strvec_dispose(&c->healthcheck->test);
        free(c->healthcheck);
    }
    kiln_strvec_dispose(&c->on_build);
    kiln_strvec_dispose(&c->shell);
    kiln_strvec_dispose(&c->diff_ids);
    for (size_t i = 0; i < c->n_history; i++) {
        free(c->history[i].created);
        free(c->history[i].author);
        free(c->history[i].created_by);
        free(c->history[i].comment);
    }
    free(c->history);
    if (c->extra)
        json_decref(c->extra);
    kiln_oci_config_init(c);
}
