/* Code blobs: the bytecode of a Lua function, dumped once by the sender
 * and loaded by the receiver.  Code never sits in a message's bytes: a
 * function names a blob (shared, refcounted, see msg.h) in the message's
 * attachment list, so a function sent to many calls is dumped once and its
 * code copied never.
 *
 * Senders cache the blob per prototype where proto.c allows (so the new
 * closure that `function` makes on every run of a loop costs what sending
 * one function again costs: a compare in a C slot), else per closure
 * (weak keys: it goes with the closure), and per dump content (weak
 * values: one function defined again shares a blob).  A prototype's
 * address names it only while it lives, so a prototype entry holds a
 * keeper (proto.h), which holds the prototype and nothing the sent
 * function's upvalues hold.
 *
 * Receivers cache per blob id: the loaded closure itself when the function
 * has no upvalue but _ENV (it can be shared: nothing of it differs between
 * calls), and otherwise a factory of fresh closures (proto.c), so that a
 * function with upvalues is loaded once, not once per call.  A fresh
 * closure whose code cannot change its upvalues and whose upvalues are
 * scalars is kept too, and given again while calls bring equal values
 * (fn_kept): making a closure costs more than comparing a few values.
 * Bytecode is only ever loaded in binary mode, from blobs. */
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "codec.h"
#include "proto.h"


static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  tr_msg *m = ud;
  if (!msg_reserve(m, sz)) return 1;
  msg_put(m, p, sz);
  return 0;
}

/* The sender's prototype cache: prototype address -> a box of the blob
 * whose user value is a keeper (proto.h), bounded, in CTX_PROTOBLOB; the
 * keeper holds the prototype, so its address names it while the entry
 * lives.  In front of it, a few slots in the context's C memory
 * (cx_front), so that a hit costs no table lookup; they borrow the
 * entries' blobs and are wiped with the table. */
typedef struct { const void *p; tr_blob *b; } front_slot;
#define FRONT_SLOTS (CX_FRONT_BYTES / sizeof(front_slot))
_Static_assert((FRONT_SLOTS & (FRONT_SLOTS - 1)) == 0, "FRONT_SLOTS: a power of 2");

static front_slot *front_slots(lua_State *L, int ctx) { return cx_front(L, ctx); }

static front_slot *front_slot_of(front_slot *s, const void *p) {
  uintptr_t a = (uintptr_t)p;
  return &s[((a >> 4) ^ (a >> 10)) & (FRONT_SLOTS - 1)];
}

/* The blob of prototype p from the table, or NULL. */
static tr_blob *proto_get(lua_State *L, int ctx, const void *p) {
  tr_blob *b = NULL;
  lua_rawgeti(L, ctx, CTX_PROTOBLOB);
  if (lua_rawgetp(L, -1, p) == LUA_TUSERDATA) b = *(tr_blob **)lua_touserdata(L, -1);
  lua_pop(L, 2);
  return b;
}

/* Enters blob b for prototype p of the closure at idx; 0 if proto.c
 * makes no keeper for it. */
static int proto_put(lua_State *L, int ctx, int idx, const void *p, tr_blob *b) {
  if (!pr_keeper(L, idx)) return 0;
  tr_blob **bp = lua_newuserdatauv(L, sizeof *bp, 1);
  *bp = NULL;
  luaL_setmetatable(L, BLOB_MT);
  tr_blob_ref(b);
  *bp = b;
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  if (cx_cache_room(L, ctx, CTX_PROTOBLOB))   /* emptied: the front goes too */
    memset(front_slots(L, ctx), 0, FRONT_SLOTS * sizeof(front_slot));
  lua_insert(L, -2);
  lua_rawsetp(L, -2, p);
  lua_pop(L, 1);
  return 1;
}

/* Pushes the blob box of the dump of the function at idx (one per dump
 * content) and returns the blob. */
static tr_blob *dump_blob(lua_State *L, int ctx, int idx) {
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
  lua_replace(L, -3);
  lua_pop(L, 1);
  return *(tr_blob **)lua_touserdata(L, -1);
}

tr_blob *fn_blob(lua_State *L, int ctx, int idx) {
  idx = lua_absindex(L, idx);
  /* By prototype: a function sent again and a new closure of known code
   * (`function` in a loop) cost the same, one slot's compare. */
  const void *p = pr_proto(L, idx);
  front_slot *s = NULL;
  if (p) {
    s = front_slot_of(front_slots(L, ctx), p);
    if (s->p == p) return s->b;
    tr_blob *b = proto_get(L, ctx, p);
    if (b) { s->p = p; s->b = b; return b; }
  }
  /* Else by closure, where proto.c cannot help: one lookup. */
  lua_rawgeti(L, ctx, CTX_FNCACHE);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    tr_blob *b = *(tr_blob **)lua_touserdata(L, -1);
    lua_pop(L, 2);
    return b;
  }
  lua_pop(L, 1);
  tr_blob *b = dump_blob(L, ctx, idx);   /* stack: fncache, box */
  if (p && proto_put(L, ctx, idx, p, b)) {
    s->p = p;   /* after proto_put: a wipe there spares it */
    s->b = b;
  } else {
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_pop(L, 2);
  return b;
}

int fn_nups(lua_State *L, int idx) {
  int n = pr_nups(L, idx);
  if (n < 0) {
    lua_Debug ar;
    lua_pushvalue(L, idx);
    lua_getinfo(L, ">u", &ar);
    n = ar.nups;
  }
  return n;
}

/* Pushes t[id] of the bounded per-id cache in ctx slot `slot` and
 * returns its type; pushes nothing for nil. */
static int cache_get(lua_State *L, int ctx, int slot, uint64_t id) {
  lua_rawgeti(L, ctx, slot);
  int t = lua_rawgeti(L, -1, (lua_Integer)id);
  if (t == LUA_TNIL) lua_pop(L, 2);
  else lua_remove(L, -2);
  return t;
}

static int load_blob(lua_State *L, const tr_blob *b, char *err) {
  if (luaL_loadbufferx(L, b->code, b->len, "=(transferred function)", "b") == LUA_OK) return 1;
  snprintf(err, TR_ERRLEN, "malformed message: bad function code (%.120s)",
           lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
  lua_pop(L, 1);
  return 0;
}

int fn_load(lua_State *L, int ctx, const tr_blob *b, char *err) {
  if (cache_get(L, ctx, CTX_LOADCACHE, b->id) != LUA_TNIL) return 1;
  if (!load_blob(L, b, err)) return 0;
  cx_cache_put(L, ctx, CTX_LOADCACHE, b->id);
  return 1;
}

/* Per blob id, CTX_FACTORY holds the factory, or, for code that cannot
 * change its upvalues, an entry: [1] the factory, [2] the kept closure,
 * [3] how often a kept one was not the same.  Values that keep changing
 * turn the entry back into the factory. */
#define KEEP_MISSES 8

int fn_entry(lua_State *L, int ctx, const tr_blob *b, char *err) {
  if (!pr_enabled()) return load_blob(L, b, err) ? 2 : 0;
  switch (cache_get(L, ctx, CTX_FACTORY, b->id)) {
    case LUA_TTABLE: return 1;
    case LUA_TNIL: break;
    default: lua_call(L, 0, 1); return 2;
  }
  if (!load_blob(L, b, err)) return 0;
  if (!pr_factory(L, -1)) return 2;   /* none for this one: the loaded closure */
  int pure = pr_pure(L, -2);
  lua_remove(L, -2);
  if (pure) {
    lua_createtable(L, 3, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
  }
  cx_cache_put(L, ctx, CTX_FACTORY, b->id);
  if (pure) return 1;
  lua_call(L, 0, 1);
  return 2;
}

int fn_kept(lua_State *L, int e) {
  if (lua_rawgeti(L, e, 2) == LUA_TFUNCTION) return 1;
  lua_pop(L, 1);
  return 0;
}

void fn_fresh(lua_State *L, int e) {
  lua_rawgeti(L, e, 1);
  lua_call(L, 0, 1);
}

void fn_keep(lua_State *L, int ctx, const tr_blob *b, int e, int f, int missed) {
  if (missed) {
    lua_rawgeti(L, e, 3);
    lua_Integer n = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    if (n >= KEEP_MISSES) {   /* the entry gives way to its factory */
      lua_rawgeti(L, ctx, CTX_FACTORY);
      lua_rawgeti(L, e, 1);
      lua_rawseti(L, -2, (lua_Integer)b->id);
      lua_pop(L, 1);
      return;
    }
    lua_pushinteger(L, n);
    lua_rawseti(L, e, 3);
  }
  lua_pushvalue(L, f);
  lua_rawseti(L, e, 2);
}
