/* A process worker's handles to the parent's queues.  See qremote.h.
 *
 * A queue crosses to a worker process as its id; the worker keeps one
 * handle blob per id (a weak map: the blob lives while a message or a Lua
 * Queue holds it) and counts the messages that carried it, so that its
 * QDROP, sent when the last holder goes, tells the proxy exactly which
 * of the messages it sent are accounted for (a TASK sent meanwhile keeps
 * the queue held there: qserve.c).
 *
 * Every operation is a request on the result pipe, answered on the task
 * pipe, except puts sent ahead: the reply to a put grants `credit` more
 * puts that go without waiting, gathered into few writes (the worker's
 * output is flushed before it blocks and soon after in any case).  The
 * worker runs one call at a time on one thread, so there is one request
 * in flight at most and this file needs no lock.
 */
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "clock.h"
#include "idmap.h"
#include "luax.h"
#include "qremote.h"
#include "queue.h"
#include "queueobj.h"
#include "wire.h"

typedef struct qr_obj {
  const queue_remote_ops *ops;   /* first: queueobj.c finds them there */
  uint64_t qid, received;
  uint64_t credit;               /* puts that may go without a reply */
} qr_obj;

static const qr_chan *chan;
static idmap handles;            /* queue id -> blob (no reference) */
static uint64_t next_req = 1;

static qr_obj *obj(tr_blob *b) { return TR_BLOB_OBJ(b); }

static void fail(lua_State *L) { luaL_error(L, "futures: the pipe to the parent process broke"); }

/* Builds a request frame: type, request id, queue id. */
static size_t begin(tr_msg *f, int type, tr_blob *b, uint64_t *reqid) {
  size_t st = wire_begin(f, type);
  *reqid = next_req++;
  if (st == (size_t)-1 || !tr_put_varint(f, *reqid) || !tr_put_varint(f, obj(b)->qid)) return (size_t)-1;
  return st;
}

static void put_timeout(lua_State *L, tr_msg *f, double deadline) {
  double t = deadline < 0 ? -1 : deadline - clk_now();
  if (deadline >= 0 && t < 0) t = 0;
  if (!wire_bytes(f, &t, sizeof t)) luaL_error(L, "not enough memory");
}

/* Sends the frame and waits for its reply: the status, the rest in r. */
static int request(lua_State *L, tr_msg *f, uint64_t reqid, tr_msg *reply, wire_rd *r) {
  if (!chan || !chan->send(chan->io, f, 1) || !chan->reply(chan->io, reply)) fail(L);
  r->p = reply->data;
  r->end = reply->data + reply->len;
  uint64_t id;
  if (!wire_varint(r, &id) || id != reqid || r->p >= r->end) fail(L);
  return *r->p++;
}

static int frames_gc(lua_State *L) {
  tr_msg *f = lua_touserdata(L, 1);
  msg_free(&f[0]);
  msg_free(&f[1]);
  return 0;
}

/* The request's frame and its reply, in a userdata so that a raise leaks
 * nothing. */
static tr_msg *push_frames(lua_State *L) {
  tr_msg *f = lua_newuserdatauv(L, 2 * sizeof *f, 0);
  msg_init(&f[0]);
  msg_init(&f[1]);
  if (luaL_newmetatable(L, "futures.QueueRequest")) {
    lua_pushcfunction(L, frames_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return f;
}

static int r_put(lua_State *L, tr_blob *b, tr_msg *m, double deadline) {
  if (!qr_msg_ok(m)) luax_error(L, LUAX_TRANSFER, "the value holds a queue made in this worker process");
  tr_msg *f = push_frames(L);
  uint64_t reqid;
  int ahead = obj(b)->credit > 0;
  size_t st = begin(&f[0], W_QPUT, b, &reqid);
  unsigned char sync = (unsigned char)!ahead;
  if (st == (size_t)-1 || !wire_bytes(&f[0], &sync, 1)) luaL_error(L, "not enough memory");
  put_timeout(L, &f[0], ahead ? -1 : deadline);
  if (!wire_msg_inline(&f[0], m)) luaL_error(L, "not enough memory");
  wire_end(&f[0], st);
  int rc = QUEUE_OK;
  if (ahead) {
    obj(b)->credit--;
    if (!chan || !chan->send(chan->io, &f[0], 0)) fail(L);
  } else {
    wire_rd r;
    rc = request(L, &f[0], reqid, &f[1], &r);
    uint64_t credit = 0;
    if (!wire_varint(&r, &credit)) fail(L);
    obj(b)->credit = rc == QUEUE_OK ? credit : 0;
  }
  lua_pop(L, 1);
  return rc;
}

static tr_blob *resolve(void *ctx, uint64_t id) { (void)ctx; return qr_blob(id); }

static int r_get(lua_State *L, tr_blob *b, tr_msg *out, double deadline) {
  tr_msg *f = push_frames(L);
  uint64_t reqid;
  size_t st = begin(&f[0], W_QGET, b, &reqid);
  if (st == (size_t)-1) luaL_error(L, "not enough memory");
  put_timeout(L, &f[0], deadline);
  wire_end(&f[0], st);
  wire_rd r;
  int rc = request(L, &f[0], reqid, &f[1], &r);
  if (rc == QUEUE_OK && !wire_read_inline_q(&r, out, &(wire_resolver){resolve, NULL, NULL})) fail(L);
  lua_pop(L, 1);
  return rc;
}

static void r_info(lua_State *L, tr_blob *b, size_t *size, size_t *maxsize, int *closed) {
  tr_msg *f = push_frames(L);
  uint64_t reqid, n = 0, max = 0, c = 0;
  size_t st = begin(&f[0], W_QINFO, b, &reqid);
  if (st == (size_t)-1) luaL_error(L, "not enough memory");
  wire_end(&f[0], st);
  wire_rd r;
  request(L, &f[0], reqid, &f[1], &r);
  if (!wire_varint(&r, &n) || !wire_varint(&r, &max) || !wire_varint(&r, &c)) fail(L);
  *size = (size_t)n;
  *maxsize = (size_t)max;
  *closed = c != 0;
  lua_pop(L, 1);
}

static void r_close(lua_State *L, tr_blob *b) {
  tr_msg *f = push_frames(L);
  uint64_t reqid;
  size_t st = begin(&f[0], W_QCLOSE, b, &reqid);
  if (st == (size_t)-1) luaL_error(L, "not enough memory");
  wire_end(&f[0], st);
  obj(b)->credit = 0;
  if (!chan || !chan->send(chan->io, &f[0], 1)) fail(L);
  lua_pop(L, 1);
}

/* The last holder went: tell the parent (no Lua here: from a finalizer
 * or a message being freed). */
static void r_destroy(tr_blob *b) {
  qr_obj *o = obj(b);
  idmap_del(&handles, o->qid);
  if (!chan) return;
  tr_msg f;
  msg_init(&f);
  size_t st = wire_begin(&f, W_QDROP);
  if (st != (size_t)-1 && tr_put_varint(&f, o->qid) && tr_put_varint(&f, o->received)) {
    wire_end(&f, st);
    chan->send(chan->io, &f, 0);
  }
  msg_free(&f);
}

static uint64_t r_wire_id(tr_blob *b) { return obj(b)->qid; }

static const queue_remote_ops ops = {r_put, r_get, r_info, r_close, r_destroy, r_wire_id};

tr_blob *qr_blob(uint64_t id) {
  tr_blob *b = idmap_get(&handles, id);
  if (b) {
    tr_blob_ref(b);
  } else {
    if (!(b = tr_blob_new_obj(&queueobj_remote_kind, sizeof(qr_obj)))) return NULL;
    obj(b)->ops = &ops;
    obj(b)->qid = id;
    if (!idmap_put(&handles, id, b)) {
      tr_blob_unref(b);   /* its QDROP counts nothing */
      return NULL;
    }
  }
  obj(b)->received++;
  return b;
}

int qr_msg_ok(const tr_msg *m) {
  for (int i = 0; i < m->nblobs; i++)
    if (m->blobs[i]->kind && m->blobs[i]->kind != &queueobj_remote_kind && !m->blobs[i]->kind->wire_slots)
      return 0;   /* a queue of this process: only arrays in the ring may cross too */
  return 1;
}

void qr_open(const qr_chan *c) { chan = c; }

void qr_close(void) { chan = NULL; }

void qr_end(void) { idmap_free(&handles); memset(&handles, 0, sizeof handles); }
