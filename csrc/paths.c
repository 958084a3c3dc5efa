/* Where a value that cannot cross sits: "argument #2: [3].conn is a
 * userdata (FILE*)".  The encoder finds out only at the leaf, deep in its
 * recursion, so the text is built from the leaf outwards: the leaf writes
 * " is a ...", each enclosing level prepends its step as the recursion
 * unwinds, and tr_encode finally prepends the value's label.
 *
 * A function starts a new head, the way a label does, since its upvalues
 * are no path a reader could follow from the outside:
 *   "argument #2: cb: upvalue 'log' of function 'work' (job.lua:4) is ..."
 * says where the function sits, then which of its upvalues failed and
 * where the function was written.
 *
 * The buffer is fixed, so a path too long to show keeps its leaf and its
 * label and loses its middle. */
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "codec.h"

int path_fail(tr_path *p, const char *fmt, const char *a) {
  snprintf(p->err, TR_ERRLEN, fmt, a);
  return 0;
}

void path_prepend(tr_path *p, const char *s) {
  size_t n = strlen(s), have = strlen(p->err);
  if (have + n >= p->room) {
    if (p->elided) return;
    p->elided = 1;
    s = "...";
    n = 3;
  }
  memmove(p->err + n, p->err, have + 1);
  memcpy(p->err, s, n);
}

static int is_identifier(const char *s, size_t len) {
  if (len == 0 || len > 60 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
    return 0;
  for (size_t i = 1; i < len; i++)
    if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || ((s[i] | 32) >= 'a' && (s[i] | 32) <= 'z')))
      return 0;
  return 1;
}

/* A step of the path (a key, "(metatable)"); in front of a head it needs
 * a separator. */
void path_step(tr_path *p, const char *s) {
  if (p->head) { path_prepend(p, ": "); p->head = 0; }
  path_prepend(p, s);
}

/* Prepends a head: "argument #2" to "[3].conn is ...", making
 * "argument #2: [3].conn is ...", or to " is a ...", without the colon. */
static void path_head(tr_path *p, const char *s) {
  char *err = p->err;
  if (err[0] == '.' && err[1] != '.') memmove(err, err + 1, strlen(err));
  if (err[0] != ' ') path_prepend(p, ": ");
  path_prepend(p, s);
  p->head = !p->elided;
}

void path_upvalue(tr_path *p, lua_State *L, int f, int i, const char *name) {
  if (p->elided) return;   /* nothing more will show */
  char up[72], global[64], fname[72] = "", where[80], buf[256];
  if (name && *name && strcmp(name, "(no name)") != 0) snprintf(up, sizeof up, "'%.60s'", name);
  else snprintf(up, sizeof up, "#%d", i);
  if (names_global(L, f, global, sizeof global)) snprintf(fname, sizeof fname, " '%s'", global);
  lua_Debug ar;
  lua_pushvalue(L, f);
  lua_getinfo(L, ">S", &ar);
  if (ar.linedefined > 0) snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.linedefined);
  else snprintf(where, sizeof where, "%s", ar.short_src);
  snprintf(buf, sizeof buf, "upvalue %s of function%s (%s)", up, fname, where);
  path_head(p, buf);
}

/* Prepends "[3]", ".conn" or "[<table>]" for the key at stack index k;
 * as_key: the key itself failed, "(key [<table>])". */
void path_key(tr_path *p, lua_State *L, int k, int as_key) {
  char buf[96], keybuf[104];
  size_t len;
  const char *s;
  switch (lua_type(L, k)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, k, &len);
      if (is_identifier(s, len)) snprintf(buf, sizeof buf, ".%s", s);
      else snprintf(buf, sizeof buf, "[\"%.60s\"]", s);
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, k)) snprintf(buf, sizeof buf, "[%lld]", (long long)lua_tointeger(L, k));
      else snprintf(buf, sizeof buf, "[%.14g]", lua_tonumber(L, k));
      break;
    case LUA_TBOOLEAN:
      snprintf(buf, sizeof buf, "[%s]", lua_toboolean(L, k) ? "true" : "false");
      break;
    default:
      snprintf(buf, sizeof buf, "[<%s>]", luaL_typename(L, k));
  }
  if (as_key) {
    snprintf(keybuf, sizeof keybuf, "(key %s)", buf[0] == '.' ? buf + 1 : buf);
    path_step(p, keybuf);
  } else {
    path_step(p, buf);
  }
}

/* Prepends the label of value #k+1 (0-based k): "argument #2: ".  The
 * task's function needs none when it starts with the function's own head
 * ("upvalue 'log' of function (job.lua:4)" says which). */
void path_label(tr_path *p, const tr_opts *o, int k) {
  char label[64];
  p->room = TR_ERRLEN - 1;  /* the label always shows */
  if (o->first_is_function && k == 0) {
    if (p->head) return;
    snprintf(label, sizeof label, "function");
  } else {
    snprintf(label, sizeof label, o->label ? o->label : "value #%d", k + 1 - (o->first_is_function ? 1 : 0));
  }
  path_head(p, label);
}
