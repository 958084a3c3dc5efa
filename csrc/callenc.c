/* The codec's short cut for a call: ex:submit(function(x) ... end, i).
 * tr_encode's set-up (a stack check, three reserved slots, its walk's
 * bookkeeping) costs more than such a call's bytes; here the function's
 * blob comes from the same cache (fn_blob) and the bytes are those of
 * codec.h's format, written as encode.c writes them: the count, LFUNC
 * with its blob and its upvalues (ENV, or a scalar), then the arguments.
 * The function is the message's one ref, which neither side writes;
 * strings long enough to get refs are left to tr_encode, and so are
 * upvalues joined by debug.upvaluejoin (a JOIN), so no REF or JOIN can
 * arise. */
#include <string.h>
#include "lauxlib.h"
#include "callenc.h"
#include "codec.h"

/* The bytes are written here first, so that the message takes what they
 * come to, not their bound: a small call stays in its inline bytes. */
#define CALL_ROOM 256
#define CALL_UPS 8   /* more upvalues: tr_encode */

/* Bytes the scalar at idx takes at most, or 0 if it is not one of the
 * kinds this writes. */
static size_t scalar_room(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: case LUA_TBOOLEAN: return 1;
    case LUA_TNUMBER: return 11;
    case LUA_TSTRING: {
      size_t len = lua_rawlen(L, idx);
      return len < REF_MINSTR ? 2 + len : 0;
    }
    default: return 0;
  }
}

static int is_env(const char *name) { return strcmp(name, "_ENV") == 0; }

/* Pushes the upvalues of the Lua function at f (env[i - 1]: upvalue i
 * is _ENV) and returns the bytes they take at most, or 0 if one is not
 * _ENV nor a scalar, or two are one (joined: there must be two). */
static size_t push_upvalues(lua_State *L, int f, int nups, int *env) {
  void *ids[CALL_UPS];
  size_t room = 1;
  for (int i = 1; i <= nups; i++) {
    env[i - 1] = is_env(lua_getupvalue(L, f, i));
    size_t r = env[i - 1] ? 1 : scalar_room(L, -1);
    if (!r) return 0;
    room += r;
    if (nups == 1 || env[i - 1]) continue;
    ids[i - 1] = lua_upvalueid(L, f, i);
    for (int k = 0; k < i - 1; k++) if (!env[k] && ids[k] == ids[i - 1]) return 0;
  }
  return room;
}

int tr_encode_call(lua_State *L, int first, int n, tr_msg *m) {
  if (!tr_scalar_enabled() || n < 1 || lua_type(L, first) != LUA_TFUNCTION || lua_iscfunction(L, first))
    return 0;
  int nups = fn_nups(L, first);
  if (nups > CALL_UPS) return 0;
  size_t room = 30;   /* the count, LFUNC, the blob, nups */
  for (int k = 1; k < n; k++) {
    size_t r = scalar_room(L, first + k);
    if (!r) return 0;
    room += r;
  }
  if (room > CALL_ROOM) return 0;
  luaL_checkstack(L, CALL_UPS + 8, NULL);
  int top = lua_gettop(L), env[CALL_UPS];
  size_t ups = push_upvalues(L, first, nups, env);
  if (!ups || room + ups > CALL_ROOM) { lua_settop(L, top); return 0; }
  cx_push(L);
  tr_blob *b = fn_blob(L, lua_gettop(L), first);
  lua_pop(L, 1);
  int bi = msg_add_blob(m, b);
  if (bi < 0) luaL_error(L, "not enough memory");
  unsigned char buf[CALL_ROOM];
  unsigned char *d = tr_varint_at(buf, (uint64_t)n);
  *d++ = T_LFUNC;
  d = tr_varint_at(d, (uint64_t)bi);
  d = tr_varint_at(d, (uint64_t)nups);
  for (int i = 1; i <= nups; i++) {
    if (env[i - 1]) *d++ = U_ENV;
    else d = put_scalar_at(L, top + i, d);
  }
  lua_settop(L, top);
  for (int k = 1; k < n; k++) d = put_scalar_at(L, first + k, d);
  size_t len = (size_t)(d - buf);
  if (!msg_reserve(m, len)) luaL_error(L, "not enough memory");
  msg_put(m, buf, len);
  return 1;
}
