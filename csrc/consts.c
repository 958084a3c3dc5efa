/* Constants: futures.constant(t) marks a table (with everything it
 * reaches) to cross to each receiving state once.  The first message
 * that sends it encodes it into a blob of its own (encode.c), which rides
 * in messages as a code blob does: the process pools' proxy sends each
 * blob to a worker once, and every receiving state decodes it once per
 * blob id (decode.c) and hands out that copy by reference afterwards.
 *
 * The marks sit in the sending state's context (CTX_CONSTS, weak keys: a
 * mark goes with its table).  The blob's head names its origin, so the
 * copy sent back in a result comes back as the original table.  Nothing
 * detects a change to a constant after its first send: the caller
 * promises there is none. */
#include <stdatomic.h>
#include <unistd.h>
#include "lauxlib.h"
#include "codec.h"

static atomic_int any;

int cs_any(void) { return atomic_load_explicit(&any, memory_order_relaxed); }
void cs_mark_any(void) { atomic_store(&any, 1); }
uint64_t cs_pid(void) { return (uint64_t)getpid(); }

static int constmsg_gc(lua_State *L) {
  msg_free(luaL_checkudata(L, 1, CONSTMSG_MT));
  return 0;
}

tr_msg *cs_push_msg(lua_State *L) {
  tr_msg *m = lua_newuserdatauv(L, sizeof *m, 0);
  msg_init(m);
  luaL_setmetatable(L, CONSTMSG_MT);
  return m;
}

void cs_open(lua_State *L) {
  if (luaL_newmetatable(L, CONSTMSG_MT)) {
    lua_pushcfunction(L, constmsg_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

int tr_constant(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  int has = 0;
  lua_pushnil(L);
  int ctx = cx_in_slot(L, 2, &has);
  lua_rawgeti(L, ctx, CTX_CONSTS);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TNIL) {
    lua_pushvalue(L, 1);
    lua_pushboolean(L, 0);   /* marked, not encoded yet */
    lua_rawset(L, -4);
    cs_mark_any();
  }
  lua_settop(L, 1);
  return 1;
}
