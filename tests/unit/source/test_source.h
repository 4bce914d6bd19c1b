/*
 * test_source.h: the groups of the source/ unit tests and helpers they share.
 */
#ifndef KILN_TEST_SOURCE_H
#define KILN_TEST_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

int test_source_run_ignore(void);
int test_source_run_context(void);
int test_source_run_layer(void);
int test_source_run_http(void);

/* A fresh temporary directory; owned by the caller (removed with test_rm_rf). */
char *test_mkdtemp(void);
void test_rm_rf(const char *path);
/* Write `content` to root/rel (parents created), with `mode`. */
void test_write(const char *root, const char *rel, const char *content, unsigned mode);
/* Read root/rel into a heap string, or NULL when missing. */
char *test_read(const char *root, const char *rel);
bool test_exists(const char *root, const char *rel);

#endif
