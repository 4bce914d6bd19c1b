/*
 * oci_json_fuzzer.c: the OCI JSON parsers (manifest, index, image config) on untrusted bytes.
 * The first byte picks the transport media type; whatever parses must serialise and parse again.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "oci/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {NULL,
                                    KILN_OCI_MT_MANIFEST,
                                    KILN_OCI_MT_INDEX,
                                    KILN_DOCKER_MT_MANIFEST,
                                    KILN_DOCKER_MT_LIST,
                                    KILN_DOCKER_MT_SCHEMA1,
                                    "text/plain"};

static void
manifest(const char *doc, size_t len, const char *mt)
{
    kiln_oci_manifest m, m2;
    kiln_error *err = NULL;
    size_t n;

    if (kiln_oci_manifest_parse(&m, doc, len, mt, &err) == 0) {
        char *json = kiln_oci_manifest_to_json(&m, &n);

        kiln_assert(kiln_oci_manifest_parse(&m2, json, n, NULL, &err) == 0);
        kiln_assert(m2.n_layers == m.n_layers);
        kiln_oci_manifest_dispose(&m2);
        free(json);
        kiln_oci_manifest_dispose(&m);
    }
    kiln_error_free(&err);
}

static void
index_doc(const char *doc, size_t len, const char *mt)
{
    kiln_oci_index ix, ix2;
    const kiln_oci_descriptor *d = NULL;
    kiln_oci_platform p = {0};
    kiln_error *err = NULL;
    size_t n;

    if (kiln_oci_index_parse(&ix, doc, len, mt, &err) == 0) {
        char *json = kiln_oci_index_to_json(&ix, &n);

        kiln_assert(kiln_oci_index_parse(&ix2, json, n, NULL, &err) == 0);
        kiln_assert(ix2.n_manifests == ix.n_manifests);
        kiln_oci_index_dispose(&ix2);
        free(json);
        if (kiln_oci_platform_parse(&p, "linux/arm64", &err) == 0 &&
            kiln_oci_index_select(&d, &ix, &p, &err) == 0)
            kiln_assert(d->platform != NULL);
        kiln_oci_platform_dispose(&p);
        kiln_oci_index_dispose(&ix);
    }
    kiln_error_free(&err);
}

static void
config(const char *doc, size_t len)
{
    kiln_oci_config c, c2;
    kiln_error *err = NULL;
    size_t n;

    if (kiln_oci_config_parse(&c, doc, len, &err) == 0) {
        char *json = kiln_oci_config_to_json(&c, &n);

        kiln_assert(kiln_oci_config_parse(&c2, json, n, &err) == 0);
        kiln_assert(c2.diff_ids.len == c.diff_ids.len);
        kiln_oci_config_dispose(&c2);
        free(json);
        kiln_oci_config_dispose(&c);
    }
    kiln_error_free(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *mt;
    const char *doc;

    if (size < 1)
        return 0;
    mt = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    doc = (const char *)data + 1;
    manifest(doc, size - 1, mt);
    index_doc(doc, size - 1, mt);
    config(doc, size - 1);
    (void)kiln_oci_document_kind(doc, size - 1, mt);
    return 0;
}
