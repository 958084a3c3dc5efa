/* The codec's per-state context: one registry table, found by the address
 * of k_ctx (no string to intern on every call), whose slots (CTX_* in
 * codec.h) hold the caches of code blobs and names and the reusable
 * bookkeeping tables of the encoder and decoder.  A state's context is
 * touched only by the thread that owns the state, so nothing here locks. */
#include "lauxlib.h"
#include "arraypart.h"
#include "codec.h"
#include "proto.h"

static const char k_ctx;

static int blob_gc(lua_State *L) {
  tr_blob **bp = luaL_checkudata(L, 1, BLOB_MT);
  tr_blob_unref(*bp);
  *bp = NULL;
  return 0;
}

static void weak_table(lua_State *L, int ctx, int slot, const char *mode) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, ctx, slot);
}

/* Pushes the context, made on first use. */
static void push_ctx(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &k_ctx) == LUA_TTABLE) return;
  lua_pop(L, 1);
  luaL_checkstack(L, 4, NULL);
  lua_createtable(L, CTX_SLOTS, 0);
  int ctx = lua_gettop(L);
  for (int i = 1; i <= CTX_SLOTS; i++) { lua_pushboolean(L, 0); lua_rawseti(L, ctx, i); }
  weak_table(L, ctx, CTX_FNCACHE, "k");
  weak_table(L, ctx, CTX_CODECACHE, "v");
  lua_newtable(L);
  lua_rawseti(L, ctx, CTX_LOADCACHE);
  lua_newtable(L);
  lua_rawseti(L, ctx, CTX_PROTOBLOB);
  lua_newtable(L);
  lua_rawseti(L, ctx, CTX_FACTORY);
  weak_table(L, ctx, CTX_CONSTS, "k");
  weak_table(L, ctx, CTX_CONSTBYID, "v");
  lua_newtable(L);
  lua_rawseti(L, ctx, CTX_CONSTCACHE);
  lua_pushvalue(L, ctx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &k_ctx);
}

void tr_open(lua_State *L) {
  ap_check(L);
  pr_check(L);
  if (luaL_newmetatable(L, BLOB_MT)) {
    lua_pushcfunction(L, blob_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  cs_open(L);
  push_ctx(L);
  lua_pop(L, 1);
}

void cx_push_blob(lua_State *L, tr_blob *b) {
  tr_blob **bp = lua_newuserdatauv(L, sizeof *bp, 0);
  *bp = NULL;
  luaL_setmetatable(L, BLOB_MT);
  tr_blob_ref(b);
  *bp = b;
}

#define CACHE_MAX 1024

int cx_cache_room(lua_State *L, int ctx, int slot) {
  lua_rawgeti(L, ctx, slot);
  lua_getfield(L, -1, "n");
  lua_Integer count = lua_tointeger(L, -1) + 1;
  lua_pop(L, 1);
  int dropped = count > CACHE_MAX;
  if (dropped) {   /* a plain bounded cache: dropped when full */
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, ctx, slot);
    count = 1;
  }
  lua_pushinteger(L, count);
  lua_setfield(L, -2, "n");
  return dropped;
}

void cx_cache_put(lua_State *L, int ctx, int slot, uint64_t id) {
  cx_cache_room(L, ctx, slot);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, (lua_Integer)id);
  lua_pop(L, 1);
}

int cx_in_slot(lua_State *L, int idx, int *has) {
  if (!*has) { push_ctx(L); lua_replace(L, idx); *has = 1; }
  return idx;
}

/* The encoder's and decoder's bookkeeping tables are reused per state,
 * and only made when a message needs them (a call of one function and a
 * few numbers needs one, its result none).  A call takes one out of its
 * context slot (so an error midway leaves no dirty table behind, the next
 * call just makes a new one) and gives it back emptied.  A big one is left
 * to the collector instead. */
#define SCRATCH_MAX 256

void cx_scratch_take(lua_State *L, int ctx, int slot) {
  if (lua_rawgeti(L, ctx, slot) == LUA_TTABLE) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, ctx, slot);
  } else {
    lua_pop(L, 1);
    lua_createtable(L, 4, 4);
  }
}

void cx_scratch_give(lua_State *L, int ctx, int slot, int idx, int n, int array) {
  if (n > SCRATCH_MAX) return;
  if (array) {
    for (int i = 1; i <= n; i++) { lua_pushnil(L); lua_rawseti(L, idx, i); }
  } else {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, idx);
    }
  }
  lua_pushvalue(L, idx);
  lua_rawseti(L, ctx, slot);
}
