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

static int holds(waiter_t *w, int mode) {   /* under the owner lock */
  if (mode == EACH_COMPLETED) return w->qhead < w->qtail;
  if (w->qtail == w->n) return 1;
  if (mode == FIRST_COMPLETED) return w->qtail > 0;
  if (mode == FIRST_EXCEPTION) return w->nfailed > 0;
  return 0;
}

static void enqueue(waiter_node *node) {
  waiter_t *w = node->w;
  pthread_mutex_lock(&w->owner->mu);
  w->doneq[w->qtail++] = (int)(node - w->nodes);
  if (atomic_load(&node->f->state) == F_FAILED) w->nfailed++;
  if (w->wake && holds(w, w->wake_mode)) owner_post_locked(w->owner, w->wake);
  pthread_cond_broadcast(&w->owner->cond);
  pthread_mutex_unlock(&w->owner->mu);
}

int waiter_holds(waiter_t *w, int mode) {
  pthread_mutex_lock(&w->owner->mu);
  int ok = holds(w, mode);
  pthread_mutex_unlock(&w->owner->mu);
  return ok;
}

void waiter_set_wake(waiter_t *w, owner_job *job, int mode) {
  pthread_mutex_lock(&w->owner->mu);
  w->wake = job;
  w->wake_mode = mode;
  if (job && holds(w, mode)) owner_post_locked(w->owner, job);
  pthread_mutex_unlock(&w->owner->mu);
}

static void node_notify(fut_watch *watch) { enqueue((waiter_node *)watch); }

int waiter_init(waiter_t *w, owner_t *o, fut_t **futs, int n) {
  w->owner = o;
  w->n = n;
  w->qhead = w->qtail = w->nfailed = 0;
  w->wake = NULL;
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
  return holds(a->w, a->mode);
}

int waiter_block(lua_State *L, waiter_t *w, int mode, double deadline) {
  cond_arg a = {w, mode};
  return owner_block(L, enough, &a, deadline);
}

int waiter_next(lua_State *L, waiter_t *w, double deadline, int *index) {
  *index = -1;
  pthread_mutex_lock(&w->owner->mu);
  int all = w->qhead == w->n;
  pthread_mutex_unlock(&w->owner->mu);
  if (all) return OWNER_READY;
  cond_arg a = {w, EACH_COMPLETED};
  int rc = owner_block(L, enough, &a, deadline);
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

static const luax_class box_class = {"futures.Waiter", NULL};

void waiter_box_close(waiter_box *b) {
  if (!b->live) return;
  waiter_release(&b->w);
  owner_unref(b->w.owner);
  b->live = 0;
}

static int box_gc(lua_State *L) {
  waiter_box_close(luax_checkudata(L, 1, &box_class));
  return 0;
}

void waiter_box_class(lua_State *L) {
  if (luax_newclass(L, &box_class)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__close");
  }
}

waiter_box *waiter_box_check(lua_State *L, int idx) { return luax_checkudata(L, idx, &box_class); }

waiter_box *waiter_push(lua_State *L, fut_t **futs, int n, double deadline) {
  owner_t *o = owner_get(L);
  waiter_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->live = 0;
  b->deadline = deadline;
  waiter_box_class(L);
  lua_setmetatable(L, -2);
  if (!waiter_init(&b->w, o, futs, n)) luaL_error(L, "not enough memory");
  owner_ref(o);
  b->live = 1;
  return b;
}
