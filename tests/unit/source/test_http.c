/*
 * test_http.c: unit tests of the network-free http source (source/http.h): file name choice,
 * Content-Disposition parsing, HTTP dates, and downloads through a fake transport (status
 * handling, checksum pinning, mode, mtime, nothing left behind on failure).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/fs.h"
#include "base/path.h"
#include "source/http.h"
#include "test_source.h"

typedef struct fake_server {
    int status;
    const char *body;
    const char *cd;
    const char *last_modified;
    const char *etag;
    int fail; /* a transport error to return, or 0 */
    char *last_url;
} fake_server;

static int
fake_get(void *payload, const char *url, int body_fd, kiln_http_reply *reply, kiln_error **err)
{
    fake_server *s = payload;
    free(s->last_url);
    s->last_url = xstrdup(url);
    if (s->fail)
        return kiln_error_set(err, s->fail, "connect: connection refused");
    reply->status = s->status;
    reply->content_disposition = xstrdup(s->cd);
    reply->last_modified = xstrdup(s->last_modified);
    reply->etag = xstrdup(s->etag);
    return kiln_fd_write_all(body_fd, s->body, strlen(s->body), err);
}

static void
expect_name(const char *url, const char *manual, const char *cd, const char *want)
{
    cleanup_free char *got = kiln_http_filename(url, manual, cd);
    if (strcmp(got, want) != 0)
        fail_msg("filename(%s, %s, %s) = `%s`, want `%s`", url, manual ? manual : "-",
                 cd ? cd : "-", got, want);
}

static void
test_source_http__filename(void **state)
{
    (void)state;
    expect_name("https://example.com/dl/tool-1.2.tar.gz?sig=x#frag", NULL, NULL, "tool-1.2.tar.gz");
    expect_name("https://example.com/a%20b.txt", NULL, NULL, "a b.txt");
    expect_name("https://example.com/dir/", NULL, NULL, "dir");
    expect_name("https://example.com/", NULL, NULL, "download");
    expect_name("https://example.com", NULL, NULL, "download");
    expect_name("https://example.com/bad%zzescape", NULL, NULL, "download");
    expect_name("https://example.com/x", "manual.bin", "attachment; filename=cd.txt", "manual.bin");
    expect_name("https://example.com/x", NULL, "attachment; filename=cd.txt", "cd.txt");
    expect_name("https://example.com/x", NULL, "attachment; filename=\"with space \\\"q\\\".txt\"",
                "with space \"q\".txt");
    expect_name("https://example.com/x", NULL,
                "attachment; filename=plain.txt; filename*=UTF-8''%e2%82%ac%20rates.txt",
                "\xe2\x82\xac rates.txt");
    expect_name("https://example.com/x", NULL, "attachment; filename=\"../../etc/passwd\"",
                "passwd");
    expect_name("https://example.com/x", NULL, "attachment; filename=\"..\"", "x");
    expect_name("https://example.com/x", NULL, "attachment; filename=\"dir/\"", "x");
    expect_name("https://example.com/x", NULL, "attachment; filename=a; filename=b", "x");
    expect_name("https://example.com/x", NULL, "attachment; filename=\"unterminated", "x");
    expect_name("https://example.com/x", NULL, "attachment; filename=ok.txt;", "ok.txt");
    expect_name("https://example.com/x", NULL, "; filename=notype.txt", "x");
}

static void
test_source_http__parse_time(void **state)
{
    time_t t = 0;
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_http_parse_time(&t, "Sun, 06 Nov 1994 08:49:37 GMT", &err), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(kiln_http_parse_time(&t, "Sunday, 06-Nov-94 08:49:37 GMT", &err), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(kiln_http_parse_time(&t, "Sun Nov  6 08:49:37 1994", &err), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(kiln_http_parse_time(&t, "yesterday", &err), KILN_EPARSE);
    assert_non_null(strstr(err->msg, "yesterday"));
    kiln_error_free(&err);
}

static size_t
count_entries(const char *dir)
{
    cleanup_dir DIR *d = opendir(dir);
    size_t n = 0;
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    return n;
}

static void
test_source_http__download(void **state)
{
    cleanup_free char *dir = test_mkdtemp();
    cleanup_free char *path = NULL;
    cleanup_free char *body = NULL;
    fake_server s = {.status = 200,
                     .body = "hello\n",
                     .cd = "attachment; filename=hi.txt",
                     .last_modified = "Sun, 06 Nov 1994 08:49:37 GMT",
                     .etag = "\"abc\""};
    kiln_http_transport t = {fake_get, &s};
    /* sha256("hello\n") */
    kiln_http_opts opts = {
            .checksum = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
            .perm = 0755};
    kiln_http_result res;
    kiln_error *err = NULL;
    struct stat st;
    char hex[KILN_DIGEST_STRLEN + 1];
    (void)state;
    if (kiln_http_download(&res, "https://example.com/get", dir, &opts, &t, &err) < 0)
        fail_msg("download: %s", err->msg);
    assert_string_equal(s.last_url, "https://example.com/get");
    assert_string_equal(res.filename, "hi.txt");
    assert_string_equal(res.etag, "\"abc\"");
    kiln_digest_format(hex, &res.digest);
    assert_string_equal(hex, opts.checksum);
    path = kiln_path_join(dir, "hi.txt");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(st.st_mtim.tv_sec, 784111777);
    body = test_read(dir, "hi.txt");
    assert_string_equal(body, "hello\n");
    assert_int_equal(count_entries(dir), 1);
    kiln_http_result_dispose(&res);
    test_rm_rf(dir);
    free(s.last_url);
}

static void
test_source_http__failures_leave_nothing(void **state)
{
    cleanup_free char *dir = test_mkdtemp();
    fake_server s = {.status = 200, .body = "tampered\n"};
    kiln_http_transport t = {fake_get, &s};
    kiln_http_opts pinned = {
            .checksum = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"};
    kiln_http_opts badname = {.filename = "../escape"};
    kiln_http_opts badsum = {.checksum = "md5:abc"};
    kiln_http_result res;
    kiln_error *err = NULL;
    (void)state;
    assert_int_equal(kiln_http_download(&res, "http://h/f", dir, &pinned, &t, &err), KILN_EDIGEST);
    assert_non_null(strstr(err->msg, "expected sha256:5891b5"));
    kiln_error_free(&err);
    s.status = 404;
    assert_int_equal(kiln_http_download(&res, "http://h/f", dir, NULL, &t, &err), KILN_ENOTFOUND);
    kiln_error_free(&err);
    s.status = 403;
    assert_int_equal(kiln_http_download(&res, "http://h/f", dir, NULL, &t, &err), KILN_EAUTH);
    kiln_error_free(&err);
    s.status = 500;
    assert_int_equal(kiln_http_download(&res, "http://h/f", dir, NULL, &t, &err), KILN_ESYS);
    assert_non_null(strstr(err->msg, "500"));
    kiln_error_free(&err);
    s.fail = KILN_ETIMEOUT;
    assert_int_equal(kiln_http_download(&res, "http://h/f", dir, NULL, &t, &err), KILN_ETIMEOUT);
    kiln_error_free(&err);
    s.fail = 0;
    s.status = 200;
    assert_int_equal(kiln_http_download(&res, "http://h/f", dir, &badname, &t, &err), KILN_EINVAL);
    kiln_error_free(&err);
    assert_int_equal(kiln_http_download(&res, "http://h/f", dir, &badsum, &t, &err),
                     KILN_EUNSUPPORTED);
    kiln_error_free(&err);
    assert_int_equal(count_entries(dir), 0);
    /* default mode 0600 and epoch mtime without Last-Modified */
    {
        cleanup_free char *path = kiln_path_join(dir, "f");
        struct stat st;
        assert_int_equal(kiln_http_download(&res, "http://h/f", dir, NULL, &t, &err), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_mtim.tv_sec, 0);
        kiln_http_result_dispose(&res);
    }
    free(s.last_url);
    test_rm_rf(dir);
}

int
test_source_run_http(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_source_http__filename),
            cmocka_unit_test(test_source_http__parse_time),
            cmocka_unit_test(test_source_http__download),
            cmocka_unit_test(test_source_http__failures_leave_nothing),
    };
    return cmocka_run_group_tests_name("source_http", tests, NULL, NULL);
}
