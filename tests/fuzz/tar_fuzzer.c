/*
 * tar_fuzzer.c: feeds arbitrary bytes to the layer applier as a (possibly compressed) tar stream,
 * extracting into a fresh directory each time. The applier must never crash, and nothing may
 * appear next to the target directory (the fuzzer checks its sandbox after each input).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/path.h"
#include "source/layer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cleanup_free char *top = NULL;
    cleanup_free char *root = NULL;
    kiln_layer_opts opts = {.max_bytes = 4 << 20, .no_owner = geteuid() != 0};
    kiln_error *err = NULL;
    DIR *d;
    int n = 0;
    if (kiln_fs_mkdtemp(&top, "/tmp", "kiln-tar-fuzz-", &err) < 0)
        abort();
    root = kiln_path_join(top, "root");
    if (kiln_fs_mkdir_p(root, 0755, &err) < 0)
        abort();
    if (kiln_layer_apply_mem(data, size, root, &opts, NULL, &err) < 0)
        kiln_error_free(&err);
    /* the sandbox must still hold only root/ */
    d = opendir(top);
    if (!d)
        abort();
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    if (n != 1)
        abort();
    if (kiln_fs_rm_rf(top, &err) < 0)
        abort();
    return 0;
}
