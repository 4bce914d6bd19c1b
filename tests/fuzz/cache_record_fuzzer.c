/*
 * cache_record_fuzzer.c: the LMDB record decoders of cache/ on arbitrary bytes. Records read back
 * from the state dir are untrusted (a disk error, a crash, another version), so decoding must fail
 * cleanly, and a record that decodes must survive an encode/decode round trip.
 * The first input byte picks the record kind: snapshot, blob or cache key.
 */
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "cache/cache_internal.h"

static void
fuzz_snapshot(MDB_val *v)
{
    cache_snap s = {0}, again = {0};
    kiln_error *err = NULL;

    if (kiln_cache__snap_decode(&s, v, "fuzz", &err) == 0) {
        cleanup_free char *enc = kiln_cache__snap_encode(&s);
        MDB_val v2 = {strlen(enc), enc};
        if (kiln_cache__snap_decode(&again, &v2, "fuzz", &err) != 0)
            kiln_abort(__FILE__, __LINE__, "re-encoded snapshot record does not decode");
        kiln_cache__snap_dispose(&again);
    }
    kiln_cache__snap_dispose(&s);
    kiln_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error *err = NULL;
    MDB_val v;

    if (size < 1)
        return 0;
    v.mv_size = size - 1;
    v.mv_data = (void *)(data + 1);
    switch (data[0] % 3) {
    case 0:
        fuzz_snapshot(&v);
        break;
    case 1: {
        cache_blob b = {0};
        kiln_cache__blob_decode(&b, &v, "sha256:0", &err);
        kiln_cache__blob_dispose(&b);
        break;
    }
    default: {
        kiln_cache_result r = {0};
        kiln_cache__key_decode(&r, &v, "fuzz", &err);
        kiln_cache_result_dispose(&r);
        break;
    }
    }
    kiln_error_free(&err);
    return 0;
}
