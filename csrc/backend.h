/* The core's internals that an executor built as a module of its own
 * (futures.mpi) drives, as one table of function pointers.
 *
 * Such a module must not link a second copy of the core: a future's lock
 * is one of fut.c's striped mutexes, and the decoder caches loaded code by
 * msg.c's blob ids, so two copies in one process would lock the same
 * future with different mutexes and hand out colliding ids.  Instead it
 * finds this table in the loaded core (dlsym of futures_backend_api on the
 * object that holds futures.core) and calls the one copy through it.
 *
 * Only additions at the end, each raising FUTURES_BACKEND_VERSION; a
 * module refuses a table older than its own version.
 */
#ifndef FUTURES_BACKEND_H
#define FUTURES_BACKEND_H
#include <stddef.h>
#include "futures.h"
#include "lua.h"
#include "msg.h"
#include "pool.h"
#include "procdefs.h"
#include "wire.h"
#include "workerstate.h"

#define FUTURES_BACKEND_VERSION 2

typedef struct futures_backend {
  int version;
  size_t size;                 /* sizeof(futures_backend) of the core */
  /* executors (pool.h) */
  const luax_class *pool_executor_class;   /* the parent of every executor kind */
  void (*pool_open)(lua_State *L, const pool_backend *be);
  pool_t *(*pool_push_new)(lua_State *L, const pool_backend *be);
  pool_t *(*pool_check)(lua_State *L, int idx);
  const pool_conf *(*pool_config)(pool_t *p);
  void *(*pool_data)(pool_t *p);
  void (*pool_set_data)(pool_t *p, void *data);
  fut_t *(*pool_take)(pool_t *p, int wait, fut_t **extra, int more, int *nextra);
  void (*pool_break)(pool_t *p, const char *why);
  void (*pool_worker_exit)(pool_worker *w);
  /* futures (fut.h) */
  int (*fut_set_running)(fut_t *f);
  int (*fut_complete)(fut_t *f, int outcome, tr_msg *msg, char *traceback);
  void (*fut_fail_msg)(fut_t *f, int outcome, const char *text);
  void (*fut_unref)(fut_t *f);
  /* messages and code blobs (msg.h, transfer.h) */
  void (*msg_init)(tr_msg *m);
  void (*msg_free)(tr_msg *m);
  int (*msg_reserve)(tr_msg *m, size_t extra);
  int (*msg_add_blob)(tr_msg *m, tr_blob *b);
  tr_blob *(*tr_blob_new)(const char *code, size_t len);
  void (*tr_blob_unref)(tr_blob *b);
  int (*tr_put_varint)(tr_msg *m, uint64_t v);
  int (*tr_encode_string)(tr_msg *m, const char *s, size_t len);
  /* frames (wire.h) */
  size_t (*wire_begin)(tr_msg *b, int type);
  void (*wire_end)(tr_msg *b, size_t start);
  int (*wire_bytes)(tr_msg *b, const void *p, size_t n);
  int (*wire_str)(tr_msg *b, const void *p, size_t n);
  int (*wire_frame)(const unsigned char *buf, size_t len, int *type,
                    const unsigned char **payload, size_t *plen, size_t *whole);
  int (*wire_varint)(wire_rd *r, uint64_t *v);
  int (*wire_getstr)(wire_rd *r, const unsigned char **s, size_t *len);
  int (*wire_fits)(const tr_msg *m, int inline_blobs);
  int (*wire_msg_by_id)(tr_msg *b, const tr_msg *m);
  int (*wire_msg_inline)(tr_msg *b, const tr_msg *m);
  int (*wire_read_inline)(wire_rd *r, tr_msg *m);
  /* the bounded set of code blobs a worker holds, both sides (procdefs.h) */
  int (*pdefs_send)(pdefs *d, tr_msg *out, const tr_msg *m);
  void (*pdefs_clear)(pdefs *d);
  tr_blob *(*wdefs_find)(idmap *d, uint64_t id);
  int (*wdefs_add)(idmap *d, uint64_t id, const unsigned char *code, size_t len);
  int (*wdefs_forget)(idmap *d, wire_rd *r);
  void (*wdefs_free)(idmap *d);
  /* worker states and calls (workerstate.h, task.h) */
  lua_State *(*ws_new)(const ws_config *c, char *err, size_t errlen);
  int (*task_run)(lua_State *L, const tr_msg *call, tr_msg *out, char **traceback, int lightuserdata);
  int (*task_init)(lua_State *L, const tr_msg *call, char *err, size_t errlen, int lightuserdata);
} futures_backend;

/* The table, if the core's version is at least `version`; else NULL. */
FUTURES_API const futures_backend *futures_backend_api(int version);
#endif
