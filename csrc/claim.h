/* Which calls sent to a worker process it has started, and which one it
 * must stop: words shared by the proxy and its worker, so calls sent
 * ahead can be taken back and a running call stopped. */
#ifndef FUTURES_CLAIM_H
#define FUTURES_CLAIM_H
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#define CLAIM_FD 5   /* where the worker finds the shared page */

/* Stopping a running call: the proxy stores the task id in `stop`, then
 * sends the worker CLAIM_STOP_SIGNAL; the worker stops the call it runs
 * if that is the one, and checks `stop` again before it starts each call
 * (ids are never reused, so a stale id stops nothing). */
#define CLAIM_STOP_SIGNAL SIGUSR1
#define CLAIM_NONE UINT64_MAX

typedef struct claim {
  _Atomic uint64_t next;     /* the next task id the worker may start; CLAIM_BACK: taken back */
  _Atomic uint64_t resume;   /* with CLAIM_BACK: ids below this were taken back */
  _Atomic uint64_t stop;     /* a task the worker must stop, or CLAIM_NONE */
} claim_t;

/* Parent: a shared page whose first task id will be `first`; *fd is a
 * descriptor for the child (close it once spawned).  NULL on failure
 * (errno set). */
claim_t *claim_create(uint64_t first, int *fd);
/* Worker: maps the page at fd (then closes fd).  NULL on failure. */
claim_t *claim_open(int fd);
void claim_free(claim_t *c);

/* Worker, before starting task `id` (ids come in order): 1 start it,
 * 0 it was taken back (skip it, say nothing). */
int claim_start(claim_t *c, uint64_t id);
/* Proxy: takes back every task from the first not started up to (not
 * including) `end`, the next id it will send.  Returns that first id (the
 * tasks from it on will never start), or `end` if none could be taken. */
uint64_t claim_take_back(claim_t *c, uint64_t end);
#endif
