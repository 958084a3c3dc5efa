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
 */
#include <stdatomic.h>
#include <stdint.h>
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

static atomic_int verified;   /* 0 not yet, 1 layout matches, -1 it does not */
static atomic_int enabled;

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

void ap_check(lua_State *L) {
  if (atomic_load(&verified)) return;
  luaL_checkstack(L, 4, NULL);
  int ok = lua_version(L) == 504 && sizeof(lua_Number) == 8 && sizeof(lua_Integer) == 8
        && layout_matches(L);
  atomic_store(&enabled, ok);
  atomic_store(&verified, ok ? 1 : -1);
}

void ap_enable(int on) {
  atomic_store(&enabled, on && atomic_load(&verified) == 1);
}

int ap_enabled(void) { return atomic_load(&enabled); }

ap_slot *ap_array(lua_State *L, int idx, size_t *len) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return NULL;
  ap_table *t = table_at(L, idx);
  *len = t->alimit;
  return t->array;
}
