/* The owner of a Lua state: what the state's single thread blocks on.
 *
 * Every Lua state that uses the library (the main state, and any worker
 * state whose tasks submit work of their own) has one owner_t.  All of the
 * state's blocking calls wait on the owner's one condition variable, and
 * everything that can end such a wait signals it: a watched future
 * completing, a future with done-callbacks completing (its callbacks are
 * queued here, to run in this state), an executor's last worker leaving.
 * One thread runs a state at a time, so one condition serves all its waits.
 *
 * The owner also keeps the state's executors (as exec_t handles), so that
 * closing the state waits for their queued work.
 */
#ifndef FUTURES_OWNER_H
#define FUTURES_OWNER_H
#include <pthread.h>
#include <stdatomic.h>
#include "lua.h"

struct fut;

typedef struct owner {
  atomic_int refs;
  pthread_mutex_t mu;
  pthread_cond_t cond;        /* CLOCK_MONOTONIC */
  struct fut *cbq_head, *cbq_tail;  /* futures whose callbacks are due */
  int closed;                 /* the state is gone: queue nothing more */
} owner_t;

/* An executor as the owner sees it, to wait for it at state close. */
typedef struct exec_ops {
  void (*shutdown)(void *pool, int cancel_futures);  /* no waiting */
  int (*finished)(void *pool);                       /* workers all gone? */
  void (*join)(void *pool);                          /* reap finished workers */
  void (*unref)(void *pool);
} exec_ops;

owner_t *owner_get(lua_State *L);   /* the state's owner (created on demand) */
void owner_ref(owner_t *o);
void owner_unref(owner_t *o);
void owner_signal(owner_t *o);      /* wake the state's blocking call */
/* Queues the future's done-callbacks to run in the owner's state (takes a
 * reference); called by the thread that completes it. */
void owner_queue_callbacks(owner_t *o, struct fut *f);
void owner_add_exec(lua_State *L, void *pool, const exec_ops *ops);  /* takes a ref */

/* Blocks the state's thread until ready(arg) (checked under o->mu), the
 * absolute monotonic deadline passes (deadline < 0: never), Ctrl-C is
 * pressed in the standalone interpreter, or callbacks are due, which it
 * runs (outside every lock) before waiting again.  Returns OWNER_READY,
 * OWNER_TIMEOUT or OWNER_INTERRUPTED; on the last the caller must clean up
 * and then call owner_raise_interrupt. */
enum { OWNER_READY, OWNER_TIMEOUT, OWNER_INTERRUPTED };
int owner_block(lua_State *L, int (*ready)(void *), void *arg, double deadline);
int owner_raise_interrupt(lua_State *L);

/* Runs the done-callbacks due in this state; returns how many ran.  A
 * callback's error goes to warn; only a Ctrl-C that stopped one is raised,
 * once the other callbacks of its future ran. */
int owner_run_callbacks(lua_State *L);
/* Is the error at idx lua.c's Ctrl-C ("interrupted!" from its hook)? */
int owner_is_interrupt(lua_State *L, int idx);
#endif
