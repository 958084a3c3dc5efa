/* Direct access to the array part of a Lua 5.4 table.
 *
 * Copying a table of 50,000 numbers through the public API costs a few
 * calls per element on each side (lua_rawgeti, lua_isinteger, lua_tonumber,
 * lua_settop; lua_pushnumber, lua_rawseti), four to five times what a
 * worker takes to build the table, and the owner of a pool pays the decode
 * half alone.  Read and written in place, the same copy is a loop over
 * 16-byte slots.
 *
 * The layout is Lua 5.4's own (lobject.h: struct Table and TValue), the
 * same in every 5.4 release, but no header promises it, so ap_check tries
 * it on real tables before anything uses it: an array of numbers,
 * booleans and an empty slot with a metatable, a table with a hash part,
 * writes read back through the API.
 * Any mismatch (another Lua, a patched or 32-bit build) leaves direct
 * access off and the codec on the public API, only slower.  Only numbers,
 * booleans and nils are read or written this way: they are not
 * collectable, so no write barrier is owed to the collector.
 *
 * Adoption goes one step further: a block of slots from malloc becomes a
 * table's array part, so a big result that a thread worker copied out
 * costs its receiver no copy and no fresh memory of its own to fault in.
 * That needs two more facts of Lua 5.4's layout (lstate.h: the global
 * state each lua_State points at starts with the allocator and the
 * collector's allocation counters), checked the same way, on a private
 * state, by adopting a block and growing it.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include "lauxlib.h"
#include "arraypart.h"

typedef struct ap_table {   /* struct Table of Lua 5.4 */
  void *next;
  unsigned char tt, marked, flags, lsizenode;
  unsigned int alimit;      /* never more than the array's real size */
  ap_slot *array;
  void *node;
  void *lastfree;           /* NULL: no hash part */
  void *metatable;
  void *gclist;
} ap_table;

typedef struct ap_global {   /* the first fields of global_State */
  lua_Alloc frealloc;
  void *ud;
  ptrdiff_t totalbytes;     /* l_mem: bytes allocated - GCdebt */
  ptrdiff_t GCdebt;         /* what every allocation adds to */
} ap_global;

typedef struct ap_state {    /* the first fields of struct lua_State */
  void *next;
  unsigned char tt, marked, status, allowhook;
  unsigned short nci;
  void *top;
  ap_global *l_G;
} ap_state;

#define AP_BITRAS 0x80      /* Table.flags: alimit is not the real size */

static atomic_int verified;   /* 0 not yet, -1 layout differs, 1 matches, 2 and adoption works */
static atomic_int enabled;
static _Atomic(lua_Alloc) std_alloc;   /* lauxlib's; set before adopting is on */
static atomic_int adopting;

static ap_table *table_at(lua_State *L, int idx) {
  return (ap_table *)(uintptr_t)lua_topointer(L, idx);
}

#if LUA_VERSION_NUM == 504
static int layout_matches(lua_State *L) {
  lua_createtable(L, 5, 0);
  lua_pushnumber(L, 1.25);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, -7);
  lua_rawseti(L, -2, 2);
  lua_pushboolean(L, 1);
  lua_rawseti(L, -2, 3);
  lua_pushboolean(L, 0);
  lua_rawseti(L, -2, 4);   /* and [5] stays empty */
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "k");
  lua_pushvalue(L, -1);
  lua_setmetatable(L, -3);
  ap_table *a = table_at(L, -2), *h = table_at(L, -1);
  int ok = a->tt == LUA_TTABLE && h->tt == LUA_TTABLE
        && a->alimit == 5 && a->lastfree == NULL && a->metatable == h
        && a->array != NULL && (uintptr_t)a->array % sizeof(void *) == 0
        && h->alimit == 0 && h->lsizenode == 0 && h->lastfree != NULL
        && h->metatable == NULL;
  ok = ok && a->array[0].tt == AP_FLT && a->array[0].v.n == 1.25
          && a->array[1].tt == AP_INT && a->array[1].v.i == -7
          && a->array[2].tt == AP_TRUE && a->array[3].tt == AP_FALSE
          && AP_ISNIL(a->array[4].tt);
  if (ok) {   /* writes must read back as what they are */
    a->array[0].v.i = 42;
    a->array[0].tt = AP_INT;
    a->array[1].tt = AP_FALSE;
    lua_rawgeti(L, -2, 1);
    lua_rawgeti(L, -3, 2);
    ok = lua_isinteger(L, -2) && lua_tointeger(L, -2) == 42 && lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
  return ok;
}
#else
static int layout_matches(lua_State *L) { return 0; }
#endif

static ap_global *global_of(lua_State *L) { return ((ap_state *)(void *)L)->l_G; }

static ptrdiff_t counted(lua_State *L) {
  return (ptrdiff_t)lua_gc(L, LUA_GCCOUNT) * 1024 + lua_gc(L, LUA_GCCOUNTB);
}

static void install(lua_State *L, ap_table *t, ap_slot *slots, size_t n) {
  t->array = slots;
  t->alimit = (unsigned int)n;
  t->flags &= (unsigned char)~AP_BITRAS;
  global_of(L)->GCdebt += (ptrdiff_t)(n * sizeof *slots);
}

/* On a state of its own (the collector stopped, so counts only move by
 * what the check allocates): the global state is where this layout says,
 * an adopted block counts as allocated, reads back, grows by realloc, and
 * lua_close frees it. */
static int adoption_works(void) {
  lua_State *S = luaL_newstate();
  if (!S) return 0;
  void *ud;
  lua_Alloc f = lua_getallocf(S, &ud);
  lua_gc(S, LUA_GCSTOP);
  ap_global *g = global_of(S);
  int ok = ud == NULL && g && g->frealloc == f && g->ud == NULL
        && g->totalbytes + g->GCdebt == counted(S);
  ap_slot *s = ok ? malloc(3 * sizeof *s) : NULL;
  if (s) {
    lua_createtable(S, 0, 0);
    ptrdiff_t before = counted(S);
    ap_table *t = table_at(S, -1);
    if (t->array == NULL && t->alimit == 0) {
      s[0].v.n = 0.5, s[0].tt = AP_FLT;
      s[1].v.i = 7, s[1].tt = AP_INT;
      s[2].tt = AP_TRUE;
      install(S, t, s, 3);
      ok = counted(S) - before == (ptrdiff_t)(3 * sizeof *s) && g->totalbytes + g->GCdebt == counted(S);
      lua_pushboolean(S, 0);
      lua_rawseti(S, -2, 4);   /* grows the block with realloc */
      lua_rawgeti(S, -1, 1);
      lua_rawgeti(S, -2, 2);
      lua_rawgeti(S, -3, 3);
      ok = ok && lua_rawlen(S, -4) == 4 && lua_tonumber(S, -3) == 0.5 && lua_isinteger(S, -2)
              && lua_tointeger(S, -2) == 7 && lua_toboolean(S, -1);
    } else {
      free(s);
      ok = 0;
    }
  } else {
    ok = 0;
  }
  lua_close(S);
  if (ok) atomic_store(&std_alloc, f);
  return ok;
}

void ap_check(lua_State *L) {
  if (atomic_load(&verified)) return;
  luaL_checkstack(L, 4, NULL);
  int ok = lua_version(L) == 504 && sizeof(lua_Number) == 8 && sizeof(lua_Integer) == 8
        && layout_matches(L);
  int adopt = ok && adoption_works();
  atomic_store(&adopting, adopt);
  atomic_store(&enabled, ok);
  atomic_store(&verified, ok ? 1 + adopt : -1);
}

void ap_enable(int on) {
  atomic_store(&enabled, on && atomic_load(&verified) >= 1);
}

int ap_enabled(void) { return atomic_load(&enabled); }

void ap_adopt_enable(int on) {
  atomic_store(&adopting, on && atomic_load(&verified) == 2);
}

int ap_adopt_enabled(void) { return atomic_load(&adopting); }

int ap_adopts(lua_State *L) {
  void *ud;
  return atomic_load_explicit(&adopting, memory_order_acquire) && atomic_load(&enabled)
      && lua_getallocf(L, &ud) == atomic_load_explicit(&std_alloc, memory_order_relaxed) && ud == NULL;
}

void ap_adopt(lua_State *L, int idx, ap_slot *slots, size_t n) {
  install(L, table_at(L, idx), slots, n);
}

ap_slot *ap_array(lua_State *L, int idx, size_t *len) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return NULL;
  ap_table *t = table_at(L, idx);
  *len = t->alimit;
  return t->array;
}
