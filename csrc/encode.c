/* The encoder: Lua values to the bytes of codec.h's format.
 *
 * One recursive walk, enc_value, over the values; it never raises for a
 * value that cannot cross (that fails the walk, and paths.c says where) but
 * may raise memory errors, which is why a message must be owned by
 * something collectable.  Its bookkeeping sits in three reserved stack
 * slots, each filled only when first needed: the codec context, `seen`
 * (value -> ref number, the first value held there itself until a second
 * makes it a table) and the name map.
 *
 * Arrays of numbers (and booleans) are the bulk of big messages: where
 * arraypart.c has verified Lua's table layout, runs of them are read
 * straight out of the array part, and the walk of the other keys starts
 * after it.  Everything else, and every table when the check failed, goes
 * through the public API. */
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "arraypart.h"
#include "slab.h"
#include "codec.h"

const luax_class tr_shared_class = {"futures.shared", NULL};

#define ENC_UPS 16

typedef struct enc {
  lua_State *L;
  tr_msg *m;
  const tr_opts *o;
  int ctx;    /* stack index of the context (nil until first needed) */
  int seen;   /* stack index: value -> ref number; upvalue id -> fref*256+n.
               * Nil until the first value that may be shared, which then
               * sits there itself until a second one makes it a table */
  int has_ctx, has_seen;
  int names;  /* stack index of the name map (nil until first needed) */
  int names_ready;  /* 1: looked up, 2: rebuilt during this encode */
  int nrefs;
  int depth;
  int nups;     /* upvalue records in seen */
  /* The first upvalues met, by id, kept here rather than in seen: a call
   * of one closure with a few upvalues then needs no table at all. */
  struct { void *id; lua_Integer at; } ups[ENC_UPS];
  int nups_inline;
  int const_root;   /* encoding a constant's own blob: its root is a table */
  const slab_maker *slabs;   /* tr_opts.slabs, NULL inside a constant */
  tr_path path;
} enc;

static int enc_ctx(enc *e) { return cx_in_slot(e->L, e->ctx, &e->has_ctx); }

/* A value's key in seen: a string is known by its object, not its
 * contents, so a long string is not hashed just to be found again. */
static void push_seen_key(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) lua_pushlightuserdata(L, (void *)lua_topointer(L, idx));
  else lua_pushvalue(L, idx);
}

static int enc_seen(enc *e) {
  if (!e->has_seen) {
    lua_State *L = e->L;
    cx_scratch_take(L, enc_ctx(e), CTX_SEEN);
    if (e->nrefs == 1) {   /* the first value, kept in the slot so far */
      push_seen_key(L, e->seen);
      lua_pushinteger(L, 1);
      lua_rawset(L, -3);
    }
    lua_replace(L, e->seen);
    e->has_seen = 1;
  }
  return e->seen;
}

static void put(enc *e, const void *p, size_t n) {
  if (!msg_reserve(e->m, n)) luaL_error(e->L, "not enough memory");
  msg_put(e->m, p, n);
}
static void put1(enc *e, int tag) { unsigned char c = (unsigned char)tag; put(e, &c, 1); }
static void putv(enc *e, uint64_t v) {
  if (!tr_put_varint(e->m, v)) luaL_error(e->L, "not enough memory");
}
static void putstr(enc *e, const char *s, size_t len) { putv(e, len); put(e, s, len); }

static unsigned char *room(enc *e, size_t n) {
  if (e->m->cap - e->m->len < n && !msg_reserve(e->m, n)) luaL_error(e->L, "not enough memory");
  return e->m->data + e->m->len;
}

/* Writes the number at idx; returns 1.  Shared by enc_value and the
 * array loop. */
static int put_number(enc *e, int idx) {
  unsigned char *d = room(e, 11);
  if (lua_isinteger(e->L, idx)) d = put_int_at(d, lua_tointeger(e->L, idx));
  else d = put_flt_at(d, lua_tonumber(e->L, idx));
  e->m->len = (size_t)(d - e->m->data);
  return 1;
}

/* Writes slots i.. of the table at idx, up to n, straight from its array
 * part while they hold numbers, booleans or nil; returns the first slot
 * not written.  Room is made for a whole run of up to RUN slots at once
 * (11 bytes each at most; what a run leaves unwritten is never touched),
 * so a big array grows the message once instead of doubling it many
 * times. */
#define RUN (1 << 20)
static lua_Integer put_scalars(enc *e, int idx, lua_Integer i, lua_Integer n) {
  size_t len;
  const ap_slot *a = ap_array(e->L, idx, &len);
  if (!a) return i;
  if ((lua_Integer)len < n) n = (lua_Integer)len;
  while (i <= n) {
    lua_Integer stop = n - i < RUN ? n : i + RUN - 1;
    unsigned char *d = room(e, (size_t)(stop - i + 1) * 11);
    for (; i <= stop; i++) {
      const ap_slot *s = &a[i - 1];
      if (s->tt == AP_FLT) d = put_flt_at(d, s->v.n);
      else if (s->tt == AP_INT) d = put_int_at(d, s->v.i);
      else if (s->tt == AP_TRUE) *d++ = T_TRUE;
      else if (s->tt == AP_FALSE) *d++ = T_FALSE;
      else if (AP_ISNIL(s->tt)) *d++ = T_NIL;
      else break;
    }
    e->m->len = (size_t)(d - e->m->data);
    if (i <= stop) break;
  }
  return i;
}

static int enc_value(enc *e, int idx);

/* Sends slots 1..n of the table at idx as one slab, if they are all in its
 * array part and hold numbers, booleans or nil; returns whether it did. */
static int put_slab(enc *e, int idx, lua_Integer n) {
  size_t len;
  const ap_slot *a = ap_array(e->L, idx, &len);
  if (!a || (lua_Integer)len < n) return 0;
  tr_blob *b = e->slabs->make(e->slabs->ctx, a, (size_t)n);
  if (!b) return 0;
  int bi = msg_add_blob(e->m, b);
  tr_blob_unref(b);   /* the message holds it now */
  if (bi < 0) luaL_error(e->L, "not enough memory");
  put1(e, T_SLAB);
  putv(e, (uint64_t)bi);
  return 1;
}

/* Looks v up in the ref table: emits REF and returns 1 if seen, else
 * assigns it the next ref number and returns 0. */
static int enc_ref(enc *e, int idx) {
  lua_State *L = e->L;
  if (!e->has_seen && e->nrefs == 0) {   /* the first: no table needed yet */
    lua_pushvalue(L, idx);
    lua_replace(L, e->seen);
    e->nrefs = 1;
    return 0;
  }
  lua_Integer r = 0;
  if (!e->has_seen && lua_rawequal(L, idx, e->seen)) {
    r = 1;
  } else {
    int seen = enc_seen(e);
    push_seen_key(L, idx);
    if (lua_rawget(L, seen) == LUA_TNUMBER) r = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (!r) {
      push_seen_key(L, idx);
      lua_pushinteger(L, ++e->nrefs);
      lua_rawset(L, seen);
      return 0;
    }
  }
  put1(e, T_REF);
  putv(e, (uint64_t)r);
  return 1;
}

/* Whether enc_ref has numbered the value at idx already. */
static int is_seen(enc *e, int idx) {
  lua_State *L = e->L;
  if (!e->has_seen) return e->nrefs == 1 && lua_rawequal(L, idx, e->seen);
  push_seen_key(L, idx);
  int seen = lua_rawget(L, e->seen) == LUA_TNUMBER;
  lua_pop(L, 1);
  return seen;
}

/* Pushes the name-map entry for the value at idx (nil if none). */
static int name_of(enc *e, int idx) {
  if (!e->names_ready) {
    names_push(e->L, enc_ctx(e), 0);
    lua_replace(e->L, e->names);
    e->names_ready = 1;
  }
  lua_pushvalue(e->L, idx);
  return lua_rawget(e->L, e->names);
}

/* A C function's name, rebuilding a map that may be stale once. */
static int cfunction_name(enc *e, int idx) {
  if (name_of(e, idx) == LUA_TTABLE || e->names_ready == 2) return lua_type(e->L, -1);
  lua_pop(e->L, 1);
  names_push(e->L, enc_ctx(e), 1);
  lua_replace(e->L, e->names);
  e->names_ready = 2;
  lua_pushvalue(e->L, idx);
  return lua_rawget(e->L, e->names);
}

/* Writes tag and the {module, field} of the name-map entry at idx. */
static void put_field(enc *e, int tag, int entry) {
  put1(e, tag);
  for (int i = 1; i <= 2; i++) {
    size_t len;
    lua_rawgeti(e->L, entry, i);
    const char *s = lua_tolstring(e->L, -1, &len);
    putstr(e, s, len);
    lua_pop(e->L, 1);
  }
}

static int too_deep(enc *e) {
  snprintf(e->path.err, TR_ERRLEN, " is nested too deeply (more than %d levels)", TR_MAXDEPTH);
  return 0;
}

static int enc_value(enc *e, int idx);

/* Encodes the constant table at idx into a blob of its own (see
 * codec.h), leaving it on top in a box; NULL with the error in the path
 * if something in it cannot cross. */
static tr_blob *const_build(enc *e, int idx, int consts) {
  lua_State *L = e->L;
  luaL_checkstack(L, 8, "value nested too deeply");
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);   /* being encoded: met again inside, it is copied */
  lua_rawset(L, consts);
  tr_msg *m = cs_push_msg(L);
  int box = lua_gettop(L);
  static const unsigned char head[CONST_HEAD];
  enc c = {0};
  c.L = L, c.m = m, c.o = e->o, c.path = e->path, c.depth = e->depth, c.const_root = 1;
  put(&c, head, sizeof head);
  lua_settop(L, box + 3);
  c.ctx = box + 1, c.seen = box + 2, c.names = box + 3;
  putv(&c, 1);
  int ok = enc_value(&c, idx);
  e->path = c.path;
  if (ok && c.has_seen) cx_scratch_give(L, c.ctx, CTX_SEEN, c.seen, c.nrefs + c.nups, 0);
  lua_settop(L, box);
  tr_blob *b = NULL;
  if (ok) {
    b = tr_blob_new((const char *)m->data, m->len);
    if (!b || !tr_blob_set_deps(b, m->blobs, m->nblobs)) {
      tr_blob_unref(b);
      luaL_error(L, "not enough memory");
    }
    uint64_t pid = cs_pid();
    memcpy(b->code, &pid, 8);
    memcpy(b->code + 8, &b->id, 8);
    msg_free(m);
    lua_pop(L, 1);
    cx_push_blob(L, b);
    tr_blob_unref(b);   /* the box holds it now */
    lua_rawgeti(L, enc_ctx(e), CTX_CONSTBYID);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, (lua_Integer)b->id);
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    lua_pushboolean(L, 0);   /* still marked, still not encoded */
  }
  lua_pushvalue(L, idx);
  lua_pushvalue(L, -2);
  lua_rawset(L, consts);
  if (!ok) lua_pop(L, 1);
  return b;
}

/* A table marked by futures.constant: CONST and its blob, made at the
 * first send.  Returns -1 for a table that is no constant (or one being
 * encoded: it is copied where it meets itself), else what the walk
 * returns. */
static int enc_const(enc *e, int idx) {
  lua_State *L = e->L;
  lua_rawgeti(L, enc_ctx(e), CTX_CONSTS);
  int consts = lua_gettop(L);
  lua_pushvalue(L, idx);
  int t = lua_rawget(L, consts);
  tr_blob *b = NULL;
  if (t == LUA_TUSERDATA) {
    b = *(tr_blob **)lua_touserdata(L, -1);
  } else if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    if (!(b = const_build(e, idx, consts))) { lua_settop(L, consts - 1); return 0; }
  }
  if (!b) { lua_settop(L, consts - 1); return -1; }
  int ci = msg_add_blob(e->m, b);
  if (ci < 0) luaL_error(L, "not enough memory");
  put1(e, T_CONST);
  putv(e, (uint64_t)ci);
  putv(e, (uint64_t)b->ndeps);
  for (int i = 0; i < b->ndeps; i++) {
    int di = msg_add_blob(e->m, b->deps[i]);
    if (di < 0) luaL_error(L, "not enough memory");
    putv(e, (uint64_t)di);
  }
  lua_settop(L, consts - 1);
  return 1;
}

/* A table: a module goes by name, and so does a metatable (as_mt) that a
 * loaded module holds (a class: geom.Vec), so that what the receiver gets
 * has the receiver's own geom.Vec; any other is copied.  The class name's
 * ref is kept under its map entry, apart from the table's own: the class
 * sent as a plain value is still a copy, whichever comes first.  That the
 * module still holds the class is checked once per message. */
static int enc_table(enc *e, int idx, int as_mt) {
  lua_State *L = e->L;
  int named = name_of(e, idx);
  if (named == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    put1(e, T_MODULE);
    putstr(e, s, len);
    lua_pop(L, 1);
    return 1;
  }
  int entry = lua_gettop(L);
  if (as_mt && named == LUA_TTABLE && (is_seen(e, entry) || names_is_field(L, entry, idx))) {
    if (!enc_ref(e, entry)) put_field(e, T_MTFIELD, entry);
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  if (enc_ref(e, idx)) return 1;
  if (e->const_root) {
    e->const_root = 0;
  } else if (cs_any()) {
    int c = enc_const(e, idx);
    if (c >= 0) return c;
  }
  if (++e->depth > TR_MAXDEPTH) return too_deep(e);
  luaL_checkstack(L, 6, "value nested too deeply");
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  put1(e, T_TABLE);
  putv(e, (uint64_t)n);
  /* The pair count is patched in after the walk: a padded 5-byte varint. */
  static const unsigned char pad[5] = {0x80, 0x80, 0x80, 0x80, 0};
  size_t countpos = e->m->len;
  put(e, pad, 5);
  int top = lua_gettop(L);
  lua_Integer first = e->slabs && n >= SLAB_MIN && n <= SLAB_MAX && put_slab(e, idx, n) ? n + 1 : 1;
  for (lua_Integer i = first; i <= n; i++) {
    if ((i = put_scalars(e, idx, i, n)) > n) break;
    if (lua_rawgeti(L, idx, i) == LUA_TNUMBER && put_number(e, top + 1)) {
      lua_pop(L, 1);   /* a number past the array part (or with direct
                        * access off): no dispatch */
      continue;
    }
    if (!enc_value(e, top + 1)) {
      /* A failure leaves what it pushed: drop it before pushing, or the
       * unwinding of a deep value would outgrow the checked stack. */
      lua_settop(L, top);
      lua_pushinteger(L, i);
      path_key(&e->path, L, -1, 0);
      return 0;
    }
    lua_pop(L, 1);
  }
  /* The other keys.  A walk from a key of the array part skips the
   * slots before it, so with direct access it starts at the last slot
   * sent: a table without other keys costs one lua_next. */
  uint64_t pairs = 0;
  size_t len;
  if (!ap_array(L, idx, &len) || len == 0 || n == 0) lua_pushnil(L);
  else lua_pushinteger(L, n < (lua_Integer)len ? n : (lua_Integer)len);
  while (lua_next(L, idx)) {
    if (lua_isinteger(L, -2)) {
      lua_Integer k = lua_tointeger(L, -2);
      if (k >= 1 && k <= n) { lua_pop(L, 1); continue; }
    }
    top = lua_gettop(L);
    if (!enc_value(e, top - 1)) { lua_settop(L, top); path_key(&e->path, L, top - 1, 1); return 0; }
    if (!enc_value(e, top)) { lua_settop(L, top); path_key(&e->path, L, top - 1, 0); return 0; }
    pairs++;
    lua_pop(L, 1);
  }
  if (pairs >= ((uint64_t)1 << 35)) return path_fail(&e->path, " has too many %s", "keys");
  unsigned char *d = e->m->data + countpos;
  for (int i = 0; i < 4; i++) d[i] = (unsigned char)(0x80 | ((pairs >> (7 * i)) & 0x7f));
  d[4] = (unsigned char)(pairs >> 28);
  if (lua_getmetatable(L, idx)) {
    if (!enc_table(e, lua_gettop(L), 1)) { path_step(&e->path, "(metatable)"); return 0; }
    lua_pop(L, 1);
  } else {
    put1(e, T_NIL);
  }
  e->depth--;
  return 1;
}

/* Where the upvalue with this id was first met (fref*256+n), or 0. */
static lua_Integer upvalue_seen(enc *e, void *id) {
  for (int k = 0; k < e->nups_inline; k++)
    if (e->ups[k].id == id) return e->ups[k].at;
  if (e->nups == 0) return 0;
  lua_pushlightuserdata(e->L, id);
  lua_Integer at = lua_rawget(e->L, e->seen) == LUA_TNUMBER ? lua_tointeger(e->L, -1) : 0;
  lua_pop(e->L, 1);
  return at;
}

static void upvalue_add(enc *e, void *id, lua_Integer at) {
  if (e->nups_inline < ENC_UPS) {
    e->ups[e->nups_inline].id = id;
    e->ups[e->nups_inline++].at = at;
    return;
  }
  lua_pushlightuserdata(e->L, id);
  lua_pushinteger(e->L, at);
  lua_rawset(e->L, enc_seen(e));
  e->nups++;
}

static int enc_function(enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_iscfunction(L, idx)) {
    if (cfunction_name(e, idx) != LUA_TTABLE)
      return path_fail(&e->path, " is a C function that is not in package.loaded%s", "");
    put_field(e, T_CFUNC, lua_gettop(L));
    lua_pop(L, 1);
    return 1;
  }
  if (enc_ref(e, idx)) return 1;
  /* A chain of closures recurses like nested tables do. */
  if (++e->depth > TR_MAXDEPTH) return too_deep(e);
  lua_Integer fref = e->nrefs;
  int bi = msg_add_blob(e->m, fn_blob(L, enc_ctx(e), idx));
  if (bi < 0) luaL_error(L, "not enough memory");
  int nups = fn_nups(L, idx);
  put1(e, T_LFUNC);
  putv(e, (uint64_t)bi);
  putv(e, (uint64_t)nups);
  luaL_checkstack(L, 4, "value nested too deeply");
  for (int i = 1; i <= nups; i++) {
    const char *name = lua_getupvalue(L, idx, i);
    if (name && name[0] == '_' && strcmp(name, "_ENV") == 0) { put1(e, U_ENV); lua_pop(L, 1); continue; }
    void *id = lua_upvalueid(L, idx, i);
    lua_Integer at = upvalue_seen(e, id);
    if (at) {
      put1(e, U_JOIN);
      putv(e, (uint64_t)(at >> 8));
      putv(e, (uint64_t)(at & 0xff));
      lua_pop(L, 1);
      continue;
    }
    upvalue_add(e, id, fref * 256 + i);
    int top = lua_gettop(L);
    if (!enc_value(e, top)) {
      lua_settop(L, top - 1);   /* as in enc_table: keep the unwinding flat */
      path_upvalue(&e->path, L, idx, i, name);
      return 0;
    }
    lua_pop(L, 1);
  }
  e->depth--;
  return 1;
}

/* A queue: by reference, the message holding the blob (and so the object)
 * until it is freed.  No ref number: the receiver keeps one value per
 * object anyway. */
static int enc_shared(enc *e, tr_blob *b) {
  if (e->o->lightuserdata && !b->kind->threads)
    return path_fail(&e->path, " is a %s of the parent process (it cannot cross to this process's threads)",
                     b->kind->name);
  int bi = msg_add_blob(e->m, b);
  if (bi < 0) luaL_error(e->L, "not enough memory");
  put1(e, T_SHARED);
  putv(e, (uint64_t)bi);
  return 1;
}

static int enc_value(enc *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put1(e, T_NIL); return 1;
    case LUA_TBOOLEAN: put1(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); return 1;
    case LUA_TNUMBER: return put_number(e, idx);
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (len >= REF_MINSTR && enc_ref(e, idx)) return 1;
      put1(e, T_STR);
      putstr(e, s, len);
      return 1;
    }
    case LUA_TTABLE: return enc_table(e, idx, 0);
    case LUA_TFUNCTION: return enc_function(e, idx);
    case LUA_TLIGHTUSERDATA:
      if (!e->o->lightuserdata)
        return path_fail(&e->path, " is a light userdata (only thread pools can pass %s)", "those");
      {
        void *p = lua_touserdata(L, idx);
        put1(e, T_LIGHTUD);
        put(e, &p, sizeof p);
      }
      return 1;
    case LUA_TUSERDATA: {
      tr_blob **shared = luax_toudata(L, idx, &tr_shared_class);
      if (shared && *shared) return enc_shared(e, *shared);
      const char *tn = "userdata";
      if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) tn = lua_tostring(L, -1);
      snprintf(e->path.err, TR_ERRLEN, " is a userdata (%.60s)", tn);
      return 0;
    }
    case LUA_TTHREAD: return path_fail(&e->path, " is a %s", "coroutine");
    default: return path_fail(&e->path, " is a %s", luaL_typename(L, idx));
  }
}

int tr_encode(lua_State *L, int first, int n, tr_msg *m, const tr_opts *o, char err[TR_ERRLEN]) {
  first = lua_absindex(L, first);
  luaL_checkstack(L, 8, NULL);
  enc e = {0};
  e.L = L, e.m = m, e.o = o, e.path.err = err, e.path.room = PATH_ROOM, e.slabs = o->slabs;
  err[0] = '\0';
  lua_settop(L, lua_gettop(L) + 3);   /* room for the context, seen, names */
  e.ctx = lua_gettop(L) - 2, e.seen = e.ctx + 1, e.names = e.ctx + 2;
  putv(&e, (uint64_t)n);
  for (int k = 0; k < n; k++) {
    if (!enc_value(&e, first + k)) {
      path_label(&e.path, o, k);
      lua_settop(L, e.ctx - 1);
      return 0;
    }
  }
  if (e.has_seen) cx_scratch_give(L, e.ctx, CTX_SEEN, e.seen, e.nrefs + e.nups, 0);
  lua_settop(L, e.ctx - 1);
  return 1;
}

/* A message of one string, built without a Lua state (failure reasons). */
int tr_encode_string(tr_msg *m, const char *s, size_t len) {
  if (!tr_put_varint(m, 1) || !msg_reserve(m, 1)) return 0;
  unsigned char tag = T_STR;
  msg_put(m, &tag, 1);
  if (!tr_put_varint(m, len) || !msg_reserve(m, len)) return 0;
  msg_put(m, s, len);
  return 1;
}
