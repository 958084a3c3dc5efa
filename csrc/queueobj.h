/* futures.Queue, the Lua object over a queue (queue.c) or, in a process
 * worker, over a handle to a queue of the parent process. */
#ifndef FUTURES_QUEUEOBJ_H
#define FUTURES_QUEUEOBJ_H
#include "lua.h"
#include "msg.h"

/* What a process worker's queue handle does: each operation is a request
 * to the parent.  The handle's blob (kind queueobj_remote_kind) holds an
 * object whose first member points to these.  put and get return
 * QUEUE_OK, QUEUE_WAIT (the deadline passed) or QUEUE_CLOSED; all may
 * raise; put takes m's contents, get fills out (empty on entry). */
typedef struct queue_remote_ops {
  int (*put)(lua_State *L, tr_blob *b, tr_msg *m, double deadline);
  int (*get)(lua_State *L, tr_blob *b, tr_msg *out, double deadline);
  /* Size, maxsize and closed, as the parent sees them now. */
  void (*info)(lua_State *L, tr_blob *b, size_t *size, size_t *maxsize, int *closed);
  void (*close)(lua_State *L, tr_blob *b);
  void (*destroy)(tr_blob *b);   /* the worker holds it no more */
  uint64_t (*wire_id)(tr_blob *b);   /* the parent's id of the queue */
} queue_remote_ops;

extern const tr_kind queueobj_remote_kind;

/* A new queue's blob (one reference), for C code such as the fuzzer; its
 * kind's push makes the state's futures.Queue.  NULL if out of memory. */
tr_blob *queueobj_new_blob(size_t maxsize);

/* Turns spinning before a blocking wait off or back on: a test hook. */
void queueobj_spin_enable(int on);

void queueobj_open(lua_State *L);   /* core.Queue into the module table at -1 */
#endif
