/* The Lua face of waiting on many futures: core.wait (futures.wait),
 * core.waiter (the state of an as_completed loop, a userdata whose __gc
 * and __close unlink it) and core.poll.  The waiting itself is waiter.c's;
 * deduplication and argument checks are the Lua front's. */
#include "lauxlib.h"
#include "future.h"
#include "luax.h"
#include "waiter.h"
#include "wait.h"

static const luax_class waiter_class = {"futures.Waiter", NULL};

/* Reads a Lua sequence of Futures at idx; the array is anchored at the
 * stack top. */
static fut_t **collect(lua_State *L, int idx, int *n) {
  lua_Integer len = luaL_len(L, idx);
  luaL_argcheck(L, len < 100000000, idx, "too many futures");
  fut_t **fs = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *fs, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, idx, i);
    fs[i - 1] = future_check(L, -1);
    lua_pop(L, 1);
  }
  *n = (int)len;
  return fs;
}

/* core.wait(futures, deadline, mode) -> done, not_done (sequences, in input
 * order).  The futures stay referenced by the caller's table meanwhile. */
static int l_wait(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double deadline = luaL_optnumber(L, 2, -1);
  int mode = (int)luaL_optinteger(L, 3, ALL_COMPLETED);
  int n;
  fut_t **fs = collect(L, 1, &n);
  waiter_t w;
  if (!waiter_init(&w, owner_get(L), fs, n)) return luaL_error(L, "not enough memory");
  int rc = waiter_block(L, &w, mode, deadline);
  waiter_release(&w);
  if (rc == OWNER_INTERRUPTED) return owner_raise_interrupt(L);
  lua_createtable(L, n, 0);
  lua_createtable(L, 0, 0);
  lua_Integer nd = 0, nn = 0;
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    if (fut_done(atomic_load(&fs[i]->state))) lua_rawseti(L, -3, ++nd);
    else lua_rawseti(L, -2, ++nn);
  }
  return 2;
}

typedef struct iter_box { waiter_t w; int live; } iter_box;

static int iter_close(lua_State *L) {
  iter_box *b = luax_checkudata(L, 1, &waiter_class);
  if (b->live) { waiter_release(&b->w); owner_unref(b->w.owner); b->live = 0; }
  return 0;
}

/* waiter:next(deadline) -> index of the next completed future, or nil when
 * all were yielded; raises TimeoutError when the deadline passes first. */
static int iter_next(lua_State *L) {
  iter_box *b = luax_checkudata(L, 1, &waiter_class);
  double deadline = luaL_optnumber(L, 2, -1);
  if (!b->live) return 0;
  int i, rc = waiter_next(L, &b->w, deadline, &i);
  if (rc == OWNER_INTERRUPTED) { iter_close(L); return owner_raise_interrupt(L); }
  if (rc == OWNER_TIMEOUT) {
    lua_pushfstring(L, "%d (of %d) futures unfinished", b->w.n - b->w.qhead, b->w.n);
    iter_close(L);
    return luax_error(L, LUAX_TIMEOUT, lua_tostring(L, -1));
  }
  if (i < 0) { iter_close(L); return 0; }
  lua_pushinteger(L, i + 1);
  return 1;
}

/* core.waiter(futures) -> an as_completed iterator state. */
static int l_waiter(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n;
  fut_t **fs = collect(L, 1, &n);
  owner_t *o = owner_get(L);
  iter_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->live = 0;
  luax_setclass(L, &waiter_class);
  lua_pushvalue(L, 1);            /* keeps the futures alive */
  lua_setiuservalue(L, -2, 1);
  if (!waiter_init(&b->w, o, fs, n)) return luaL_error(L, "not enough memory");
  owner_ref(o);
  b->live = 1;
  return 1;
}

static int l_poll(lua_State *L) {
  lua_pushinteger(L, owner_run_jobs(L));
  return 1;
}

void wait_open(lua_State *L) {
  if (luax_newclass(L, &waiter_class)) {
    lua_pushcfunction(L, iter_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, iter_close);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, iter_next);
    lua_setfield(L, -2, "next");
    lua_pushcfunction(L, iter_close);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"wait", l_wait}, {"waiter", l_waiter}, {"poll", l_poll}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  lua_pushinteger(L, FIRST_COMPLETED);
  lua_setfield(L, -2, "FIRST_COMPLETED");
  lua_pushinteger(L, FIRST_EXCEPTION);
  lua_setfield(L, -2, "FIRST_EXCEPTION");
  lua_pushinteger(L, ALL_COMPLETED);
  lua_setfield(L, -2, "ALL_COMPLETED");
}
