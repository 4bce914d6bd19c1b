/*
 * threadpool.c: up to `max` threads draining one FIFO queue. `pending` counts queued plus
 * running jobs, so kiln_threadpool_wait() also waits for jobs that jobs submit. One thread starts
 * with the pool; the others start when a job is queued while every thread is busy (a pool that is
 * rarely full, such as the solver's waiting pool, costs no thread creation at start-up).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/base.h"
#include "base/threadpool.h"

struct job {
    kiln_job_fn fn;
    void *arg;
    struct job *next;
};

struct kiln_threadpool {
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or shutdown */
    pthread_cond_t idle; /* pending reached 0 */
    struct job *head, *tail;
    size_t pending;
    bool shutdown;
    unsigned nthreads; /* started */
    unsigned max;
    pthread_t *threads;
};

unsigned
kiln_ncpus(void)
{
    cpu_set_t set;
    long n;

    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void *
worker(void *arg)
{
    kiln_threadpool *p = arg;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->shutdown)
            pthread_cond_wait(&p->work, &p->lock);
        if (!p->head)
            break;
        struct job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->lock);
        if (--p->pending == 0)
            pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int
kiln_threadpool_new(kiln_threadpool **out, unsigned nthreads, kiln_error **err)
{
    kiln_threadpool *p = xnew(kiln_threadpool);

    if (nthreads == 0)
        nthreads = kiln_ncpus();
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->threads = xcalloc(nthreads, sizeof(pthread_t));
    p->max = nthreads;
    int rc = pthread_create(&p->threads[0], NULL, worker, p);
    if (rc != 0) {
        kiln_threadpool_free(p);
        return kiln_error_errno(err, rc, "create thread pool of %u threads", nthreads);
    }
    p->nthreads = 1;
    *out = p;
    return 0;
}

void
kiln_threadpool_submit(kiln_threadpool *p, kiln_job_fn fn, void *arg)
{
    struct job *j = xnew(struct job);

    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->lock);
    kiln_assert(!p->shutdown);
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->pending++;
    /* every thread busy: start another (on failure the running threads take the job later) */
    if (p->pending > p->nthreads && p->nthreads < p->max &&
        pthread_create(&p->threads[p->nthreads], NULL, worker, p) == 0)
        p->nthreads++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

void
kiln_threadpool_wait(kiln_threadpool *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->pending > 0)
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void
kiln_threadpool_free(kiln_threadpool *p)
{
    if (!p)
        return;
    kiln_threadpool_wait(p);
    pthread_mutex_lock(&p->lock);
    p->shutdown = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->idle);
    free(p->threads);
    free(p);
}

unsigned
kiln_threadpool_size(const kiln_threadpool *p)
{
    return p->max;
}
