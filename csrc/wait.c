/* Waiting on one future or many (futures.wait, futures.as_completed).
 *
 * A waiter holds one watch node per future.  Registering links each node
 * into its future's watcher list (or, for a future already done, queues it
 * at once); a completing future moves its nodes onto their waiters' done
 * queues and signals the owner's condition.  The waiting state sleeps on
 * that condition through owner_block, so done-callbacks and Ctrl-C are
 * served during every wait, and a completion costs O(1) however many
 * futures are watched.  Nodes are unlinked before the waiter is freed;
 * a waiter that lives across Lua calls (as_completed) is a userdata whose
 * __gc and __close unlink it.
 */
#include <stdlib.h>
#include "lauxlib.h"
#include "clock.h"
#include "core.h"
#include "wait.h"

#define WAITER_MT "futures.Waiter"
static const char k_waiter;
#define WAITER_KEY (&k_waiter)
enum { FIRST_COMPLETED = 1, FIRST_EXCEPTION = 2, ALL_COMPLETED = 3 };

void waiter_notify(watch_t *node) {
  waiter_t *w = node->w;
  pthread_mutex_lock(&w->owner->mu);
  w->doneq[w->qtail++] = (int)(node - w->nodes);
  if (atomic_load(&node->f->state) == F_FAILED) w->nfailed++;
  pthread_cond_broadcast(&w->owner->cond);
  pthread_mutex_unlock(&w->owner->mu);
}

/* Fills w for futs (already referenced by the caller) and registers it. */
static int waiter_init(waiter_t *w, owner_t *o, fut_t **futs, int n) {
  w->owner = o;
  w->n = n;
  w->qhead = w->qtail = w->nfailed = 0;
  w->nodes = calloc((size_t)(n ? n : 1), sizeof *w->nodes);
  w->doneq = malloc((size_t)(n ? n : 1) * sizeof *w->doneq);
  if (!w->nodes || !w->doneq) { free(w->nodes); free(w->doneq); w->nodes = NULL; return 0; }
  for (int i = 0; i < n; i++) {
    watch_t *node = &w->nodes[i];
    fut_t *f = futs[i];
    node->w = w;
    node->f = f;
    fut_lock(f);
    if (fut_done(atomic_load(&f->state))) {
      waiter_notify(node);
    } else {
      node->prev = NULL;
      node->next = f->watchers;
      if (f->watchers) f->watchers->prev = node;
      f->watchers = node;
      node->linked = 1;
    }
    fut_unlock(f);
  }
  return 1;
}

static void waiter_release(waiter_t *w) {
  if (!w->nodes) return;
  for (int i = 0; i < w->n; i++) {
    watch_t *node = &w->nodes[i];
    fut_t *f = node->f;
    fut_lock(f);
    if (node->linked) {
      if (node->prev) node->prev->next = node->next; else f->watchers = node->next;
      if (node->next) node->next->prev = node->prev;
      node->linked = 0;
    }
    fut_unlock(f);
  }
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

int wait_one(lua_State *L, fut_t *f, double deadline) {
  waiter_t w;
  if (!waiter_init(&w, owner_get(L), &f, 1)) return luaL_error(L, "not enough memory");
  cond_arg a = {&w, ALL_COMPLETED};
  int rc = owner_block(L, enough, &a, deadline);
  waiter_release(&w);
  if (rc == OWNER_INTERRUPTED) owner_raise_interrupt(L);
  return rc;
}

/* Reads a Lua sequence of Futures (deduplicated by the Lua front) at idx. */
static fut_t **collect(lua_State *L, int idx, int *n) {
  lua_Integer len = luaL_len(L, idx);
  luaL_argcheck(L, len < 100000000, idx, "too many futures");
  fut_t **fs = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *fs, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, i);
    fs[i - 1] = fut_check(L, -1);
    lua_pop(L, 1);
  }
  *n = (int)len;
  return fs;   /* anchored at the stack top */
}

/* core.wait(futures, deadline, mode) -> done, not_done (sequences, in input
 * order).  The futures stay referenced by the caller's table meanwhile. */
static int l_wait(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double deadline = luaL_optnumber(L, 2, -1);
  int mode = (int)luaL_optinteger(L, 3, ALL_COMPLETED);
  int n;
  fut_t **fs = collect(L, 1, &n);
  waiter_t w;
  if (!waiter_init(&w, owner_get(L), fs, n)) return luaL_error(L, "not enough memory");
  cond_arg a = {&w, mode};
  int rc = owner_block(L, enough, &a, deadline);
  waiter_release(&w);
  if (rc == OWNER_INTERRUPTED) return owner_raise_interrupt(L);
  lua_createtable(L, n, 0);
  lua_createtable(L, 0, 0);
  lua_Integer nd = 0, nn = 0;
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    if (fut_done(atomic_load(&fs[i]->state))) lua_rawseti(L, -3, ++nd);
    else lua_rawseti(L, -2, ++nn);
  }
  return 2;
}

/* The as_completed iterator state: a waiter that lives across calls. */
typedef struct iter_box { waiter_t w; int live; } iter_box;

static int iter_close(lua_State *L) {
  iter_box *b = core_checkudata(L, 1, WAITER_KEY, WAITER_MT);
  if (b->live) { waiter_release(&b->w); owner_unref(b->w.owner); b->live = 0; }
  return 0;
}

static int has_next(void *p) { waiter_t *w = p; return w->qhead < w->qtail; }

/* waiter:next(deadline) -> index of the next completed future, or nil when
 * all were yielded; raises TimeoutError when the deadline passes first. */
static int iter_next(lua_State *L) {
  iter_box *b = core_checkudata(L, 1, WAITER_KEY, WAITER_MT);
  double deadline = luaL_optnumber(L, 2, -1);
  if (!b->live) return 0;
  waiter_t *w = &b->w;
  pthread_mutex_lock(&w->owner->mu);
  int all = w->qhead == w->n;
  pthread_mutex_unlock(&w->owner->mu);
  if (all) { iter_close(L); return 0; }
  int rc = owner_block(L, has_next, w, deadline);
  if (rc == OWNER_INTERRUPTED) { iter_close(L); return owner_raise_interrupt(L); }
  if (rc == OWNER_TIMEOUT) {
    int left = w->n - w->qhead;
    iter_close(L);
    lua_pushfstring(L, "%d (of %d) futures unfinished", left, w->n);
    return core_error(L, "TimeoutError", lua_tostring(L, -1));
  }
  pthread_mutex_lock(&w->owner->mu);
  int i = w->doneq[w->qhead++];
  pthread_mutex_unlock(&w->owner->mu);
  lua_pushinteger(L, i + 1);
  return 1;
}

/* core.waiter(futures) -> an as_completed iterator state. */
static int l_waiter(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n;
  fut_t **fs = collect(L, 1, &n);
  iter_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->live = 0;
  core_setmetatable(L, WAITER_KEY);
  lua_pushvalue(L, 1);            /* keeps the futures alive */
  lua_setiuservalue(L, -2, 1);
  owner_t *o = owner_get(L);
  if (!waiter_init(&b->w, o, fs, n)) return luaL_error(L, "not enough memory");
  owner_ref(o);
  b->live = 1;
  return 1;
}

static int l_poll(lua_State *L) {
  lua_pushinteger(L, owner_run_callbacks(L));
  return 1;
}

void wait_open(lua_State *L) {
  if (core_newmetatable(L, WAITER_KEY, WAITER_MT)) {
    lua_pushcfunction(L, iter_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, iter_close);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, iter_next);
    lua_setfield(L, -2, "next");
    lua_pushcfunction(L, iter_close);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_wait);
  lua_setfield(L, -2, "wait");
  lua_pushcfunction(L, l_waiter);
  lua_setfield(L, -2, "waiter");
  lua_pushcfunction(L, l_poll);
  lua_setfield(L, -2, "poll");
  lua_pushinteger(L, FIRST_COMPLETED);
  lua_setfield(L, -2, "FIRST_COMPLETED");
  lua_pushinteger(L, FIRST_EXCEPTION);
  lua_setfield(L, -2, "FIRST_EXCEPTION");
  lua_pushinteger(L, ALL_COMPLETED);
  lua_setfield(L, -2, "ALL_COMPLETED");
}
