/* Code blobs: the bytecode of a Lua function, dumped once by the sender
 * and loaded by the receiver.  Code never sits in a message's bytes: a
 * function names a blob (shared, refcounted, see msg.h) in the message's
 * attachment list, so a function sent to many calls is dumped once and its
 * code copied never.
 *
 * Senders cache the blob per closure (weak keys: it goes with the closure)
 * and per dump content (weak values: two closures of one prototype, or one
 * function defined again, share a blob), so a function sent again costs a
 * table lookup.  Receivers cache the loaded closure per blob id when the
 * function has no upvalue but _ENV (it can then be shared: nothing of it
 * differs between calls), and otherwise load a fresh closure from the blob.
 * Bytecode is only ever loaded in binary mode, from blobs. */
#include <stdio.h>
#include "lauxlib.h"
#include "codec.h"

#define LOADCACHE_MAX 1024

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  tr_msg *m = ud;
  if (!msg_reserve(m, sz)) return 1;
  msg_put(m, p, sz);
  return 0;
}

tr_blob *fn_blob(lua_State *L, int ctx, int idx) {
  lua_rawgeti(L, ctx, CTX_FNCACHE);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    tr_blob *b = *(tr_blob **)lua_touserdata(L, -1);
    lua_pop(L, 2);
    return b;
  }
  lua_pop(L, 1);
  tr_msg dump;
  msg_init(&dump);
  lua_pushvalue(L, idx);
  int bad = lua_dump(L, dump_writer, &dump, 0);
  lua_pop(L, 1);
  if (bad) { msg_free(&dump); luaL_error(L, "not enough memory"); }
  lua_pushlstring(L, (const char *)dump.data, dump.len);
  msg_free(&dump);
  lua_rawgeti(L, ctx, CTX_CODECACHE);
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -2) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    tr_blob **bp = lua_newuserdatauv(L, sizeof *bp, 0);
    *bp = NULL;
    luaL_setmetatable(L, BLOB_MT);
    size_t len;
    const char *code = lua_tolstring(L, -3, &len);
    if (!(*bp = tr_blob_new(code, len))) luaL_error(L, "not enough memory");
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  /* stack: fncache, dump, codecache, box */
  lua_pushvalue(L, idx);
  lua_pushvalue(L, -2);
  lua_rawset(L, -6);
  tr_blob *b = *(tr_blob **)lua_touserdata(L, -1);
  lua_pop(L, 4);
  return b;
}

int fn_load(lua_State *L, int ctx, const tr_blob *b, char *err) {
  if (ctx) {
    lua_rawgeti(L, ctx, CTX_LOADCACHE);
    if (lua_rawgeti(L, -1, (lua_Integer)b->id) == LUA_TFUNCTION) {
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 1);
  }
  if (luaL_loadbufferx(L, b->code, b->len, "=(transferred function)", "b") != LUA_OK) {
    snprintf(err, TR_ERRLEN, "malformed message: bad function code (%.120s)",
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    lua_pop(L, ctx ? 2 : 1);
    return 0;
  }
  if (ctx) {
    /* The cache is a plain table of bounded size: dropped when full. */
    lua_getfield(L, -2, "n");
    lua_Integer count = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    if (count > LOADCACHE_MAX) {
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawseti(L, ctx, CTX_LOADCACHE);
      lua_replace(L, -3);
      count = 1;
    }
    lua_pushinteger(L, count);
    lua_setfield(L, -3, "n");
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, (lua_Integer)b->id);
    lua_remove(L, -2);
  }
  return 1;
}
