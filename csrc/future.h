/* The shared state of a future, and the Lua Future object around it. */
#ifndef FUTURES_FUTURE_H
#define FUTURES_FUTURE_H
#include <stdatomic.h>
#include "lua.h"
#include "msg.h"
#include "owner.h"

enum { F_PENDING, F_RUNNING, F_CANCELLED, F_FINISHED, F_FAILED };

/* How a finished call's message is to be read. */
enum {
  OUT_VALUES,     /* msg: the returned values */
  OUT_ERROR,      /* msg: the error value; traceback set */
  OUT_TRANSFER,   /* msg: one string, why a value could not cross */
  OUT_BROKEN,     /* msg: one string, why the executor broke */
  OUT_LOCAL       /* outcome already stored in the Lua object */
};

struct waiter;

/* One registration of a waiter on a future (intrusive, doubly linked). */
typedef struct watch {
  struct watch *prev, *next;
  struct waiter *w;
  struct fut *f;
  int linked;
} watch_t;

typedef struct fut {
  atomic_int refs;
  atomic_int state;
  int outcome;             /* OUT_*, valid once done */
  int broken_kind;         /* with OUT_BROKEN: 0 threads, 1 processes */
  watch_t *watchers;       /* under the future's lock */
  owner_t *cb_owner;       /* set once callbacks are added; holds a ref */
  struct fut *next;        /* executor queue link (under the pool lock) */
  struct fut *cbnext;      /* owner callback queue link (under owner lock) */
  char *traceback;         /* with OUT_ERROR, malloc'd */
  tr_msg msg;              /* the call until it starts, then the outcome */
} fut_t;

fut_t *fut_new(void);                /* PENDING, refs 1; NULL if no memory */
void fut_ref(fut_t *f);
void fut_unref(fut_t *f);
void fut_lock(fut_t *f);
void fut_unlock(fut_t *f);
static inline int fut_done(int st) { return st >= F_CANCELLED; }

/* PENDING -> RUNNING; returns 0 if the future was cancelled meanwhile. */
int fut_set_running(fut_t *f);
/* PENDING -> CANCELLED; returns 1 if now (or already) cancelled. */
int fut_cancel(fut_t *f);
/* RUNNING (or PENDING) -> FINISHED/FAILED with msg's contents (swapped in),
 * outcome and traceback (taken over).  Notifies waiters and queues the
 * callbacks.  Returns 0 if the future was already done. */
int fut_complete(fut_t *f, int outcome, tr_msg *msg, char *traceback);
/* Fails a future with a string message of kind OUT_BROKEN/OUT_TRANSFER. */
void fut_fail_msg(fut_t *f, int outcome, const char *text);

/* The Lua side. */
#define FUTURE_MT "futures.Future"
typedef struct fut_box {
  fut_t *f;
  int single;   /* user value 1 is the one returned value, not a table */
} fut_box;
/* Pushes a new Lua Future (raises on OOM).  mt: the stack index of the
 * Future metatable where the caller has it at hand (an upvalue), or 0. */
fut_box *fut_push_new(lua_State *L, int mt);
void fut_push_metatable(lua_State *L);
fut_t *fut_check(lua_State *L, int idx);
/* Stores the outcome values (at the stack top, n of them) in the Lua object
 * (used when a future fails before it crossed, e.g. a TransferError). */
void fut_fail_local(lua_State *L, int idx, fut_box *b);
/* Runs the callbacks of a future taken off the owner's queue, dropping the
 * queue's reference (owner.c calls it); returns how many ran.  Never raises:
 * a Ctrl-C that stopped a callback sets *interrupted instead. */
int fut_run_callbacks(lua_State *L, fut_t *f, int *interrupted);
#endif
