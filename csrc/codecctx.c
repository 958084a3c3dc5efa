/* The codec's per-state context: one registry table, found by the address
 * of k_ctx (no string to intern on every call), whose slots (CTX_* in
 * codec.h) hold the caches of code blobs and names and the reusable
 * bookkeeping tables of the encoder and decoder.  A state's context is
 * touched only by the thread that owns the state, so nothing here locks.
 *
 * Every message looks its context up, and a light userdata key is a walk
 * along the registry's hash part.  So each thread remembers the last state
 * it found one for: by its registry's address, which names the state while
 * it lives, and by the count of contexts closed so far, which tells it
 * from a later state at the same address.  A hit reads the context at its
 * luaL_ref, in the registry's array part.  The context's anchor (a
 * userdata in CTX_ANCHOR) holds that ref and the context's C memory; its
 * __gc, run as the state closes, counts one more closed context. */
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include "lauxlib.h"
#include "arraypart.h"
#include "codec.h"
#include "proto.h"

static const char k_ctx;

typedef struct anchor {
  int ref;      /* the context's luaL_ref in the registry */
  int closed;   /* finalized: its state is closing, so not to be remembered */
} anchor;
#define ANCHOR_MT "futures.ctxanchor"
/* cx_front's memory: after the anchor, aligned as a userdata is. */
#define FRONT_AT ((sizeof(anchor) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))

static atomic_ullong nclosed;   /* contexts finalized, in any thread: never wraps */

typedef struct remembered {
  const void *registry;   /* of the state remembered; NULL for none */
  const void *ctx;        /* its context table */
  anchor *a;              /* and its anchor */
  unsigned long long nclosed;   /* nclosed when it was remembered */
} remembered;
/* Initial-exec: see task.c. */
static _Thread_local remembered last __attribute__((tls_model("initial-exec")));

static int anchor_gc(lua_State *L) {
  anchor *a = luaL_checkudata(L, 1, ANCHOR_MT);
  a->closed = 1;
  atomic_fetch_add(&nclosed, 1);
  return 0;
}

/* Whether the state remembered is still alive (and so its addresses its). */
static int last_alive(void) {
  return last.nclosed == atomic_load_explicit(&nclosed, memory_order_relaxed);
}

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

/* With the context under construction at ctx: its anchor and its ref. */
static void anchor_ctx(lua_State *L, int ctx) {
  anchor *a = lua_newuserdatauv(L, FRONT_AT + CX_FRONT_BYTES, 0);
  a->ref = LUA_NOREF;
  a->closed = 0;
  memset((char *)a + FRONT_AT, 0, CX_FRONT_BYTES);
  if (luaL_newmetatable(L, ANCHOR_MT)) {
    lua_pushcfunction(L, anchor_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawseti(L, ctx, CTX_ANCHOR);
  lua_pushvalue(L, ctx);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void make_ctx(lua_State *L) {
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
  anchor_ctx(L, ctx);
  lua_pushvalue(L, ctx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &k_ctx);
}

static anchor *anchor_of(lua_State *L, int ctx) {
  lua_rawgeti(L, ctx, CTX_ANCHOR);
  anchor *a = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return a;
}

/* cx_push's way when the state is not the one remembered: the lookup by
 * k_ctx, then the state is remembered (unless it is closing). */
static void find_ctx(lua_State *L, const void *reg) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &k_ctx) != LUA_TTABLE) {
    lua_pop(L, 1);
    make_ctx(L);
  }
  unsigned long long n = atomic_load_explicit(&nclosed, memory_order_relaxed);
  anchor *a = anchor_of(L, lua_gettop(L));
  if (a->closed) return;
  last.registry = reg;
  last.ctx = lua_topointer(L, -1);
  last.a = a;
  last.nclosed = n;
}

/* Pushes the context, made on first use. */
void cx_push(lua_State *L) {
  const void *reg = lua_topointer(L, LUA_REGISTRYINDEX);
  if (reg == last.registry && last_alive()) lua_rawgeti(L, LUA_REGISTRYINDEX, last.a->ref);
  else find_ctx(L, reg);
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
  cx_push(L);
  lua_pop(L, 1);
}

void *cx_front(lua_State *L, int ctx) {
  anchor *a = lua_topointer(L, ctx) == last.ctx && last_alive() ? last.a : anchor_of(L, ctx);
  return (char *)a + FRONT_AT;
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
  if (!*has) { cx_push(L); lua_replace(L, idx); *has = 1; }
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
