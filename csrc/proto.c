/* Prototype access for the codec's code blobs (see proto.h).
 *
 * The layouts are Lua 5.4's own (lobject.h), the same in every 5.4
 * release, but no header promises them, so pr_check tries them on a
 * closure compiled for the purpose: its type tags, parameter and upvalue
 * counts, line numbers, chunk name and upvalue names must read back as
 * the public API reports them, and a keeper and a factory built for it
 * must make working closures with upvalues of their own.  Any mismatch leaves
 * access off.
 *
 * A factory is a tiny chunk compiled from source,
 *     local u1, ..., uN  return function() return u1 end
 * whose one child prototype is swapped for the wanted one, with the
 * wanted one's upvalue descriptions rewritten to "register i of the
 * enclosing function".  Calling it runs LOADNIL, CLOSURE, RETURN: a new
 * closure with N fresh upvalues, closed (nil) on return.  That is
 * Lua's own way of making a closure, with its own write barrier for the
 * closure; the swapped child pointer has none, so the factory also holds
 * the loaded closure (as its unused _ENV upvalue, set through the API and
 * so with a barrier), which keeps the prototype marked by the book.
 *
 * A keeper (for the sender, whose prototype must stay as it is) runs the
 * same template once with the descriptions rewritten and then put back:
 * a closure made by OP_CLOSURE, so by the book, of upvalues of its own. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "proto.h"

typedef struct pr_upvaldesc {   /* Upvaldesc of Lua 5.4 */
  void *name;                   /* TString * */
  unsigned char instack, idx, kind;
} pr_upvaldesc;

typedef struct pr_proto_s {     /* struct Proto of Lua 5.4 */
  void *next;
  unsigned char tt, marked;
  unsigned char numparams, is_vararg, maxstacksize;
  int sizeupvalues, sizek, sizecode, sizelineinfo, sizep, sizelocvars, sizeabslineinfo;
  int linedefined, lastlinedefined;
  void *k, *code;
  struct pr_proto_s **p;
  pr_upvaldesc *upvalues;
  void *lineinfo, *abslineinfo, *locvars;
  void *source;                 /* TString * */
  void *gclist;
} pr_proto_s;

typedef struct pr_lclosure {    /* LClosure of Lua 5.4 */
  void *next;
  unsigned char tt, marked, nupvalues;
  void *gclist;
  pr_proto_s *p;
} pr_lclosure;

#define PR_VLCL 0x06    /* LUA_VLCL: a Lua closure */
#define PR_VPROTO 0x0a  /* LUA_VPROTO */
#define PR_OP_SETUPVAL 10   /* OP_SETUPVAL of lopcodes.h, the low 7 bits of an instruction */
#define PR_MAXUPS 200   /* the template's locals; Lua allows 200 */

/* Whether the code of p cannot change its own upvalues: no SETUPVAL and
 * no function inside it (which could capture them and do so). */
static int pure(const pr_proto_s *p) {
  if (p->sizep != 0) return 0;
  const uint32_t *code = p->code;
  for (int i = 0; i < p->sizecode; i++)
    if ((code[i] & 0x7F) == PR_OP_SETUPVAL) return 0;
  return 1;
}

static atomic_int verified;   /* 0 not yet, 1 layout matches, -1 it does not */
static atomic_int enabled;

static pr_lclosure *closure_at(lua_State *L, int idx) {
  return (pr_lclosure *)(uintptr_t)lua_topointer(L, idx);
}

/* Loads the template of n upvalues (see the top) and returns its one
 * child's slot, or NULL, pushing nothing, if it does not load as expected. */
static pr_proto_s **load_template(lua_State *L, int n) {
  char src[PR_MAXUPS * 6 + 64];
  size_t len = 0;
  len += (size_t)snprintf(src + len, sizeof src - len, "local u1");
  for (int i = 2; i <= n; i++) len += (size_t)snprintf(src + len, sizeof src - len, ",u%d", i);
  snprintf(src + len, sizeof src - len, " return function() return u1 end");
  if (luaL_loadbufferx(L, src, strlen(src), "=(closure factory)", "t") != LUA_OK) {
    lua_pop(L, 1);
    return NULL;
  }
  pr_proto_s *fp = closure_at(L, -1)->p;
  if (fp->sizep != 1 || fp->maxstacksize <= n) { lua_pop(L, 1); return NULL; }
  return &fp->p[0];
}

/* Points p's upvalue descriptions at the template's registers 0..n-1. */
static void point_at_registers(pr_proto_s *p, int n) {
  for (int i = 0; i < n; i++) {
    p->upvalues[i].instack = 1;
    p->upvalues[i].idx = (unsigned char)i;
    p->upvalues[i].kind = 0;   /* VDKREG: a regular local */
  }
}

/* Pushes the factory for the Lua function at idx (see proto.h). */
static int make_factory(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  pr_proto_s *p = closure_at(L, idx)->p;
  int n = p->sizeupvalues;
  if (n < 1 || n > PR_MAXUPS) return 0;
  pr_proto_s **child = load_template(L, n);
  if (!child) return 0;
  point_at_registers(p, n);
  *child = p;
  lua_pushvalue(L, idx);
  lua_setupvalue(L, -2, 1);   /* keeps p alive, see the top */
  return 1;
}

/* Pushes a closure of the prototype of the Lua function at idx with nil
 * upvalues of its own (see proto.h): the template run once with p's
 * upvalue descriptions pointed at its registers and put back after.  Only
 * OP_CLOSURE reads them, and only this thread runs p meanwhile.  The
 * template is dropped after the run: its child slot, written without a
 * barrier, is never read again but by the collector, and only while p is
 * alive (the new closure and the one at idx hold it). */
static int make_keeper(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  pr_proto_s *p = closure_at(L, idx)->p;
  int n = p->sizeupvalues;
  if (n == 0) { lua_pushvalue(L, idx); return 1; }   /* holds nothing else */
  if (n > PR_MAXUPS) return 0;
  pr_upvaldesc saved[PR_MAXUPS];
  pr_proto_s **child = load_template(L, n);
  if (!child) return 0;
  memcpy(saved, p->upvalues, (size_t)n * sizeof *saved);
  point_at_registers(p, n);
  *child = p;
  int st = lua_pcall(L, 0, 1, 0);
  memcpy(p->upvalues, saved, (size_t)n * sizeof *saved);
  if (st != LUA_OK) lua_error(L);
  return 1;
}

#if LUA_VERSION_NUM == 504
/* The offset of a string's characters in its TString: name is a TString
 * whose text the API gave as s. */
static ptrdiff_t text_offset(const void *name, const char *s) {
  return name ? s - (const char *)name : -1;
}

static int layout_matches(lua_State *L) {
  static const char chunk[] = "local a, b = 1, 2\n\nreturn function(x) return a + x, b end\n";
  if (luaL_loadbufferx(L, chunk, sizeof chunk - 1, "=futures.protocheck", "t") != LUA_OK) {
    lua_pop(L, 1);
    return 0;
  }
  int m = lua_gettop(L);
  lua_pushvalue(L, m);
  lua_call(L, 0, 1);
  lua_pushvalue(L, m);
  lua_call(L, 0, 1);   /* m+1, m+2: two closures of one prototype */
  pr_lclosure *mc = closure_at(L, m), *c1 = closure_at(L, m + 1), *c2 = closure_at(L, m + 2);
  pr_proto_s *p = c1->p;
  int ok = mc->tt == PR_VLCL && c1->tt == PR_VLCL && c1->nupvalues == 2 && mc->nupvalues == 1
        && c1 != c2 && c1->p == c2->p && p != mc->p && p != NULL
        && p->tt == PR_VPROTO && mc->p->tt == PR_VPROTO
        && p->numparams == 1 && p->is_vararg == 0 && p->sizeupvalues == 2 && p->sizep == 0
        && p->linedefined == 3 && p->lastlinedefined == 3
        && mc->p->sizep == 1 && mc->p->p != NULL && mc->p->p[0] == p && mc->p->is_vararg == 1
        && p->upvalues != NULL
        && p->upvalues[0].instack == 1 && p->upvalues[0].idx == 0
        && p->upvalues[1].instack == 1 && p->upvalues[1].idx == 1;
  if (ok) {   /* names and chunk name: TStrings whose text the API shows */
    const char *a = lua_getupvalue(L, m + 1, 1);
    const char *b = a ? lua_getupvalue(L, m + 1, 2) : NULL;
    lua_Debug ar;
    lua_pushvalue(L, m + 1);
    lua_getinfo(L, ">S", &ar);
    if (a) lua_pop(L, 1);
    if (b) lua_pop(L, 1);
    ptrdiff_t off = a ? text_offset(p->upvalues[0].name, a) : -1;
    ok = a && b && strcmp(a, "a") == 0 && strcmp(b, "b") == 0
      && off >= (ptrdiff_t)sizeof(void *) && off <= 64
      && text_offset(p->upvalues[1].name, b) == off
      && text_offset(p->source, ar.source) == off && strcmp(ar.source, "=futures.protocheck") == 0;
  }
  if (ok) {   /* purity: a + x reads its upvalues, a = x writes one */
    static const char w[] = "local a return function(x) a = x end";
    ok = pure(p) && !pure(mc->p) && luaL_loadbufferx(L, w, sizeof w - 1, "=futures.protocheck", "t") == LUA_OK;
    if (ok) {
      lua_call(L, 0, 1);
      ok = closure_at(L, -1)->tt == PR_VLCL && !pure(closure_at(L, -1)->p);
    }
    lua_settop(L, m + 2);
  }
  if (ok && make_keeper(L, m + 1)) {   /* a keeper: p, nil upvalues of its own, p intact */
    int k = lua_gettop(L);
    ok = closure_at(L, k)->tt == PR_VLCL && closure_at(L, k)->p == p && k != m + 1
      && lua_upvalueid(L, k, 1) != lua_upvalueid(L, m + 1, 1)
      && lua_getupvalue(L, k, 2) && lua_isnil(L, -1);
    lua_settop(L, k);
    lua_pushvalue(L, m);
    lua_call(L, 0, 1);   /* p's descriptions still say "a, b of the chunk" */
    lua_pushinteger(L, 5);
    lua_call(L, 1, 2);
    ok = ok && lua_tointeger(L, -2) == 6 && lua_tointeger(L, -1) == 2;
    lua_settop(L, m + 2);
  } else {
    ok = 0;
  }
  if (ok && make_factory(L, m + 1)) {   /* clones work and own their upvalues */
    int f = lua_gettop(L);
    for (int k = 0; k < 2; k++) {
      lua_pushvalue(L, f);
      lua_call(L, 0, 1);
      lua_pushinteger(L, 10 * (k + 1));
      lua_setupvalue(L, -2, 1);
      lua_pushstring(L, k ? "t" : "s");
      lua_setupvalue(L, -2, 2);
    }
    pr_lclosure *k1 = closure_at(L, f + 1), *k2 = closure_at(L, f + 2);
    ok = k1->tt == PR_VLCL && k1->p == p && k2->p == p && k1 != k2
      && lua_upvalueid(L, f + 1, 1) != lua_upvalueid(L, f + 2, 1)
      && lua_upvalueid(L, f + 1, 1) != lua_upvalueid(L, m + 1, 1);
    for (int k = 0; ok && k < 2; k++) {
      lua_pushvalue(L, f + 1 + k);
      lua_pushinteger(L, 5);
      lua_call(L, 1, 2);
      ok = lua_tointeger(L, -2) == 10 * (k + 1) + 5 && lua_isstring(L, -1)
        && strcmp(lua_tostring(L, -1), k ? "t" : "s") == 0;
      lua_pop(L, 2);
    }
  } else {
    ok = 0;
  }
  lua_settop(L, m - 1);
  return ok;
}
#else
static int layout_matches(lua_State *L) { return 0; }
#endif

void pr_check(lua_State *L) {
  if (atomic_load(&verified)) return;
  luaL_checkstack(L, 10, NULL);
  int ok = lua_version(L) == 504 && layout_matches(L);
  atomic_store(&enabled, ok);
  atomic_store(&verified, ok ? 1 : -1);
}

void pr_enable(int on) {
  atomic_store(&enabled, on && atomic_load(&verified) == 1);
}

int pr_enabled(void) { return atomic_load(&enabled); }

const void *pr_proto(lua_State *L, int idx) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return NULL;
  return closure_at(L, idx)->p;
}

int pr_nups(lua_State *L, int idx) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return -1;
  return closure_at(L, idx)->nupvalues;
}

int pr_pure(lua_State *L, int idx) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return 0;
  return pure(closure_at(L, idx)->p);
}

int pr_keeper(lua_State *L, int idx) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return 0;
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return 0;
  return make_keeper(L, idx);
}

int pr_factory(lua_State *L, int idx) {
  if (!atomic_load_explicit(&enabled, memory_order_relaxed)) return 0;
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx)) return 0;
  return make_factory(L, idx);
}
