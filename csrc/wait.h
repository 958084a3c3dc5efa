/* Waiting on futures: one waiter registered on each future it watches,
 * woken through the owner's condition variable as each completes, with a
 * queue of which ones did: O(1) per completion, whatever the number. */
#ifndef FUTURES_WAIT_H
#define FUTURES_WAIT_H
#include "future.h"

typedef struct waiter {
  owner_t *owner;
  int n;
  watch_t *nodes;      /* nodes[i] watches futs[i] */
  int *doneq;          /* indexes, in completion order (under owner lock) */
  int qhead, qtail;
  int nfailed;         /* how many done ones failed (for FIRST_EXCEPTION) */
} waiter_t;

/* Called by fut_complete/fut_cancel with the future locked. */
void waiter_notify(watch_t *node);

/* Waits for one future until the absolute deadline (<0: forever); returns
 * OWNER_READY or OWNER_TIMEOUT, and raises "interrupted!" on Ctrl-C. */
int wait_one(lua_State *L, fut_t *f, double deadline);
#endif
