/* One waiter on many futures: a watch node on each, woken through the
 * owner's condition as each completes, with a queue of which ones did:
 * O(1) per completion, whatever the number watched. */
#ifndef FUTURES_WAITER_H
#define FUTURES_WAITER_H
#include "fut.h"
#include "lua.h"
#include "luax.h"

enum { FIRST_COMPLETED = 1, FIRST_EXCEPTION = 2, ALL_COMPLETED = 3 };

typedef struct waiter_node { fut_watch watch; struct waiter *w; fut_t *f; } waiter_node;

typedef struct waiter {
  owner_t *owner;
  int n;
  waiter_node *nodes;  /* nodes[i] watches futs[i] */
  int *doneq;          /* indexes, in completion order (under the owner lock) */
  int qhead, qtail;
  int nfailed;         /* how many done ones failed (for FIRST_EXCEPTION) */
  /* A suspended coroutine's wake-up (under the owner lock): posted once
   * the mode holds (EACH_COMPLETED: at every completion). */
  owner_job *wake;
  int wake_mode;
} waiter_t;

enum { EACH_COMPLETED = 0 };   /* a wake mode: the as_completed loop */

/* Registers w on futs (referenced by the caller meanwhile); 0 if out of
 * memory.  waiter_release unlinks it from the futures still pending. */
int waiter_init(waiter_t *w, owner_t *o, fut_t **futs, int n);
void waiter_release(waiter_t *w);

/* Blocks (owner_block) until the return_when mode is met or the deadline
 * passes; returns OWNER_READY, OWNER_TIMEOUT or OWNER_INTERRUPTED. */
int waiter_block(lua_State *L, waiter_t *w, int mode, double deadline);
/* Whether the mode holds now (EACH_COMPLETED: a completion not yet taken). */
int waiter_holds(waiter_t *w, int mode);
/* Has job posted to the owner once the mode holds (at once if it does);
 * NULL stops it.  From the owner's thread. */
void waiter_set_wake(waiter_t *w, owner_job *job, int mode);
/* Blocks until the next completion not yet taken; then *index is its
 * position in futs.  Same returns; OWNER_READY with *index -1 when all
 * were taken. */
int waiter_next(lua_State *L, waiter_t *w, double deadline, int *index);

/* A waiter that lives across calls and suspensions: a userdata whose
 * __gc and __close release it (the as_completed loop's state, and the
 * wait of a suspended coroutine). */
typedef struct waiter_box { waiter_t w; double deadline; int live; } waiter_box;
/* Pushes one on futs (referenced by the caller meanwhile); raises on OOM. */
waiter_box *waiter_push(lua_State *L, fut_t **futs, int n, double deadline);
void waiter_box_close(waiter_box *b);   /* unlinks it now; harmless twice */
/* Pushes the box's metatable (a Lua API file adds methods to it). */
void waiter_box_class(lua_State *L);
waiter_box *waiter_box_check(lua_State *L, int idx);

/* Waits for one future until the absolute deadline (<0: forever); returns
 * OWNER_READY or OWNER_TIMEOUT, and raises "interrupted!" on Ctrl-C. */
int wait_one(lua_State *L, fut_t *f, double deadline);
#endif
