/* futures.Queue: the Lua object over a shared queue (queue.c).
 *
 * The userdata holds one reference to the queue's blob.  Values go in
 * encoded (the transfer rules) and come out decoded in the getter's
 * state.  A state keeps one userdata per queue (a weak table keyed by the
 * blob), so a queue that went to a worker and came back inside a result
 * is the very object the caller made.
 *
 * Waits: a put or get that cannot go through links a watch node on the
 * queue and waits like every wait of the library: owner_block on the
 * state's thread (Ctrl-C, due callbacks, a stop request), or, in a
 * coroutine of futures.spawn, a suspension whose wake-up the queue posts
 * (the node then lives in a userdata on the suspended call's stack).  The
 * call retries after each wake-up, under the queue's lock; the readiness
 * check of owner_block reads only the queue's atomics (the lock order).
 *
 * In a process worker a Queue is a handle to the parent's queue: the same
 * methods, each a request over the worker's pipes (queue_remote_ops).
 */
#include <string.h>
#include <unistd.h>
#include "lauxlib.h"
#include "clock.h"
#include "luax.h"
#include "owner.h"
#include "queue.h"
#include "queueobj.h"
#include "suspend.h"
#include "transfer.h"

typedef struct qbox { tr_blob *b; } qbox;   /* NULL once finalized */

static const luax_class queue_class = {"futures.Queue", &tr_shared_class};
static const luax_class scratch_class = {"futures.QueueScratch", NULL};
static const luax_class qwait_class = {"futures.QueueWait", NULL};
static const char k_objects;
#define OBJECTS (&k_objects)   /* registry: lightuserdata(blob) -> Queue (weak values) */

static void local_destroy(tr_blob *b) { queue_destroy(b); }
static int push_blob(lua_State *L, tr_blob *b);
static void setup(lua_State *L);

static uint64_t local_id(tr_blob *b) { return b->id; }

static const tr_kind local_kind = {"queue", 1, local_destroy, push_blob, local_id, NULL};

static const queue_remote_ops *ops_of(tr_blob *b) { return *(const queue_remote_ops **)TR_BLOB_OBJ(b); }
static void remote_destroy(tr_blob *b) { ops_of(b)->destroy(b); }
static uint64_t remote_id(tr_blob *b) { return ops_of(b)->wire_id(b); }

const tr_kind queueobj_remote_kind = {"queue", 0, remote_destroy, push_blob, remote_id, NULL};

static const queue_remote_ops *remote_of(tr_blob *b) {
  return b->kind == &local_kind ? NULL : *(const queue_remote_ops **)TR_BLOB_OBJ(b);
}

/* Every method has the class's metatable as upvalue 1 (luax_checkself)
 * and the scratch message as upvalue 2. */
static tr_blob *self(lua_State *L) {
  qbox *x = luax_checkself(L, &queue_class);
  if (!x->b) luaL_error(L, "the queue was garbage-collected");
  return x->b;
}

static int qbox_gc(lua_State *L) {
  qbox *x = luax_checkudata(L, 1, &queue_class);
  tr_blob *b = x->b;
  x->b = NULL;
  tr_blob_unref(b);
  return 0;
}

/* Pushes the state's Queue for b (made, with a reference of its own, if
 * there is none yet). */
static int push_blob(lua_State *L, tr_blob *b) {
  if (!lua_checkstack(L, 8)) return 0;
  setup(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, OBJECTS);
  if (lua_rawgetp(L, -1, b) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);
  qbox *x = lua_newuserdatauv(L, sizeof *x, 0);
  x->b = NULL;
  luax_setclass(L, &queue_class);
  tr_blob_ref(b);
  x->b = b;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, b);
  lua_remove(L, -2);
  return 1;
}

/* ------------------------------------------------------------- scratch
 * One message per state for the value crossing now, never held across a
 * wait (a callback run during the wait may use it), in a userdata so that
 * a memory error in the codec leaks nothing. */
#define SCRATCH lua_upvalueindex(2)

static tr_msg *scratch(lua_State *L) {
  tr_msg *m = lua_touserdata(L, SCRATCH);
  msg_clear(m);
  return m;
}

static int scratch_gc(lua_State *L) {
  msg_free(luax_checkudata(L, 1, &scratch_class));
  return 0;
}

/* ---------------------------------------------------------------- waits */

/* The watch node of a wait: on the C stack for a blocked thread, in a
 * userdata (at the call's stack slot 4) for a suspended coroutine. */
typedef struct qwait {
  queue_watch w;
  queue_t *q;
  owner_t *o;
  owner_job *wake;   /* a suspended coroutine's; NULL: signal the owner */
  int getting;
  tr_blob *b;        /* the userdata's own reference (NULL on the C stack) */
} qwait;

static void qwait_notify(queue_watch *w) {   /* the queue's lock, then the owner's */
  qwait *x = (qwait *)w;
  if (x->wake) owner_post(x->o, x->wake);
  else owner_signal(x->o);
}

/* Notified counts as ready: a wake-up may come for a value (room) that
 * another party took before this one looked, and the node, marked woken,
 * gets no other until it looks again. */
static int qwait_ready(void *arg) {
  qwait *x = arg;
  if (atomic_load_explicit(&x->w.notified, memory_order_relaxed)) return 1;
  return x->getting ? queue_can_get(x->q) : queue_can_put(x->q);
}

static void qwait_release(qwait *x) {
  if (!x->b) return;
  queue_unwatch(x->q, &x->w);
  owner_unref(x->o);
  tr_blob_unref(x->b);
  x->b = NULL;
}

static int qwait_gc(lua_State *L) {
  qwait_release(luax_checkudata(L, 1, &qwait_class));
  return 0;
}

static qwait *push_qwait(lua_State *L, tr_blob *b, int getting, susp_t *s) {
  qwait *x = lua_newuserdatauv(L, sizeof *x, 0);
  memset(x, 0, sizeof *x);
  luax_setclass(L, &qwait_class);
  x->w.notify = qwait_notify;
  x->q = queue_of(b);
  x->o = owner_get(L);
  owner_ref(x->o);
  x->wake = susp_wake_job(s);
  x->getting = getting;
  tr_blob_ref(b);
  x->b = b;
  return x;
}

static int raise_closed(lua_State *L, int getting) {
  return luax_error(L, LUAX_SHUTDOWN, getting ? "the queue is closed and empty" : "the queue is closed");
}

/* One try of the operation; w: the node to link if it must wait. */
static int try_op(lua_State *L, queue_t *q, int getting, queue_watch *w) {
  tr_msg *m = scratch(L);
  if (getting) return queue_get(q, m, w);
  char err[TR_ERRLEN];
  tr_opts o = {1, "the value", 0, NULL};
  if (!tr_encode_scalar(L, 2, m) && !tr_encode(L, 2, 1, m, &o, err)) {
    if (w) queue_unwatch(q, w);
    luax_error(L, LUAX_TRANSFER, err);
  }
  int rc = queue_put(q, m, w, 0);
  msg_clear(m);   /* what a put that did not go through left */
  if (rc == QUEUE_NOMEM) {
    if (w) queue_unwatch(q, w);
    luaL_error(L, "not enough memory");
  }
  return rc;
}

/* Spinning: a party that finds the queue empty (full) while the other
 * side streams would otherwise sleep and be woken, a system call on both
 * sides, every few values.  It watches the queue's atomics instead, for
 * at most SPIN_S, linked as no watcher (so a put or get signals nobody),
 * polling less and less often (each poll takes a line the other side is
 * writing), and only where another core can be making the progress it
 * waits for.  A getter that sees fewer than SPIN_BATCH values arrive
 * waits up to SPIN_RIPE for more (they stay visible to every getter
 * meanwhile): taking them one by one, just behind the producer, would
 * cost both sides a handoff of the counter's and the slot's lines for
 * every value. */
#define SPIN_S 50e-6
#define SPIN_BATCH 16
#define SPIN_RIPE 2e-6
#define SPIN_BACKOFF 256   /* pauses between polls, at most */

static atomic_int spin_on = 1;
void queueobj_spin_enable(int on) { atomic_store_explicit(&spin_on, on, memory_order_relaxed); }

static int can_spin(void) {
  static atomic_int cores;   /* 0 not known yet; every thread finds the same */
  int c = atomic_load_explicit(&cores, memory_order_relaxed);
  if (!c) {
    c = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : -1;
    atomic_store_explicit(&cores, c, memory_order_relaxed);
  }
  return atomic_load_explicit(&spin_on, memory_order_relaxed) && c > 0;
}

/* Tries again while the queue's atomics say it may go through, until
 * SPIN_S (or the deadline) passed; QUEUE_WAIT when it did not. */
static int spin_op(lua_State *L, queue_t *q, int getting, double deadline) {
  qwait probe = {{0}, q, NULL, NULL, getting, NULL};
  double now = clk_now(), until = now + SPIN_S, ripe = -1;
  if (deadline >= 0 && deadline < until) until = deadline;
  for (unsigned n = 1; now < until; now = clk_now()) {
    size_t len = queue_len(q);
    if (getting && len > 0 && len < SPIN_BATCH && !queue_is_closed(q)) {
      if (ripe < 0) ripe = now + SPIN_RIPE;
      if (now < ripe) {
        queue_relax(32);
        continue;
      }
    }
    if (qwait_ready(&probe)) {
      int rc = try_op(L, q, getting, NULL);
      if (rc != QUEUE_WAIT) return rc;
    }
    queue_relax(n);
    if (n < SPIN_BACKOFF) n *= 2;
  }
  return QUEUE_WAIT;
}

/* Blocks the state's thread until the operation goes through (QUEUE_OK,
 * the value in the scratch message for a get), the queue closes
 * (QUEUE_CLOSED) or the deadline passes (QUEUE_WAIT).  The first tries
 * link no watch node and need no owner: most operations go through. */
static int block_op(lua_State *L, tr_blob *b, int getting, double deadline) {
  queue_t *q = queue_of(b);
  int rc = try_op(L, q, getting, NULL);
  if (rc != QUEUE_WAIT || (deadline >= 0 && clk_now() >= deadline)) return rc;
  if (can_spin() && (rc = spin_op(L, q, getting, deadline)) != QUEUE_WAIT) return rc;
  qwait x = {{0}, q, owner_get(L), NULL, getting, NULL};
  x.w.notify = qwait_notify;
  for (;;) {
    rc = try_op(L, x.q, getting, &x.w);
    if (rc != QUEUE_WAIT) return rc;
    int st = owner_block(L, qwait_ready, &x, deadline);
    if (st == OWNER_READY) continue;
    queue_unwatch(x.q, &x.w);
    if (st == OWNER_INTERRUPTED) owner_raise_interrupt(L);
    return try_op(L, x.q, getting, NULL);   /* a last look at the deadline */
  }
}

/* Pushes the value the scratch message holds (a get's); raises
 * TransferError if it does not decode here. */
static int push_got(lua_State *L, tr_msg *m, int lightuserdata) {
  if (tr_decode_scalar(L, m)) {
    msg_clear(m);
    return 1;
  }
  char err[TR_ERRLEN];
  size_t pos = 0;
  int n = tr_decode(L, m, &pos, lightuserdata, err);
  msg_free(m);
  if (n != 1) {
    if (n > 1) lua_pop(L, n);
    return luax_error(L, LUAX_TRANSFER, n < 0 ? err : "malformed queue value");
  }
  return 1;
}

static int remote_op(lua_State *L, tr_blob *b, const queue_remote_ops *r, int getting, double deadline) {
  tr_msg *m = scratch(L);
  if (getting) {
    int rc = r->get(L, b, m, deadline);
    if (rc == QUEUE_OK) push_got(L, m, 0);
    return rc;
  }
  char err[TR_ERRLEN];
  tr_opts o = {0, "the value", 0, NULL};
  if (!tr_encode_scalar(L, 2, m) && !tr_encode(L, 2, 1, m, &o, err)) luax_error(L, LUAX_TRANSFER, err);
  int rc = r->put(L, b, m, deadline);
  msg_free(m);
  return rc;
}

/* put and get, and the iterator's get (ctx 1: a closed queue ends the
 * loop).  Stack: 1 the queue, 2 the value or timeout, then (a put) the
 * timeout; in a spawned coroutine the deadline goes to 3 (a get) or 4 (a
 * put), for the continuation, and the wait's userdata right after it. */
static int op_k(lua_State *L, int status, lua_KContext ctx) {
  int getting = ctx != 0, iter = ctx == 2;
  int dl = getting ? 3 : 4;
  tr_blob *b = self(L);
  double deadline;
  if (status == LUA_OK) {
    if (!getting) luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "value expected (a queue holds no nil)");
    deadline = luax_optdeadline(L, dl - 1);
  } else {   /* woken: look again, linked no more while it does */
    qwait_release(lua_touserdata(L, dl + 1));
    deadline = lua_tonumber(L, dl);
  }
  const queue_remote_ops *r = remote_of(b);
  int rc;
  if (r) {
    rc = remote_op(L, b, r, getting, deadline);
    if (rc == QUEUE_OK) return getting;
  } else {
    susp_t *s = susp_current(L);   /* raises if its future was cancelled */
    if (!s) {
      rc = block_op(L, b, getting, deadline);
    } else {
      if (status == LUA_OK) {
        lua_settop(L, dl - 1);
        lua_pushnumber(L, deadline);
      }
      lua_settop(L, dl);
      qwait *x = push_qwait(L, b, getting, s);
      rc = try_op(L, x->q, getting, &x->w);
      if (rc == QUEUE_WAIT && !(deadline >= 0 && clk_now() >= deadline))
        return susp_wait(L, s, deadline, ctx, op_k);   /* yields: never returns */
      qwait_release(x);
    }
    if (rc == QUEUE_OK) return getting ? push_got(L, lua_touserdata(L, SCRATCH), 1) : 0;
  }
  if (rc == QUEUE_CLOSED) {
    if (iter) return 0;
    return raise_closed(L, getting);
  }
  return luax_error(L, LUAX_TIMEOUT, getting ? "the queue stayed empty" : "the queue stayed full");
}

static int l_put(lua_State *L) { return op_k(L, LUA_OK, 0); }
static int l_get(lua_State *L) { return op_k(L, LUA_OK, 1); }

/* The generic for's function: (q, control) -> the next value, or nothing
 * once the queue is closed and drained. */
static int l_iter_next(lua_State *L) {
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(3));   /* the timeout */
  return op_k(L, LUA_OK, 2);
}

static int l_iter(lua_State *L) {
  self(L);
  if (!lua_isnoneornil(L, 2)) luaL_checknumber(L, 2);
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, SCRATCH);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, l_iter_next, 3);
  lua_pushvalue(L, 1);
  return 2;
}

static int l_close(lua_State *L) {
  tr_blob *b = self(L);
  const queue_remote_ops *r = remote_of(b);
  if (r) r->close(L, b);
  else queue_close(queue_of(b));
  return 0;
}

static void info(lua_State *L, tr_blob *b, size_t *size, size_t *maxsize, int *closed) {
  const queue_remote_ops *r = remote_of(b);
  if (r) { r->info(L, b, size, maxsize, closed); return; }
  *size = queue_len(queue_of(b));
  *maxsize = queue_of(b)->maxsize;
  *closed = queue_is_closed(queue_of(b));
}

static int l_len(lua_State *L) {
  size_t size, maxsize;
  int closed;
  info(L, self(L), &size, &maxsize, &closed);
  lua_pushinteger(L, (lua_Integer)size);
  return 1;
}

static int l_tostring(lua_State *L) {
  size_t size, maxsize;
  int closed;
  info(L, self(L), &size, &maxsize, &closed);
  lua_pushfstring(L, "<Queue size=%I maxsize=%I%s>", (lua_Integer)size, (lua_Integer)maxsize,
                  closed ? " closed" : "");
  return 1;
}

tr_blob *queueobj_new_blob(size_t maxsize) { return queue_new(&local_kind, maxsize); }

static int l_new(lua_State *L) {
  lua_Integer maxsize = 0;
  if (!lua_isnoneornil(L, 1)) {
    int isint;
    maxsize = lua_tointegerx(L, 1, &isint);
    luaL_argcheck(L, isint && maxsize >= 0, 1, "maxsize must be a non-negative integer");
  }
  owner_get(L);   /* raises in a finalizer after the state's */
  tr_blob *b = queue_new(&local_kind, (size_t)maxsize);
  if (!b) return luaL_error(L, "not enough memory");
  int ok = push_blob(L, b);
  tr_blob_unref(b);   /* the userdata holds its own */
  if (!ok) return luaL_error(L, "not enough memory");
  return 1;
}

/* The class, its methods and the state's weak table of queues, made on
 * first use: a worker state gets its first queue by decoding one, without
 * having opened the module. */
static void setup(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, OBJECTS) == LUA_TTABLE) { lua_pop(L, 1); return; }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, OBJECTS);
  if (luax_newclass(L, &scratch_class)) {
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luax_newclass(L, &qwait_class)) {
    lua_pushcfunction(L, qwait_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  tr_msg *m = lua_newuserdatauv(L, sizeof *m, 0);   /* the scratch: every method's upvalue */
  msg_init(m);
  luax_setclass(L, &scratch_class);
  static const luaL_Reg methods[] = {
    {"put", l_put}, {"get", l_get}, {"iter", l_iter}, {"close", l_close}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__len", l_len}, {"__tostring", l_tostring}, {"__gc", qbox_gc}, {NULL, NULL}
  };
  if (luax_newclass(L, &queue_class)) {
    lua_pushvalue(L, -1);
    lua_pushvalue(L, -3);
    luaL_setfuncs(L, metamethods, 2);
    luaL_newlibtable(L, methods);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -4);
    luaL_setfuncs(L, methods, 2);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 2);
}

void queueobj_open(lua_State *L) {
  setup(L);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "Queue");
}
