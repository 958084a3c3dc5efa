/* The Lua face of waiting on many futures: core.wait (futures.wait),
 * core.waiter (the state of an as_completed loop) and core.poll.  The
 * waiting itself is waiter.c's; in a spawned coroutine each suspends it
 * instead (suspend.c) and continues here once woken.  Deduplication and
 * argument checks are the Lua front's. */
#include "lauxlib.h"
#include "clock.h"
#include "future.h"
#include "luax.h"
#include "suspend.h"
#include "waiter.h"
#include "wait.h"

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

/* done, not_done: the futures of the table at 1, split, in input order. */
static int split(lua_State *L, fut_t **fs, int n) {
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

/* core.wait(futures, deadline, mode) -> done, not_done.  The futures stay
 * referenced by the caller's table meanwhile.  Suspended: 4 holds the
 * array of futures, 5 the waiter. */
static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  int mode = (int)ctx, n;
  susp_t *s = susp_current(L);
  if (status == LUA_OK) {
    double deadline = luaL_optnumber(L, 2, -1);
    lua_settop(L, 3);
    fut_t **fs = collect(L, 1, &n);
    if (!s) {
      waiter_t w;
      if (!waiter_init(&w, owner_get(L), fs, n)) return luaL_error(L, "not enough memory");
      int rc = waiter_block(L, &w, mode, deadline);
      waiter_release(&w);
      if (rc == OWNER_INTERRUPTED) return owner_raise_interrupt(L);
      return split(L, fs, n);
    }
    waiter_push(L, fs, n, deadline);
  }
  fut_t **fs = lua_touserdata(L, 4);
  waiter_box *b = lua_touserdata(L, 5);
  n = b->w.n;
  if (waiter_holds(&b->w, mode) || (b->deadline >= 0 && clk_now() >= b->deadline)) {
    waiter_box_close(b);
    return split(L, fs, n);
  }
  waiter_set_wake(&b->w, susp_wake_job(s), mode);
  return susp_wait(L, s, b->deadline, ctx, wait_k);
}

static int l_wait(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  return wait_k(L, LUA_OK, (lua_KContext)luaL_optinteger(L, 3, ALL_COMPLETED));
}

/* waiter:next(deadline) -> index of the next completed future, or nil when
 * all were yielded; raises TimeoutError when the deadline passes first. */
static int iter_next_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  waiter_box *b = waiter_box_check(L, 1);
  double deadline = luaL_optnumber(L, 2, -1);
  if (!b->live) return 0;
  waiter_t *w = &b->w;
  int i, rc;
  susp_t *s = susp_current(L);
  if (!s) {
    rc = waiter_next(L, w, deadline, &i);
  } else if (waiter_holds(w, EACH_COMPLETED) || w->qhead == w->n) {
    waiter_set_wake(w, NULL, 0);
    rc = waiter_next(L, w, deadline, &i);   /* returns at once */
  } else if (deadline >= 0 && clk_now() >= deadline) {
    rc = OWNER_TIMEOUT;
  } else {
    waiter_set_wake(w, susp_wake_job(s), EACH_COMPLETED);
    return susp_wait(L, s, deadline, 0, iter_next_k);
  }
  if (rc == OWNER_INTERRUPTED) { waiter_box_close(b); return owner_raise_interrupt(L); }
  if (rc == OWNER_TIMEOUT) {
    lua_pushfstring(L, "%d (of %d) futures unfinished", w->n - w->qhead, w->n);
    waiter_box_close(b);
    return luax_error(L, LUAX_TIMEOUT, lua_tostring(L, -1));
  }
  if (i < 0) { waiter_box_close(b); return 0; }
  lua_pushinteger(L, i + 1);
  return 1;
}

static int iter_next(lua_State *L) { return iter_next_k(L, LUA_OK, 0); }

static int iter_close(lua_State *L) {
  waiter_box_close(waiter_box_check(L, 1));
  return 0;
}

/* core.waiter(futures) -> an as_completed iterator state. */
static int l_waiter(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n;
  fut_t **fs = collect(L, 1, &n);
  waiter_push(L, fs, n, -1);
  lua_pushvalue(L, 1);            /* keeps the futures alive */
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int l_poll(lua_State *L) {
  lua_pushinteger(L, owner_run_jobs(L));
  return 1;
}

void wait_open(lua_State *L) {
  waiter_box_class(L);
  if (lua_getfield(L, -1, "__index") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, iter_next);
    lua_setfield(L, -2, "next");
    lua_pushcfunction(L, iter_close);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  } else {
    lua_pop(L, 1);
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
