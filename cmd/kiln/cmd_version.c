/*
 * cmd_version.c: `kiln version`: kiln's version and the versions of the libraries it was built
 * with, which is what a bug report needs.
 */
#include <archive.h>
#include <curl/curlver.h>
#include <git2/version.h>
#include <jansson.h>
#include <lmdb.h>
#include <openssl/opensslv.h>
#include <protobuf-c/protobuf-c.h>
#include <seccomp.h>
#include <xxhash.h>
#include <zstd.h>

#include "base/base.h"
#include "cmd/kiln/commands.h"

int
kiln_cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "kiln: 'version' takes no arguments\n");
        return KILN_EXIT_USAGE;
    }
    printf("kiln version %s\n", KILN_VERSION);
    printf("  protobuf-c %s, lmdb %d.%d.%d, libseccomp %d.%d.%d, libcurl %s, libgit2 %s,\n",
           PROTOBUF_C_VERSION, MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH,
           SCMP_VER_MAJOR, SCMP_VER_MINOR, SCMP_VER_MICRO, LIBCURL_VERSION, LIBGIT2_VERSION);
    printf("  libarchive %s, jansson %s, xxhash %d.%d.%d, zstd %s, %s\n",
           ARCHIVE_VERSION_ONLY_STRING, JANSSON_VERSION, XXH_VERSION_MAJOR, XXH_VERSION_MINOR,
           XXH_VERSION_RELEASE, ZSTD_VERSION_STRING, OPENSSL_VERSION_TEXT);
    return KILN_EXIT_OK;
}
