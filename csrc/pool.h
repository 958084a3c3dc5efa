/* The executor core shared by both pools: the queue of pending futures,
 * submit, shutdown, the broken state, the Lua executor object.  A backend
 * supplies the body of a worker thread (a thread that runs tasks in its own
 * lua_State, or a thread that feeds a worker process). */
#ifndef FUTURES_POOL_H
#define FUTURES_POOL_H
#include <pthread.h>
#include <stdatomic.h>
#include "future.h"
#include "lua.h"
#include "owner.h"

typedef struct pool pool_t;

typedef struct pool_backend {
  const char *kind;          /* "ThreadPoolExecutor": metatable and names */
  const char *broken_class;  /* "BrokenThreadPool" */
  int broken_kind;           /* fut_t.broken_kind for its futures */
  int lightuserdata;         /* may light userdata cross? */
  void *(*worker_main)(void *worker);  /* thread body; arg is a pool_worker */
  void (*destroy)(pool_t *p);          /* frees backend data (may be NULL) */
} pool_backend;

/* What a worker thread is handed. */
typedef struct pool_worker {
  pool_t *pool;   /* holds a reference */
  int number;     /* 0, 1, ... within the pool */
  char name[64];  /* "ThreadPoolExecutor-0_1" */
} pool_worker;

struct pool {
  atomic_int refs;
  const pool_backend *be;
  pthread_mutex_t mu;
  pthread_cond_t work;        /* workers wait here for tasks */
  fut_t *head, *tail;         /* pending futures, FIFO (queue holds refs) */
  atomic_int npending;         /* changed under mu; a spinning worker reads it without */
  int max_workers;
  int nworkers;               /* started and not yet exited */
  atomic_int live;            /* same, readable without the lock */
  int idle, wakeups;          /* idle workers; signals sent, not yet taken */
  int spinning;               /* a worker is about to sleep, looking for work first */
  int may_spin;               /* more than one CPU */
  int nstarted;
  atomic_int shutdown;        /* set under mu; read without it by the owner */
  atomic_int broken;          /* likewise */
  char *broken_msg;
  pthread_t *threads;
  int nthreads, capthreads;
  owner_t *owner;             /* the creating state, told when workers are gone */
  int number;
  char *prefix;
  char *path, *cpath;         /* the creator's package paths */
  tr_msg init;                /* initializer and initargs, if any */
  int has_init;
  int max_tasks;              /* per worker, 0 = no limit (processes) */
  void *be_data;
};

/* Registers the executor metatable of a backend, and puts its method table
 * in the module table (at -1) as <Kind>_methods. */
void pool_open(lua_State *L, const pool_backend *be);

/* core.<Kind>(max_workers, initializer, initargs, prefix, max_tasks):
 * pushes a new executor.  Called by each backend's constructor. */
pool_t *pool_push_new(lua_State *L, const pool_backend *be);

/* Takes the next pending future (the queue's reference passes to the
 * caller), waiting for one if `wait`; NULL when there is none and the pool
 * is shut down (or broken), or at once if !wait.  `more` > 0 also takes up
 * to that many more (at most a fair share of the queue) into extra[] (for
 * process pipelines); *nextra says how many. */
fut_t *pool_take(pool_t *p, int wait, fut_t **extra, int more, int *nextra);

/* Marks the pool broken: pending futures fail with the backend's Broken
 * error, later submits raise it. */
void pool_break(pool_t *p, const char *why);

/* Called by a worker thread as its last act on the pool. */
void pool_worker_exit(pool_worker *w);

/* Starts one more worker thread for p (with the lock not held); 0 on error. */
int pool_start_worker(pool_t *p);

void pool_ref(pool_t *p);
void pool_unref(pool_t *p);
pool_t *pool_check(lua_State *L, int idx);
#endif
