/*
 * test_source.c: entry point of the source/ unit tests, and the file helpers the groups share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/path.h"
#include "test_source.h"

char *
test_mkdtemp(void)
{
    char *out = NULL;
    kiln_error *err = NULL;
    const char *tmp = getenv("TMPDIR");
    if (kiln_fs_mkdtemp(&out, tmp && *tmp ? tmp : "/tmp", "kiln-source-test-", &err) < 0)
        fail_msg("mkdtemp: %s", err->msg);
    return out;
}

void
test_rm_rf(const char *path)
{
    kiln_error *err = NULL;
    if (kiln_fs_rm_rf(path, &err) < 0) {
        kiln_error_free(&err);
        fail_msg("rm -rf %s", path);
    }
}

void
test_write(const char *root, const char *rel, const char *content, unsigned mode)
{
    cleanup_free char *path = kiln_path_join(root, rel);
    cleanup_free char *dir = kiln_path_dir(path);
    kiln_error *err = NULL;
    if (kiln_fs_mkdir_p(dir, 0755, &err) < 0 ||
        kiln_fs_write_atomic(path, content, strlen(content), mode, &err) < 0)
        fail_msg("write %s: %s", path, err->msg);
    /* write_atomic may honour the umask: force the mode */
    assert_int_equal(chmod(path, mode), 0);
}

char *
test_read(const char *root, const char *rel)
{
    cleanup_free char *path = kiln_path_join(root, rel);
    char *out = NULL;
    kiln_error *err = NULL;
    if (kiln_fs_read_file(&out, NULL, path, 0, &err) < 0) {
        kiln_error_free(&err);
        return NULL;
    }
    return out;
}

bool
test_exists(const char *root, const char *rel)
{
    cleanup_free char *path = kiln_path_join(root, rel);
    struct stat st;
    return lstat(path, &st) == 0;
}

int
main(void)
{
    int failed = 0;
    failed += test_source_run_ignore();
    failed += test_source_run_context();
    failed += test_source_run_layer();
    failed += test_source_run_http();
    return failed ? 1 : 0;
}
