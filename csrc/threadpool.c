/* ThreadPoolExecutor: worker threads, each owning a private lua_State.
 *
 * DESIGN
 * A worker thread creates its state (standard libraries, the creator's
 * package paths, the embedder's hook), runs the initializer, then loops:
 * take a future from the pool queue (pool.c), move it PENDING -> RUNNING
 * (a cancelled one is skipped), decode and run the call in its state, and
 * complete the future with the encoded outcome.  The state is touched by
 * this thread only, and closed by it before it leaves.  An initializer that
 * fails breaks the pool: pending futures fail with BrokenThreadPool.
 * See pool.c for the queue, the locks and who frees what.
 */
#include <stdlib.h>
#include "lauxlib.h"
#include "pool.h"
#include "threadpool.h"
#include "task.h"
#include "workerstate.h"

static void run_one(lua_State *L, fut_t *f) {
  tr_msg out;
  char *tb;
  msg_init(&out);
  int outcome = task_run(L, &f->msg, &out, &tb, 1);
  msg_free(&f->msg);            /* the call: RUNNING, so ours alone */
  fut_complete(f, outcome, &out, tb);
  msg_free(&out);
}

static void *worker_main(void *arg) {
  pool_worker *w = arg;
  pool_t *p = w->pool;
  char err[256];
  const pool_conf *c = pool_config(p);
  ws_config cfg = {c->path, c->cpath, w->name};
  lua_State *L = ws_new(&cfg, err, sizeof err);
  if (L && c->has_init && !task_init(L, &c->init, err, sizeof err, 1)) {
    lua_close(L);
    L = NULL;
  }
  if (!L) {
    pool_break(p, err);
  } else {
    fut_t *f;
    while ((f = pool_take(p, 1, NULL, 0, NULL))) {
      if (fut_set_running(f)) run_one(L, f);
      fut_unref(f);
    }
    lua_close(L);
  }
  pool_worker_exit(w);
  return NULL;
}

static const pool_backend backend = {
  {"ThreadPoolExecutor", &pool_executor_class}, LUAX_BROKEN_THREAD, 0, 1, worker_main, NULL
};

/* core.ThreadPoolExecutor(max_workers, initializer, initargs, prefix) */
static int l_new(lua_State *L) {
  lua_settop(L, 4);
  pool_push_new(L, &backend);
  return 1;
}

void tpool_open(lua_State *L) {
  pool_open(L, &backend);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "ThreadPoolExecutor");
}
