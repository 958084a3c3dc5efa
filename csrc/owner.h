/* The owner of a Lua state: what the state's single thread blocks on.
 *
 * Every Lua state that uses the library (the main state, and any worker
 * state whose tasks submit work of their own) has one owner_t.  All of the
 * state's blocking calls wait on the owner's one condition variable, and
 * everything that can end such a wait signals it: a watched future
 * completing, a job posted to the state (done-callbacks to run), an
 * executor's last worker leaving.  One thread runs a state at a time, so
 * one condition serves all its waits.
 *
 * Jobs are how other threads hand work to the state: an owner_job is an
 * intrusive node plus its ops; the owner runs them, in order, from its
 * blocking calls and futures.poll(), never one inside another, and knows
 * nothing of what they do.  The owner also keeps the state's executors (as
 * exec_ops handles), so that closing the state waits for their work.
 */
#ifndef FUTURES_OWNER_H
#define FUTURES_OWNER_H
#include <pthread.h>
#include <stdatomic.h>
#include "fifo.h"
#include "lua.h"

typedef struct owner_job owner_job;

typedef struct owner_job_ops {
  /* Runs the job in the owner's state, outside every lock; never raises.
   * Returns how many user callbacks ran; sets *interrupted if a Ctrl-C
   * stopped one. */
  int (*run)(lua_State *L, owner_job *j, int *interrupted);
  void (*drop)(owner_job *j);   /* the state closed before the job ran */
} owner_job_ops;

struct owner_job {
  fifo_node link;               /* the owner's queue edits it */
  const owner_job_ops *ops;
  int queued;                   /* under the owner's lock: posted, not yet run */
};

/* A deadline on the state's own thread: when it passes, its job is posted.
 * One heap per state; only the state's thread sets or clears timers. */
typedef struct owner_timer {
  double at;                    /* absolute monotonic seconds */
  size_t slot;                  /* heap index + 1; 0 while not set */
  owner_job *job;
} owner_timer;

typedef struct owner {
  atomic_int refs;
  pthread_mutex_t mu;
  pthread_cond_t cond;          /* CLOCK_MONOTONIC */
  fifo jobs;                    /* under mu */
  int closed;                   /* under mu: the state is gone, post nothing */
  int efd;                      /* under mu: eventfd readable while jobs are queued, or -1 */
  /* A worker's running call was stopped (cancel(true), call_timeout): its
   * waits end with OWNER_INTERRUPTED and owner_raise_interrupt raises
   * CancelledError, until the worker clears it when the call returns.
   * Set by any thread, or a signal handler (lock-free). */
  atomic_int stop;
  /* The state's own thread only: */
  int running;                  /* inside a job */
  owner_timer **timers;         /* a min-heap on at */
  size_t ntimers, captimers;
} owner_t;

/* An executor as the owner sees it, to wait for it at state close. */
typedef struct exec_ops {
  void (*shutdown)(void *pool, int cancel_futures);  /* no waiting */
  int (*finished)(void *pool);                       /* workers all gone? */
  void (*join)(void *pool);                          /* reap finished workers */
  void (*unref)(void *pool);
} exec_ops;

/* The state's owner, created on demand; raises "futures: the Lua state is
 * closing" once the state's own finalizer ran (a later finalizer's call). */
owner_t *owner_get(lua_State *L);
/* The userdata behind owner_get, pushed, for a function to keep at hand
 * (an upvalue): owner_of_box(L, idx) is then owner_get with no lookup. */
void owner_push_box(lua_State *L);
owner_t *owner_of_box(lua_State *L, int idx);
/* lua_close of a state the library made (a worker's).  Its finalizers
 * run with the library refusing to make anything more in it: Lua gives
 * what they would make no finalizer of its own, so it would leak. */
void owner_close_state(lua_State *L);
void owner_ref(owner_t *o);
void owner_unref(owner_t *o);       /* NULL is fine */
void owner_signal(owner_t *o);      /* wake the state's blocking call */
/* Queues j to run in the owner's state and wakes it (once: a job already
 * queued stays where it is); 0 (nothing queued) once the state is closed.
 * Any thread, any lock of the caller's; _locked with o->mu held. */
int owner_post(owner_t *o, owner_job *j);
int owner_post_locked(owner_t *o, owner_job *j);

/* Timers, from the state's own thread: set (or move) t to `at`; clear it
 * (harmless if not set).  Due timers are posted by the state's next
 * blocking call or poll(). */
int owner_timer_set(owner_t *o, owner_timer *t, double at);   /* 0 if out of memory */
void owner_timer_clear(owner_t *o, owner_timer *t);
/* Seconds until the earliest timer (0 if jobs are due now), or -1 if none. */
double owner_timeout(lua_State *L);
/* The state's eventfd, made on first use: readable while jobs are due. */
int owner_fd(lua_State *L);
void owner_add_exec(lua_State *L, void *pool, const exec_ops *ops);  /* takes a ref */

/* Blocks the state's thread until ready(arg) (checked under o->mu), the
 * absolute monotonic deadline passes (deadline < 0: never), Ctrl-C is
 * pressed in the standalone interpreter, the running call is stopped
 * (o->stop), or jobs are due, which it runs
 * (outside every lock) before waiting again.  Returns OWNER_READY,
 * OWNER_TIMEOUT or OWNER_INTERRUPTED; on the last the caller must clean up
 * and then call owner_raise_interrupt. */
enum { OWNER_READY, OWNER_TIMEOUT, OWNER_INTERRUPTED };
int owner_block(lua_State *L, int (*ready)(void *), void *arg, double deadline);
int owner_raise_interrupt(lua_State *L);
/* Waits until the deadline like owner_block, running no jobs (a sleep is
 * not a wait on the library's work); OWNER_TIMEOUT or OWNER_INTERRUPTED. */
int owner_sleep(lua_State *L, double deadline);

/* Runs the jobs due in this state (none from inside a job); returns how
 * many callbacks ran.  Raises only a Ctrl-C that stopped one, once the
 * job it was in finished. */
int owner_run_jobs(lua_State *L);
/* Is the error at idx lua.c's Ctrl-C ("interrupted!" from its hook)? */
int owner_is_interrupt(lua_State *L, int idx);
#endif
