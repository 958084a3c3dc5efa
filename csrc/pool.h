/* The executor core shared by both pools: the queue of pending futures,
 * submit, shutdown, the broken state, the Lua executor object.  A backend
 * supplies the body of a worker thread (a thread that runs tasks in its own
 * lua_State, or a thread that feeds a worker process). */
#ifndef FUTURES_POOL_H
#define FUTURES_POOL_H
#include "fut.h"
#include "lua.h"
#include "luax.h"

typedef struct pool pool_t;

/* The class every executor kind has as its parent. */
extern const luax_class pool_executor_class;

typedef struct pool_backend {
  luax_class cls;            /* {"ThreadPoolExecutor", &pool_executor_class} */
  luax_errclass broken;      /* LUAX_BROKEN_THREAD */
  int broken_kind;           /* fut_t.broken_kind for its futures */
  int lightuserdata;         /* may light userdata cross? */
  void *(*worker_main)(void *worker);  /* thread body; arg is a pool_worker */
  void (*destroy)(void *data);         /* frees the backend's data (may be NULL) */
} pool_backend;

/* What a pool was created with: the same for all its workers. */
typedef struct pool_conf {
  char *path, *cpath;        /* the creator's package paths */
  tr_msg init;               /* initializer and initargs, if has_init */
  int has_init;
  int max_tasks;             /* per worker, 0 = no limit (processes) */
  double call_timeout;       /* seconds a call may run before it is stopped; 0 = no limit */
  double stop_grace;         /* processes: seconds a stopped call has before its worker is killed */
} pool_conf;

/* What a worker thread is handed. */
typedef struct pool_worker {
  pool_t *pool;   /* holds a reference */
  int number;     /* 0, 1, ... within the pool */
  char name[64];  /* "ThreadPoolExecutor-0_1" */
} pool_worker;

/* Registers the executor metatable of a backend, and puts its method table
 * in the module table (at -1) as <Kind>_methods. */
void pool_open(lua_State *L, const pool_backend *be);

/* core.<Kind>(max_workers, initializer, initargs, prefix, max_tasks,
 *            call_timeout, stop_grace):
 * pushes a new executor.  Called by each backend's constructor. */
pool_t *pool_push_new(lua_State *L, const pool_backend *be);
pool_t *pool_check(lua_State *L, int idx);   /* an open executor at idx */

const pool_conf *pool_config(pool_t *p);
void *pool_data(pool_t *p);                  /* the backend's own */
void pool_set_data(pool_t *p, void *data);   /* freed by be->destroy */

/* Takes the next pending future (the queue's reference passes to the
 * caller), waiting for one if `wait`; NULL when there is none and the pool
 * is shut down (or broken), or at once if !wait.  `more` > 0 also takes up
 * to that many more (at most a fair share of the queue) into extra[] (for
 * process pipelines); *nextra says how many.  Without waiting, and for
 * extras, calls go to a caller that has one already only when no worker
 * is idle and none could still be started. */
fut_t *pool_take(pool_t *p, int wait, fut_t **extra, int more, int *nextra);

/* How many workers wait for work and have not been woken for a call. */
int pool_idle_workers(pool_t *p);

/* Puts back at the head of the queue, in order, calls taken that no worker
 * started (the references pass back), and wakes the workers; if the pool
 * broke meanwhile they fail instead.  Calls marked running go back to
 * pending: no worker started them. */
void pool_giveback(pool_t *p, fut_t **fs, int n);

/* Marks the pool broken: pending futures fail with the backend's Broken
 * error, later submits raise it. */
void pool_break(pool_t *p, const char *why);

/* Called by a worker thread as its last act on the pool. */
void pool_worker_exit(pool_worker *w);
#endif
