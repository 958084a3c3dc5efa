/* The codec's short cut for a message of one scalar (a boolean, number or
 * string): the very bytes tr_encode writes and tr_decode reads (codec.h,
 * THE FORMAT), without their per-call set-up.  A queue's stream of small
 * values goes through here. */
#include <stdatomic.h>
#include "lauxlib.h"
#include "codec.h"

static atomic_int enabled = 1;   /* a test switch, read by every thread */

void tr_scalar_enable(int on) { atomic_store_explicit(&enabled, on, memory_order_relaxed); }
int tr_scalar_enabled(void) { return atomic_load_explicit(&enabled, memory_order_relaxed); }

unsigned char *put_scalar_at(lua_State *L, int idx, unsigned char *d) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: *d++ = T_NIL; return d;
    case LUA_TBOOLEAN: *d++ = lua_toboolean(L, idx) ? T_TRUE : T_FALSE; return d;
    case LUA_TNUMBER:
      return lua_isinteger(L, idx) ? put_int_at(d, lua_tointeger(L, idx)) : put_flt_at(d, lua_tonumber(L, idx));
    default: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      *d++ = T_STR;
      d = tr_varint_at(d, len);
      memcpy(d, s, len);
      return d + len;
    }
  }
}

int tr_encode_scalar(lua_State *L, int idx, tr_msg *m) {
  int t = lua_type(L, idx);
  if (!tr_scalar_enabled() || (t != LUA_TNUMBER && t != LUA_TBOOLEAN && t != LUA_TSTRING)) return 0;
  size_t len = t == LUA_TSTRING ? lua_rawlen(L, idx) : 0;
  if (!msg_reserve(m, 12 + len)) luaL_error(L, "not enough memory");
  unsigned char *d = m->data + m->len;
  *d++ = 1;   /* the count */
  m->len = (size_t)(put_scalar_at(L, idx, d) - m->data);
  return 1;
}

int tr_decode_scalar(lua_State *L, const tr_msg *m) {
  const unsigned char *p = m->data, *end = p + m->len;
  if (!tr_scalar_enabled() || m->len < 2 || p[0] != 1) return 0;
  uint64_t v;
  switch (p[1]) {
    case T_FALSE: case T_TRUE:
      if (m->len != 2) return 0;
      lua_pushboolean(L, p[1] == T_TRUE);
      return 1;
    case T_INT:
      p += 2;
      if (!tr_get_varint(&p, end, &v) || p != end) return 0;
      lua_pushinteger(L, unzigzag(v));
      return 1;
    case T_FLT: {
      double x;
      if (m->len != 10) return 0;
      memcpy(&x, p + 2, 8);
      lua_pushnumber(L, x);
      return 1;
    }
    case T_STR:
      p += 2;
      if (!tr_get_varint(&p, end, &v) || v != (uint64_t)(end - p)) return 0;
      lua_pushlstring(L, (const char *)p, (size_t)v);
      return 1;
    default: return 0;
  }
}
