/*
 * threadpool.h: a pool of up to N worker threads (started as the queue needs them) running
 * submitted jobs in FIFO order.
 * Thread-safe: any thread may submit. kiln_threadpool_wait() blocks until every submitted job,
 * including jobs submitted by jobs, has finished.
 */
#ifndef KILN_BASE_THREADPOOL_H
#define KILN_BASE_THREADPOOL_H

#include "base/error.h"

typedef struct kiln_threadpool kiln_threadpool;
typedef void (*kiln_job_fn)(void *arg);

/* nthreads == 0 means kiln_ncpus(). */
int kiln_threadpool_new(kiln_threadpool **out, unsigned nthreads, kiln_error **err);
void kiln_threadpool_submit(kiln_threadpool *p, kiln_job_fn fn, void *arg);
void kiln_threadpool_wait(kiln_threadpool *p);
/* Waits for all jobs, then joins the threads. NULL-safe. */
void kiln_threadpool_free(kiln_threadpool *p);
unsigned kiln_threadpool_size(const kiln_threadpool *p);
/* Online CPUs (sched_getaffinity), at least 1. */
unsigned kiln_ncpus(void);

#endif
