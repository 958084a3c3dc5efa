/* Entry points for the specs: _roundtrip copies values into a private
 * state and back, the way a task's values travel; _encode_call compares
 * the encoder with its short cut for a call; _direct_arrays turns
 * the codec's direct access to array parts off and on, _adopt_arrays its
 * handing of whole array parts between threads, _proto_cache its use of
 * prototypes, and _queue_fast a queue's short cuts, so that specs run
 * both paths. */
#include <stdio.h>
#include <stdlib.h>
#include "lauxlib.h"
#include "arraypart.h"
#include "callenc.h"
#include "luax.h"
#include "queue.h"
#include "queueobj.h"
#include "slab.h"
#include "slabring.h"
#include "proto.h"
#include "testhooks.h"
#include "transfer.h"
#include "workerstate.h"

static const luax_class msgbox_class = {"futures.msgbox", NULL};

static int msgbox_gc(lua_State *L) {
  msg_free(luax_checkudata(L, 1, &msgbox_class));
  return 0;
}

static tr_msg *push_msgbox(lua_State *L) {
  tr_msg *m = lua_newuserdatauv(L, sizeof *m, 0);
  msg_init(m);
  luax_setclass(L, &msgbox_class);
  return m;
}

typedef struct roundtrip { tr_msg *m; char *err; int ok; } roundtrip;

static int roundtrip_there(lua_State *W) {   /* runs protected in W */
  roundtrip *r = lua_touserdata(W, 1);
  size_t pos = 0;
  int got = tr_decode(W, r->m, &pos, 1, r->err);
  if (got < 0) return 0;
  msg_free(r->m);
  tr_opts o = {1, "value #%d", 0, &slab_local};
  r->ok = tr_encode(W, 2, got, r->m, &o, r->err);
  return 0;
}

static int l_roundtrip(lua_State *L) {
  int n = lua_gettop(L);
  char err[TR_ERRLEN];
  tr_opts o = {1, "argument #%d", 0, &slab_local};
  tr_msg *m = push_msgbox(L);   /* anchored at 1 */
  lua_insert(L, 1);
  if (!tr_encode(L, 2, n, m, &o, err)) return luax_error(L, LUAX_TRANSFER, err);
  char *path = ws_package_field(L, "path"), *cpath = ws_package_field(L, "cpath");
  ws_config cfg = {path, cpath, "roundtrip"};
  lua_State *W = ws_new(&cfg, err, sizeof err);
  free(path);
  free(cpath);
  if (!W) return luaL_error(L, "%s", err);
  roundtrip r = {m, err, 0};
  lua_pushcfunction(W, roundtrip_there);
  lua_pushlightuserdata(W, &r);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK) snprintf(err, TR_ERRLEN, "%s", lua_tostring(W, -1));
  lua_close(W);
  if (!r.ok) return luax_error(L, LUAX_TRANSFER, err);
  lua_settop(L, 1);
  size_t pos = 0;
  int got = tr_decode(L, m, &pos, 1, err);
  if (got < 0) return luax_error(L, LUAX_TRANSFER, err);
  return got;
}

/* _encode_call(fn, ...) -> the bytes tr_encode writes for its arguments,
 * those its short cut for a call writes (tr_encode_call) or false if it
 * takes none, and whether both name the same blobs. */
static int l_encode_call(lua_State *L) {
  int n = lua_gettop(L);
  char err[TR_ERRLEN];
  tr_opts o = {1, "argument #%d", 1, NULL};
  tr_msg *full = push_msgbox(L), *fast = push_msgbox(L);
  if (!tr_encode(L, 1, n, full, &o, err)) return luax_error(L, LUAX_TRANSFER, err);
  int took = tr_encode_call(L, 1, n, fast);
  lua_pushlstring(L, (const char *)full->data, full->len);
  if (took) lua_pushlstring(L, (const char *)fast->data, fast->len);
  else lua_pushboolean(L, 0);
  int same = full->nblobs == fast->nblobs;
  for (int i = 0; same && i < full->nblobs; i++) same = full->blobs[i] == fast->blobs[i];
  lua_pushboolean(L, took && same);
  return 3;
}

/* _live_queues() -> how many queues the process holds (a leak check). */
static int l_live_queues(lua_State *L) {
  lua_pushinteger(L, queue_live());
  return 1;
}

/* _direct_arrays(on) turns direct access to array parts off or back on
 * for this process; returns whether it is on. */
static int l_direct_arrays(lua_State *L) {
  if (!lua_isnone(L, 1)) ap_enable(lua_toboolean(L, 1));
  lua_pushboolean(L, ap_enabled());
  return 1;
}

/* _adopt_arrays(on) turns off or back on, for this process, a state's
 * taking a slab's block as its table's array part (the copy then); returns
 * whether it is on. */
static int l_adopt_arrays(lua_State *L) {
  if (!lua_isnone(L, 1)) ap_adopt_enable(lua_toboolean(L, 1));
  lua_pushboolean(L, ap_adopt_enabled());
  return 1;
}

/* _result_ring(on, bytes) turns off or back on, for worker processes
 * started from now on, the ring their results' big arrays take
 * (slabring.h), and sets its size (bytes of slots; nil: leave it);
 * without it they are encoded as values.  Returns whether it is on, how
 * many arrays came through rings so far, and the size. */
static int l_result_ring(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) ring_enable(lua_toboolean(L, 1));
  uint64_t size = ring_set_size((uint64_t)luaL_optinteger(L, 2, 0));
  lua_pushboolean(L, ring_enabled());
  lua_pushinteger(L, (lua_Integer)ring_taken());
  lua_pushinteger(L, (lua_Integer)size);
  return 3;
}

/* _proto_cache(on) turns the codec's use of prototypes (one blob per
 * prototype on the sender, closure factories on the receiver) off or
 * back on for this process; returns whether it is on. */
static int l_proto_cache(lua_State *L) {
  if (!lua_isnone(L, 1)) pr_enable(lua_toboolean(L, 1));
  lua_pushboolean(L, pr_enabled());
  return 1;
}

/* _queue_fast(on) turns a queue's short cuts off or back on for this
 * process: scalars through the codec's shortcut (tr_encode_scalar) and
 * spinning before a blocking wait; returns whether they are on.  A
 * submitted call's short cut (tr_encode_call) goes with the first. */
static int l_queue_fast(lua_State *L) {
  if (!lua_isnone(L, 1)) {
    tr_scalar_enable(lua_toboolean(L, 1));
    queueobj_spin_enable(lua_toboolean(L, 1));
  }
  lua_pushboolean(L, tr_scalar_enabled());
  return 1;
}

void testhooks_open(lua_State *L) {
  if (luax_newclass(L, &msgbox_class)) {
    lua_pushcfunction(L, msgbox_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {
    {"_roundtrip", l_roundtrip},
    {"_encode_call", l_encode_call},
    {"_direct_arrays", l_direct_arrays},
    {"_adopt_arrays", l_adopt_arrays},
    {"_result_ring", l_result_ring},
    {"_live_queues", l_live_queues},
    {"_proto_cache", l_proto_cache},
    {"_queue_fast", l_queue_fast},
    {NULL, NULL}
  };
  luaL_setfuncs(L, funcs, 0);
}
