/* The decoder: the bytes of codec.h's format back to Lua values.
 *
 * It trusts nothing, since the bytes may come from a worker process that
 * went wrong: every length is checked against the bytes left (so a lying
 * length cannot allocate more than the message holds), nesting is bounded
 * by TR_MAXDEPTH, and code is loaded only from the message's blobs.  A
 * failure is a message in err and the stack as it was; only memory errors
 * raise.
 *
 * Metatables are set once the whole message is in (see dec_table), from
 * a list of (table, metatable) pairs kept in a reserved stack slot next to
 * the ref list; both are scratch tables of the codec context.  Arrays of
 * numbers and booleans are written straight into a new table's
 * preallocated array part where arraypart.c allows it. */
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "arraypart.h"
#include "codec.h"
#include "slab.h"

typedef struct dec {
  lua_State *L;
  const tr_msg *m;
  const unsigned char *p, *end;
  int ctx;    /* stack index of the context; the next two: */
  int refs;   /* stack index: ref number -> value; holds the first value
               * itself until a second one makes it a table */
  int mts;    /* stack index: table, metatable, table, metatable, ... */
  int has_ctx, has_refs, has_mts;   /* each nil until first needed */
  int nrefs, nmts;
  int depth;
  int lightuserdata;
  size_t slots;  /* table slots the message can still honestly hold */
  char *err;
} dec;

static int bad(dec *d, const char *what) {
  snprintf(d->err, TR_ERRLEN, "malformed message: %s", what);
  return 0;
}

static int getv(dec *d, uint64_t *v) {
  return tr_get_varint(&d->p, d->end, v) || bad(d, "truncated number");
}

static size_t left(dec *d) { return (size_t)(d->end - d->p); }

/* Pushes the value of ref r (1 <= r <= nrefs). */
static void push_ref(dec *d, uint64_t r) {
  if (d->has_refs) lua_rawgeti(d->L, d->refs, (lua_Integer)r);
  else lua_pushvalue(d->L, d->refs);
}

static int dec_ctx(dec *d) { return cx_in_slot(d->L, d->ctx, &d->has_ctx); }

/* Gives the value on top the next ref number. */
static void add_ref(dec *d) {
  lua_State *L = d->L;
  if (d->nrefs == 0) {
    lua_pushvalue(L, -1);
    lua_replace(L, d->refs);
    d->nrefs = 1;
    return;
  }
  if (!d->has_refs) {
    cx_scratch_take(L, dec_ctx(d), CTX_REFS);
    lua_pushvalue(L, d->refs);
    lua_rawseti(L, -2, 1);
    lua_replace(L, d->refs);
    d->has_refs = 1;
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->refs, ++d->nrefs);
}

static int get_str(dec *d, const char **s, size_t *len) {
  uint64_t n;
  if (!getv(d, &n)) return 0;
  if (n > left(d)) return bad(d, "string longer than the message");
  *s = (const char *)d->p;
  *len = (size_t)n;
  d->p += n;
  return 1;
}

static int dec_value(dec *d);
static int dec_const(dec *d);

/* Fills slots i.. of the new table at t, up to n, straight into its array
 * part while the message holds numbers, booleans or nil (the new table's
 * slots are empty already); returns the first slot not filled, or 0 for
 * malformed bytes. */
static uint64_t get_scalars(dec *d, int t, uint64_t i, uint64_t n) {
  size_t len;
  ap_slot *a = ap_array(d->L, t, &len);
  if (!a) return i;
  if (len < n) n = len;
  /* Locals: a store to a slot's tag byte may alias d's fields. */
  const unsigned char *p = d->p, *end = d->end;
  for (; i <= n && p < end; i++) {
    ap_slot *s = &a[i - 1];
    unsigned char tag = *p;
    if (tag == T_FLT && end - p >= 9) {
      memcpy(&s->v.n, p + 1, 8);
      s->tt = AP_FLT;
      p += 9;
    } else if (tag == T_INT) {
      uint64_t v;
      p++;
      if (!tr_get_varint(&p, end, &v)) { d->p = p; return bad(d, "truncated number"); }
      s->v.i = unzigzag(v);
      s->tt = AP_INT;
    } else if (tag == T_TRUE || tag == T_FALSE) {
      s->tt = tag == T_TRUE ? AP_TRUE : AP_FALSE;
      p++;
    } else if (tag == T_NIL) {
      p++;
    } else {
      break;
    }
  }
  d->p = p;
  return i;
}

/* A table's SLAB tag: its blob, which must be a slab of narr slots. */
static tr_blob *get_slab(dec *d, uint64_t narr) {
  uint64_t v;
  d->p++;
  if (!getv(d, &v)) return NULL;
  tr_blob *b = v < (uint64_t)d->m->nblobs ? d->m->blobs[v] : NULL;
  if (!b || !slab_is(b) || slab_len(b) != narr) { bad(d, "bad array block"); return NULL; }
  return b;
}

/* Pushes a new table whose array part is the slab: the slab's own block
 * where this state can adopt it, else a copy. */
static int push_slab_table(dec *d, tr_blob *b, uint64_t nhash) {
  lua_State *L = d->L;
  size_t n = slab_len(b), len;
  int nh = nhash > (1 << 24) ? (1 << 24) : (int)nhash;
  if (!slab_slots(b)) return bad(d, "array block decoded twice");
  if (ap_adopts(L)) {
    lua_createtable(L, 0, nh);
    ap_adopt(L, -1, slab_take(b), n);
    return 1;
  }
  lua_createtable(L, (int)n, nh);
  const ap_slot *s = slab_slots(b);
  ap_slot *a = ap_array(L, -1, &len);
  if (a && len >= n) {
    memcpy(a, s, n * sizeof *s);
    return 1;
  }
  for (size_t i = 0; i < n; i++) {   /* direct access was turned off since */
    if (s[i].tt == AP_FLT) lua_pushnumber(L, s[i].v.n);
    else if (s[i].tt == AP_INT) lua_pushinteger(L, s[i].v.i);
    else if (AP_ISNIL(s[i].tt)) continue;
    else lua_pushboolean(L, s[i].tt == AP_TRUE);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int dec_table(dec *d) {
  lua_State *L = d->L;
  uint64_t narr, nhash;
  if (++d->depth > TR_MAXDEPTH) return bad(d, "nested too deeply");
  if (!lua_checkstack(L, 6)) return bad(d, "nested too deeply");
  if (!getv(d, &narr) || !getv(d, &nhash)) return 0;
  tr_blob *slab = NULL;
  if (narr && left(d) && *d->p == T_SLAB && !(slab = get_slab(d, narr))) return 0;
  /* Every array slot takes at least a byte of the message and every pair
   * two, nested tables included, so the slots of all the tables of an
   * honest message add up to no more than its length: lying counts cannot
   * make nested tables preallocate more than that.  A slab's slots are
   * its own memory. */
  uint64_t inline_slots = slab ? 0 : narr;
  if (inline_slots > d->slots || nhash > (d->slots - inline_slots) / 2)
    return bad(d, "table larger than the message");
  d->slots -= inline_slots + 2 * nhash;
  int t;
  if (slab) {
    if (!push_slab_table(d, slab, nhash)) return 0;
    t = lua_gettop(L);
  } else {
    lua_createtable(L, narr > (1 << 24) ? (1 << 24) : (int)narr, nhash > (1 << 24) ? (1 << 24) : (int)nhash);
    t = lua_gettop(L);
  }
  add_ref(d);
  for (uint64_t i = slab ? narr + 1 : 1; i <= narr; i++) {
    if ((i = get_scalars(d, t, i, narr)) == 0) return 0;
    if (i > narr) break;
    if (!dec_value(d)) return 0;
    lua_rawseti(L, t, (lua_Integer)i);
  }
  for (uint64_t i = 0; i < nhash; i++) {
    if (!dec_value(d)) return 0;
    if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1)))
      return bad(d, "nil or NaN table key");
    if (!dec_value(d)) return 0;
    lua_rawset(L, t);
  }
  if (!dec_value(d)) return 0;
  if (lua_istable(L, -1)) {
    /* Set once the whole message is in: the metatable may still be filling
     * (a class that holds its instances), and a __gc added after
     * setmetatable would not count. */
    if (!d->has_mts) {
      cx_scratch_take(L, dec_ctx(d), CTX_MTS);
      lua_replace(L, d->mts);
      d->has_mts = 1;
    }
    lua_pushvalue(L, t);
    lua_rawseti(L, d->mts, ++d->nmts);
    lua_rawseti(L, d->mts, ++d->nmts);
  } else if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
  } else {
    return bad(d, "metatable is not a table");
  }
  d->depth--;
  return 1;
}

/* Whether the nups upvalue records at d->p are each _ENV or a scalar
 * (nil, boolean, number, short string): what a kept closure (fn_entry) may
 * hold, checked without decoding anything that takes a ref. */
static int plain_upvalues(const dec *d, uint64_t nups) {
  const unsigned char *p = d->p;
  uint64_t v;
  for (uint64_t i = 0; i < nups; i++) {
    if (p >= d->end) return 0;
    switch (*p++) {
      case U_ENV: case T_NIL: case T_FALSE: case T_TRUE: break;
      case T_INT: if (!tr_get_varint(&p, d->end, &v)) return 0; break;
      case T_FLT: if (d->end - p < 8) return 0; p += 8; break;
      case T_STR:
        if (!tr_get_varint(&p, d->end, &v) || v >= REF_MINSTR || v > (uint64_t)(d->end - p)) return 0;
        p += v;
        break;
      default: return 0;
    }
  }
  return 1;
}

/* Whether the closure at f holds what the plain upvalue records at d->p
 * decode to (same value, same number subtype, a float's same bits: 0.0
 * is not -0.0 here); d->p is then past them. */
static int same_upvalues(dec *d, int f, uint64_t nups) {
  lua_State *L = d->L;
  for (int i = 1; i <= (int)nups; i++) {
    if (*d->p == U_ENV) { d->p++; continue; }
    if (!dec_value(d)) return 0;
    lua_getupvalue(L, f, i);
    int same = lua_rawequal(L, -1, -2) && lua_isinteger(L, -1) == lua_isinteger(L, -2);
    if (same && lua_type(L, -1) == LUA_TNUMBER) {
      lua_Number a = lua_tonumber(L, -1), b = lua_tonumber(L, -2);
      same = memcmp(&a, &b, sizeof a) == 0;
    }
    lua_pop(L, 2);
    if (!same) return 0;
  }
  return 1;
}

static int dec_function(dec *d) {
  lua_State *L = d->L;
  uint64_t bi, nups;
  if (!getv(d, &bi) || !getv(d, &nups)) return 0;
  if (bi >= (uint64_t)d->m->nblobs) return bad(d, "function code index out of range");
  if (d->m->blobs[bi]->kind) return bad(d, "function code index names a shared object");
  if (nups > 255 || nups > left(d)) return bad(d, "bad upvalue count");
  if (++d->depth > TR_MAXDEPTH) return bad(d, "nested too deeply");
  int only_env = 1;
  for (uint64_t i = 0; i < nups; i++)
    if (d->p[i] != U_ENV) { only_env = 0; break; }
  const tr_blob *b = d->m->blobs[bi];
  int keep = !only_env && plain_upvalues(d, nups), missed = 0;
  int e = 0;   /* stack index of the code's entry (funcs.c), if it has one */
  if (only_env) {
    if (!fn_load(L, dec_ctx(d), b, d->err)) return 0;
  } else {
    int got = fn_entry(L, dec_ctx(d), b, d->err);
    if (!got) return 0;
    if (got == 1) {
      e = lua_gettop(L);
      if (keep && fn_kept(L, e)) {   /* the same values again: the same closure */
        const unsigned char *at = d->p;
        if ((uint64_t)fn_nups(L, e + 1) == nups && same_upvalues(d, e + 1, nups)) {
          lua_remove(L, e);
          add_ref(d);
          d->depth--;
          return 1;
        }
        lua_settop(L, e);
        d->p = at;
        missed = 1;
      }
      fn_fresh(L, e);
    }
  }
  int f = lua_gettop(L);
  if ((uint64_t)fn_nups(L, f) != nups) return bad(d, "upvalue count does not match the code");
  add_ref(d);
  if (only_env) {
    d->p += nups;
    if (nups > 1) {   /* lua_load binds only the first upvalue */
      for (int i = 2; i <= (int)nups; i++) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_setupvalue(L, f, i);
      }
    }
    d->depth--;
    return 1;
  }
  for (int i = 1; i <= (int)nups; i++) {
    if (d->p >= d->end) return bad(d, "truncated upvalues");
    if (*d->p == U_ENV) {
      d->p++;
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      lua_setupvalue(L, f, i);
    } else if (*d->p == U_JOIN) {
      uint64_t fr, n;
      d->p++;
      if (!getv(d, &fr) || !getv(d, &n)) return 0;
      if (fr < 1 || fr > (uint64_t)d->nrefs || n < 1 || n > 255) return bad(d, "bad shared upvalue");
      push_ref(d, fr);
      if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1) ||
          !lua_getupvalue(L, -1, (int)n))
        return bad(d, "bad shared upvalue");
      lua_pop(L, 1);
      lua_upvaluejoin(L, f, i, lua_gettop(L), (int)n);
      lua_pop(L, 1);
    } else {
      if (!dec_value(d)) return 0;
      lua_setupvalue(L, f, i);
    }
  }
  if (e) {
    if (keep) fn_keep(L, dec_ctx(d), b, e, f, missed);
    lua_remove(L, e);
  }
  d->depth--;
  return 1;
}

static int dec_value(dec *d) {
  lua_State *L = d->L;
  if (d->p >= d->end) return bad(d, "truncated");
  if (!lua_checkstack(L, 4)) return bad(d, "nested too deeply");
  int tag = *d->p++;
  uint64_t v;
  const char *s;
  size_t len;
  switch (tag) {
    case T_NIL: lua_pushnil(L); return 1;
    case T_FALSE: lua_pushboolean(L, 0); return 1;
    case T_TRUE: lua_pushboolean(L, 1); return 1;
    case T_INT:
      if (!getv(d, &v)) return 0;
      lua_pushinteger(L, unzigzag(v));
      return 1;
    case T_FLT: {
      double x;
      if (left(d) < 8) return bad(d, "truncated float");
      memcpy(&x, d->p, 8);
      d->p += 8;
      lua_pushnumber(L, x);
      return 1;
    }
    case T_STR:
      if (!get_str(d, &s, &len)) return 0;
      lua_pushlstring(L, s, len);
      if (len >= REF_MINSTR) add_ref(d);
      return 1;
    case T_TABLE: return dec_table(d);
    case T_REF:
      if (!getv(d, &v)) return 0;
      if (v < 1 || v > (uint64_t)d->nrefs) return bad(d, "reference out of range");
      push_ref(d, v);
      return 1;
    case T_LFUNC: return dec_function(d);
    case T_CONST: return dec_const(d);
    case T_SHARED: {
      if (!getv(d, &v)) return 0;
      if (v >= (uint64_t)d->m->nblobs || !d->m->blobs[v]->kind) return bad(d, "bad shared object index");
      if (!d->m->blobs[v]->kind->push(L, d->m->blobs[v])) return bad(d, "cannot make a shared object");
      return 1;
    }
    case T_CFUNC: {
      const char *field;
      size_t flen;
      if (!get_str(d, &s, &len) || !get_str(d, &field, &flen)) return 0;
      return names_push_field(L, s, len, field, flen, 0, d->err);
    }
    case T_MTFIELD: {
      const char *field;
      size_t flen;
      if (!get_str(d, &s, &len) || !get_str(d, &field, &flen) ||
          !names_push_field(L, s, len, field, flen, 1, d->err))
        return 0;
      add_ref(d);
      return 1;
    }
    case T_MODULE:
      if (!get_str(d, &s, &len)) return 0;
      return names_push_module(L, s, len, d->err);
    case T_LIGHTUD: {
      void *p;
      if (!d->lightuserdata) return bad(d, "light userdata from another process");
      if (left(d) < sizeof p) return bad(d, "truncated pointer");
      memcpy(&p, d->p, sizeof p);
      d->p += sizeof p;
      lua_pushlightuserdata(L, p);
      return 1;
    }
    default: return bad(d, "unknown tag");
  }
}

static int decode_values(lua_State *L, const tr_msg *m, size_t *pos, int lightuserdata,
                         char *err, int depth);

/* A constant (see codec.h): the state's own table if it came from here,
 * else the copy decoded from its blob once per blob id, marked as a
 * constant in turn so that it crosses back by reference too. */
static int dec_const(dec *d) {
  lua_State *L = d->L;
  uint64_t ci, n;
  if (!getv(d, &ci) || !getv(d, &n)) return 0;
  if (ci >= (uint64_t)d->m->nblobs) return bad(d, "constant index out of range");
  if (n > left(d) || n > (uint64_t)d->m->nblobs) return bad(d, "bad constant blob count");
  tr_blob *b = d->m->blobs[ci];
  if (b->kind) return bad(d, "constant index names a shared object");
  if (b->len < CONST_HEAD) return bad(d, "truncated constant");
  uint64_t pid, origin;
  memcpy(&pid, b->code, 8);
  memcpy(&origin, b->code + 8, 8);
  int ctx = dec_ctx(d);
  if (pid == cs_pid()) {
    lua_rawgeti(L, ctx, CTX_CONSTBYID);
    if (lua_rawgeti(L, -1, (lua_Integer)origin) == LUA_TTABLE) {
      lua_remove(L, -2);
      goto skip;
    }
    lua_pop(L, 2);
  }
  lua_rawgeti(L, ctx, CTX_CONSTCACHE);
  if (lua_rawgeti(L, -1, (lua_Integer)b->id) == LUA_TTABLE) {
    lua_remove(L, -2);
    goto skip;
  }
  lua_pop(L, 2);
  {
    tr_blob **deps = lua_newuserdatauv(L, (n ? (size_t)n : 1) * sizeof *deps, 0);
    for (uint64_t i = 0; i < n; i++) {
      uint64_t k;
      if (!getv(d, &k)) return 0;
      if (k >= (uint64_t)d->m->nblobs) return bad(d, "constant index out of range");
      deps[i] = d->m->blobs[k];
    }
    tr_msg view;
    msg_init(&view);
    view.data = (unsigned char *)b->code;
    view.len = view.cap = b->len;
    view.blobs = deps;
    view.nblobs = view.capblobs = (int)n;
    size_t pos = CONST_HEAD;
    if (++d->depth > TR_MAXDEPTH) return bad(d, "nested too deeply");
    int got = decode_values(L, &view, &pos, d->lightuserdata, d->err, d->depth);
    d->depth--;
    if (got < 0) return 0;
    if (got != 1 || pos != b->len || !lua_istable(L, -1)) return bad(d, "bad constant");
    lua_remove(L, -2);   /* the deps */
    if (b->ndeps == 0 && n > 0 && !tr_blob_set_deps(b, deps, (int)n))
      return luaL_error(L, "not enough memory");   /* a process worker's own blob */
    cx_cache_put(L, ctx, CTX_CONSTCACHE, b->id);
    lua_rawgeti(L, ctx, CTX_CONSTS);
    lua_pushvalue(L, -2);
    cx_push_blob(L, b);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    cs_mark_any();
    add_ref(d);
    return 1;
  }
skip:
  for (uint64_t i = 0; i < n; i++) {
    uint64_t k;
    if (!getv(d, &k)) return 0;
    if (k >= (uint64_t)d->m->nblobs) return bad(d, "constant index out of range");
  }
  add_ref(d);
  return 1;
}

int tr_decode(lua_State *L, const tr_msg *m, size_t *pos, int lightuserdata, char err[TR_ERRLEN]) {
  return decode_values(L, m, pos, lightuserdata, err, 0);
}

static int decode_values(lua_State *L, const tr_msg *m, size_t *pos, int lightuserdata,
                         char *err, int depth) {
  dec d = {0};
  d.L = L, d.m = m, d.p = m->data, d.end = m->data + m->len, d.lightuserdata = lightuserdata;
  d.err = err;
  d.depth = depth;
  uint64_t n;
  err[0] = '\0';
  if (*pos > m->len) return bad(&d, "truncated"), -1;
  d.p += *pos;
  d.slots = left(&d);
  if (!lua_checkstack(L, 8)) return bad(&d, "stack overflow"), -1;
  if (!getv(&d, &n)) return -1;
  if (n > left(&d) || n > 1000000) return bad(&d, "too many values"), -1;
  if (!lua_checkstack(L, (int)n + 8)) return bad(&d, "too many values"), -1;
  lua_settop(L, lua_gettop(L) + 3);   /* room for the context, refs, mts */
  d.ctx = lua_gettop(L) - 2, d.refs = d.ctx + 1, d.mts = d.ctx + 2;
  for (uint64_t i = 0; i < n; i++) {
    if (!dec_value(&d)) { lua_settop(L, d.ctx - 1); return -1; }
  }
  for (int i = 1; i < d.nmts; i += 2) {
    lua_rawgeti(L, d.mts, i);
    lua_rawgeti(L, d.mts, i + 1);
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
  }
  if (d.has_mts) cx_scratch_give(L, d.ctx, CTX_MTS, d.mts, d.nmts, 1);
  if (d.has_refs) cx_scratch_give(L, d.ctx, CTX_REFS, d.refs, d.nrefs, 1);
  lua_rotate(L, d.ctx, -3);   /* the values down, the three slots up */
  lua_pop(L, 3);
  *pos = (size_t)(d.p - m->data);
  return (int)n;
}
