/* One waiter on many futures.  See waiter.h.
 *
 * Registering links a node into each future's watcher list (fut.c); for a
 * future already done the node goes on the done queue at once.  A
 * completing future calls node_notify with its lock held: the node moves
 * to its waiter's done queue under the owner's lock (the lock order), and
 * the owner's condition is signalled.  The waiting state sleeps on that
 * condition through owner_block, so jobs and Ctrl-C are served during
 * every wait.  Nodes are unlinked before the waiter is freed.
 */
#include <stdlib.h>
#include "lauxlib.h"
#include "waiter.h"

static void enqueue(waiter_node *node) {
  waiter_t *w = node->w;
  pthread_mutex_lock(&w->owner->mu);
  w->doneq[w->qtail++] = (int)(node - w->nodes);
  if (atomic_load(&node->f->state) == F_FAILED) w->nfailed++;
  pthread_cond_broadcast(&w->owner->cond);
  pthread_mutex_unlock(&w->owner->mu);
}

static void node_notify(fut_watch *watch) { enqueue((waiter_node *)watch); }

int waiter_init(waiter_t *w, owner_t *o, fut_t **futs, int n) {
  w->owner = o;
  w->n = n;
  w->qhead = w->qtail = w->nfailed = 0;
  w->nodes = calloc((size_t)(n ? n : 1), sizeof *w->nodes);
  w->doneq = malloc((size_t)(n ? n : 1) * sizeof *w->doneq);
  if (!w->nodes || !w->doneq) { free(w->nodes); free(w->doneq); w->nodes = NULL; return 0; }
  for (int i = 0; i < n; i++) {
    waiter_node *node = &w->nodes[i];
    node->w = w;
    node->f = futs[i];
    node->watch.notify = node_notify;
    if (!fut_watch_add(futs[i], &node->watch)) enqueue(node);
  }
  return 1;
}

void waiter_release(waiter_t *w) {
  if (!w->nodes) return;
  for (int i = 0; i < w->n; i++) fut_watch_remove(w->nodes[i].f, &w->nodes[i].watch);
  free(w->nodes);
  free(w->doneq);
  w->nodes = NULL;
}

typedef struct cond_arg { waiter_t *w; int mode; } cond_arg;

static int enough(void *p) {   /* called under the owner lock */
  cond_arg *a = p;
  waiter_t *w = a->w;
  int ndone = w->qtail;
  if (ndone == w->n) return 1;
  if (a->mode == FIRST_COMPLETED) return ndone > 0;
  if (a->mode == FIRST_EXCEPTION) return w->nfailed > 0;
  return 0;
}

int waiter_block(lua_State *L, waiter_t *w, int mode, double deadline) {
  cond_arg a = {w, mode};
  return owner_block(L, enough, &a, deadline);
}

static int has_next(void *p) { waiter_t *w = p; return w->qhead < w->qtail; }

int waiter_next(lua_State *L, waiter_t *w, double deadline, int *index) {
  *index = -1;
  pthread_mutex_lock(&w->owner->mu);
  int all = w->qhead == w->n;
  pthread_mutex_unlock(&w->owner->mu);
  if (all) return OWNER_READY;
  int rc = owner_block(L, has_next, w, deadline);
  if (rc != OWNER_READY) return rc;
  pthread_mutex_lock(&w->owner->mu);
  *index = w->doneq[w->qhead++];
  pthread_mutex_unlock(&w->owner->mu);
  return rc;
}

int wait_one(lua_State *L, fut_t *f, double deadline) {
  waiter_t w;
  if (!waiter_init(&w, owner_get(L), &f, 1)) return luaL_error(L, "not enough memory");
  int rc = waiter_block(L, &w, ALL_COMPLETED, deadline);
  waiter_release(&w);
  if (rc == OWNER_INTERRUPTED) owner_raise_interrupt(L);
  return rc;
}
