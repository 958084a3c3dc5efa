/* Value transfer: Lua values to bytes and back.
 *
 * DESIGN
 * One encoding serves both pools.  A message holds a varint count, then that
 * many values, each a tag byte and its payload:
 *
 *   NIL FALSE TRUE             no payload
 *   INT                        zigzag varint (the integer subtype is kept)
 *   FLT                        8 bytes, host order (pipes never leave the host)
 *   STR   len bytes            a string of 32 bytes or more gets a ref
 *   TABLE narr nhash           narr values, nhash key/value pairs, then the
 *                              metatable (a value, NIL for none); gets a ref
 *   REF   n                    the n-th ref'd value of this message again,
 *                              so shared tables, cycles and long strings
 *                              keep their shape
 *   LFUNC blob nups up...      a Lua function; gets a ref before its upvalues
 *                              so recursive functions keep their cycle.  Each
 *                              upvalue is ENV (bind to the receiver's
 *                              globals), JOIN f n (share upvalue n of the
 *                              function ref'd as f) or a value
 *   CFUNC module field         a C function found in package.loaded
 *   MODULE name                a loaded module, `require`d by the receiver
 *   LIGHTUD 8 bytes            threads only
 *
 * Code never sits in the bytes: a function names a blob (shared, refcounted
 * bytecode) in the message's attachment list.  Senders cache the blob per
 * closure and per dump content, so a function sent again costs a table
 * lookup; receivers cache the loaded closure per blob id when the function
 * has no upvalue but _ENV, and otherwise load a fresh closure from the blob.
 *
 * Arrays of numbers (and booleans) are the bulk of big messages: where
 * arraypart.c has verified Lua's table layout, the encoder reads runs of
 * them straight out of the array part and starts its walk of the other
 * keys after it, and the decoder writes them straight into the new table's
 * preallocated array part.  Everything else, and every table when the
 * check failed, goes through the public API.
 *
 * The decoder trusts nothing: every length is checked against the bytes
 * left (so a lying length cannot allocate more than the message holds),
 * nesting is bounded by TR_MAXDEPTH in both directions, and bytecode is
 * only loaded in binary mode from blobs.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "lauxlib.h"
#include "arraypart.h"
#include "transfer.h"

enum {
  T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TABLE, T_REF,
  T_LFUNC, T_CFUNC, T_MODULE, T_LIGHTUD,
  U_ENV = 0x20, U_JOIN = 0x21
};

#define REF_MINSTR 32
/* The codec's per-state context: one registry table, found by the address
 * of k_ctx (no string to intern on every call), whose slots hold the
 * caches and the reusable bookkeeping tables. */
static const char k_ctx;
enum {
  CTX_FNCACHE = 1,  /* closure -> blob (weak keys) */
  CTX_CODECACHE,    /* dump string -> blob (weak values) */
  CTX_LOADCACHE,    /* blob id -> loaded closure */
  CTX_NAMES,        /* C function or module -> name */
  CTX_NAMESSIG,     /* the signature of package.loaded it was built from */
  CTX_SEEN,         /* scratch tables (false while one is in use) */
  CTX_REFS,
  CTX_MTS,
  CTX_SLOTS = CTX_MTS
};
#define BLOB_MT "futures.blob"
#define LOADCACHE_MAX 1024

/* ---------------------------------------------------------------- varints */

int tr_put_varint(tr_msg *m, uint64_t v) {
  if (!msg_reserve(m, 10)) return 0;
  unsigned char *d = m->data + m->len;
  while (v >= 0x80) { *d++ = (unsigned char)(v | 0x80); v >>= 7; }
  *d++ = (unsigned char)v;
  m->len = (size_t)(d - m->data);
  return 1;
}

int tr_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 70 && *p < end; shift += 7) {
    unsigned char c = *(*p)++;
    r |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) { *v = r; return 1; }
  }
  return 0;
}

/* ------------------------------------------------------------ blob boxes */

static int blob_gc(lua_State *L) {
  tr_blob **bp = luaL_checkudata(L, 1, BLOB_MT);
  tr_blob_unref(*bp);
  *bp = NULL;
  return 0;
}

static void weak_table(lua_State *L, int ctx, int slot, const char *mode) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, mode);
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, ctx, slot);
}

/* Pushes the context, made on first use. */
static void push_ctx(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &k_ctx) == LUA_TTABLE) return;
  lua_pop(L, 1);
  luaL_checkstack(L, 4, NULL);
  lua_createtable(L, CTX_SLOTS, 0);
  int ctx = lua_gettop(L);
  for (int i = 1; i <= CTX_SLOTS; i++) { lua_pushboolean(L, 0); lua_rawseti(L, ctx, i); }
  weak_table(L, ctx, CTX_FNCACHE, "k");
  weak_table(L, ctx, CTX_CODECACHE, "v");
  lua_newtable(L);
  lua_rawseti(L, ctx, CTX_LOADCACHE);
  lua_pushvalue(L, ctx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &k_ctx);
}

void tr_open(lua_State *L) {
  ap_check(L);
  if (luaL_newmetatable(L, BLOB_MT)) {
    lua_pushcfunction(L, blob_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  push_ctx(L);
  lua_pop(L, 1);
}

/* ------------------------------------------------------- scratch tables */

/* The encoder's and decoder's bookkeeping tables are reused per state,
 * and only made when a message needs them (a call of one function and a
 * few numbers needs one, its result none).  A call takes one out of its
 * context slot (so an error midway leaves no dirty table behind, the next
 * call just makes a new one) and gives it back emptied.  A big one is left
 * to the collector instead. */
#define SCRATCH_MAX 256

static void scratch_take(lua_State *L, int ctx, int slot) {
  if (lua_rawgeti(L, ctx, slot) == LUA_TTABLE) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, ctx, slot);
  } else {
    lua_pop(L, 1);
    lua_createtable(L, 4, 4);
  }
}

/* Empties the table at idx (n entries: integer keys 1..n if `array`, else
 * any keys) and stores it back for the next call. */
static void scratch_give(lua_State *L, int ctx, int slot, int idx, int n, int array) {
  if (n > SCRATCH_MAX) return;
  if (array) {
    for (int i = 1; i <= n; i++) { lua_pushnil(L); lua_rawseti(L, idx, i); }
  } else {
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushnil(L);
      lua_rawset(L, idx);
    }
  }
  lua_pushvalue(L, idx);
  lua_rawseti(L, ctx, slot);
}

/* --------------------------------------------------------------- encoder */

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
  char *err;
  int elided;
  size_t room;  /* what the path may fill; the rest is kept for the label */
  int nups;     /* upvalue records in seen */
} enc;

/* The context in the reserved stack slot idx, put there on first use. */
static int ctx_in_slot(lua_State *L, int idx, int *has) {
  if (!*has) { push_ctx(L); lua_replace(L, idx); *has = 1; }
  return idx;
}

static int enc_ctx(enc *e) { return ctx_in_slot(e->L, e->ctx, &e->has_ctx); }

/* A value's key in seen: a string is known by its object, not its
 * contents, so a long string is not hashed just to be found again. */
static void push_seen_key(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) lua_pushlightuserdata(L, (void *)lua_topointer(L, idx));
  else lua_pushvalue(L, idx);
}

static int enc_seen(enc *e) {
  if (!e->has_seen) {
    lua_State *L = e->L;
    scratch_take(L, enc_ctx(e), CTX_SEEN);
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

/* Number bytes at d, which has room for 11: a float in 9 bytes, an
 * integer as a zigzag varint.  Return the end. */
static unsigned char *put_int_at(unsigned char *d, lua_Integer i) {
  uint64_t u = (uint64_t)i;
  u = (u << 1) ^ (uint64_t)-(int64_t)(u >> 63);
  *d++ = T_INT;
  while (u >= 0x80) { *d++ = (unsigned char)(u | 0x80); u >>= 7; }
  *d++ = (unsigned char)u;
  return d;
}

static unsigned char *put_flt_at(unsigned char *d, double x) {
  *d++ = T_FLT;
  memcpy(d, &x, 8);
  return d + 8;
}

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

/* Error text is built from the leaf outwards: the leaf writes " is a ...",
 * each enclosing level prepends its key. */
static int fail(enc *e, const char *fmt, const char *a) {
  snprintf(e->err, TR_ERRLEN, fmt, a);
  return 0;
}

/* A path too long to show keeps its leaf and loses its middle. */
static void prepend(enc *e, const char *s) {
  size_t n = strlen(s), have = strlen(e->err);
  if (have + n >= e->room) {
    if (e->elided) return;
    e->elided = 1;
    s = "...";
    n = 3;
  }
  memmove(e->err + n, e->err, have + 1);
  memcpy(e->err, s, n);
}

static int is_identifier(const char *s, size_t len) {
  if (len == 0 || len > 60 || !(s[0] == '_' || ((s[0] | 32) >= 'a' && (s[0] | 32) <= 'z')))
    return 0;
  for (size_t i = 1; i < len; i++)
    if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || ((s[i] | 32) >= 'a' && (s[i] | 32) <= 'z')))
      return 0;
  return 1;
}

/* Prepends "[3]", ".conn" or "[<table>]" for the key at stack index k;
 * as_key: the key itself failed, "(key [<table>])". */
static void prepend_key(enc *e, int k, int as_key) {
  lua_State *L = e->L;
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
    prepend(e, keybuf);
  } else {
    prepend(e, buf);
  }
}

static int enc_value(enc *e, int idx);

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

/* The reverse map of package.loaded: module table -> name, C function ->
 * {module, field}.  Rebuilt when package.loaded changes size, or when
 * forced (a C function it does not know may have been added since). */
static void names_push(lua_State *L, int ctx, int force) {
  lua_Integer sig = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_gettop(L);
  lua_pushnil(L);
  /* The signature of package.loaded: its size and the identity of every
   * module, so a module required again (a new table) is noticed too. */
  while (lua_next(L, loaded)) {
    sig = (lua_Integer)((lua_Unsigned)sig * 31 + (lua_Unsigned)(uintptr_t)lua_topointer(L, -1) + 1);
    lua_pop(L, 1);
  }
  lua_rawgeti(L, ctx, CTX_NAMESSIG);
  int fresh = !force && lua_isinteger(L, -1) && lua_tointeger(L, -1) == sig;
  lua_pop(L, 1);
  if (fresh && lua_rawgeti(L, ctx, CTX_NAMES) == LUA_TTABLE) {
    lua_remove(L, loaded);
    return;
  }
  if (fresh) lua_pop(L, 1);
  lua_newtable(L);
  int names = lua_gettop(L);
  luaL_checkstack(L, 8, NULL);
  lua_pushnil(L);
  while (lua_next(L, loaded)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE) {
      int mod = lua_gettop(L);
      lua_pushvalue(L, mod);
      if (lua_rawget(L, names) == LUA_TNIL) {
        lua_pushvalue(L, mod);
        lua_pushvalue(L, mod - 1);
        lua_rawset(L, names);
      }
      lua_pop(L, 1);
      lua_pushnil(L);
      while (lua_next(L, mod)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1)) {
          lua_pushvalue(L, -1);
          if (lua_rawget(L, names) == LUA_TNIL) {
            lua_pushvalue(L, -2);
            lua_createtable(L, 2, 0);
            lua_pushvalue(L, mod - 1);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, -5);
            lua_rawseti(L, -2, 2);
            lua_rawset(L, names);
          }
          lua_pop(L, 1);
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, names);
  lua_rawseti(L, ctx, CTX_NAMES);
  lua_pushinteger(L, sig);
  lua_rawseti(L, ctx, CTX_NAMESSIG);
  lua_remove(L, loaded);
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

static int enc_table(enc *e, int idx) {
  lua_State *L = e->L;
  if (name_of(e, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    put1(e, T_MODULE);
    putstr(e, s, len);
    lua_pop(L, 1);
    return 1;
  }
  lua_pop(L, 1);
  if (enc_ref(e, idx)) return 1;
  if (++e->depth > TR_MAXDEPTH) {
    snprintf(e->err, TR_ERRLEN, " is nested too deeply (more than %d levels)", TR_MAXDEPTH);
    return 0;
  }
  luaL_checkstack(L, 6, "value nested too deeply");
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  put1(e, T_TABLE);
  putv(e, (uint64_t)n);
  /* The pair count is patched in after the walk: a padded 5-byte varint. */
  static const unsigned char pad[5] = {0x80, 0x80, 0x80, 0x80, 0};
  size_t countpos = e->m->len;
  put(e, pad, 5);
  int top = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
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
      prepend_key(e, -1, 0);
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
    if (!enc_value(e, top - 1)) { lua_settop(L, top); prepend_key(e, top - 1, 1); return 0; }
    if (!enc_value(e, top)) { lua_settop(L, top); prepend_key(e, top - 1, 0); return 0; }
    pairs++;
    lua_pop(L, 1);
  }
  if (pairs >= ((uint64_t)1 << 35)) return fail(e, " has too many %s", "keys");
  unsigned char *d = e->m->data + countpos;
  for (int i = 0; i < 4; i++) d[i] = (unsigned char)(0x80 | ((pairs >> (7 * i)) & 0x7f));
  d[4] = (unsigned char)(pairs >> 28);
  if (lua_getmetatable(L, idx)) {
    if (!enc_value(e, lua_gettop(L))) { prepend(e, "(metatable)"); return 0; }
    lua_pop(L, 1);
  } else {
    put1(e, T_NIL);
  }
  e->depth--;
  return 1;
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  tr_msg *m = ud;
  if (!msg_reserve(m, sz)) return 1;
  msg_put(m, p, sz);
  return 0;
}

/* The shared blob of the Lua function at idx, through the two caches. */
static tr_blob *code_blob(enc *e, int idx) {
  lua_State *L = e->L;
  int ctx = enc_ctx(e);
  lua_rawgeti(L, ctx, CTX_FNCACHE);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    tr_blob *b = *(tr_blob **)lua_touserdata(L, -1);
    lua_pop(L, 2);
    return b;
  }
  lua_pop(L, 1);
  tr_msg dump;
  msg_init(&dump);
  lua_pushvalue(L, idx);
  int bad = lua_dump(L, dump_writer, &dump, 0);
  lua_pop(L, 1);
  if (bad) { msg_free(&dump); luaL_error(L, "not enough memory"); }
  lua_pushlstring(L, (const char *)dump.data, dump.len);
  msg_free(&dump);
  lua_rawgeti(L, ctx, CTX_CODECACHE);
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -2) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    tr_blob **bp = lua_newuserdatauv(L, sizeof *bp, 0);
    *bp = NULL;
    luaL_setmetatable(L, BLOB_MT);
    size_t len;
    const char *code = lua_tolstring(L, -3, &len);
    if (!(*bp = tr_blob_new(code, len))) luaL_error(L, "not enough memory");
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  /* stack: fncache, dump, codecache, box */
  lua_pushvalue(L, idx);
  lua_pushvalue(L, -2);
  lua_rawset(L, -6);
  tr_blob *b = *(tr_blob **)lua_touserdata(L, -1);
  lua_pop(L, 4);
  return b;
}

static int enc_function(enc *e, int idx) {
  lua_State *L = e->L;
  if (lua_iscfunction(L, idx)) {
    if (cfunction_name(e, idx) != LUA_TTABLE)
      return fail(e, " is a C function that is not in package.loaded%s", "");
    size_t len;
    put1(e, T_CFUNC);
    for (int i = 1; i <= 2; i++) {
      lua_rawgeti(L, -1, i);
      const char *s = lua_tolstring(L, -1, &len);
      putstr(e, s, len);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
  }
  if (enc_ref(e, idx)) return 1;
  /* A chain of closures recurses like nested tables do. */
  if (++e->depth > TR_MAXDEPTH) {
    snprintf(e->err, TR_ERRLEN, " is nested too deeply (more than %d levels)", TR_MAXDEPTH);
    return 0;
  }
  lua_Integer fref = e->nrefs;
  int bi = msg_add_blob(e->m, code_blob(e, idx));
  if (bi < 0) luaL_error(L, "not enough memory");
  lua_Debug ar;
  lua_pushvalue(L, idx);
  lua_getinfo(L, ">u", &ar);
  put1(e, T_LFUNC);
  putv(e, (uint64_t)bi);
  putv(e, ar.nups);
  luaL_checkstack(L, 4, "value nested too deeply");
  for (int i = 1; i <= ar.nups; i++) {
    const char *name = lua_getupvalue(L, idx, i);
    if (name && strcmp(name, "_ENV") == 0) { put1(e, U_ENV); lua_pop(L, 1); continue; }
    lua_pushlightuserdata(L, lua_upvalueid(L, idx, i));
    if (lua_rawget(L, enc_seen(e)) == LUA_TNUMBER) {
      lua_Integer at = lua_tointeger(L, -1);
      put1(e, U_JOIN);
      putv(e, (uint64_t)(at >> 8));
      putv(e, (uint64_t)(at & 0xff));
      lua_pop(L, 2);
      continue;
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, lua_upvalueid(L, idx, i));
    lua_pushinteger(L, fref * 256 + i);
    lua_rawset(L, enc_seen(e));
    e->nups++;
    if (!enc_value(e, lua_gettop(L))) {
      char buf[80];
      snprintf(buf, sizeof buf, "(upvalue %.60s)", name && *name ? name : "?");
      prepend(e, buf);
      return 0;
    }
    lua_pop(L, 1);
  }
  e->depth--;
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
    case LUA_TTABLE: return enc_table(e, idx);
    case LUA_TFUNCTION: return enc_function(e, idx);
    case LUA_TLIGHTUSERDATA:
      if (!e->o->lightuserdata)
        return fail(e, " is a light userdata (only thread pools can pass %s)", "those");
      {
        void *p = lua_touserdata(L, idx);
        put1(e, T_LIGHTUD);
        put(e, &p, sizeof p);
      }
      return 1;
    case LUA_TUSERDATA: {
      const char *tn = "userdata";
      if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) tn = lua_tostring(L, -1);
      snprintf(e->err, TR_ERRLEN, " is a userdata (%.60s)", tn);
      return 0;
    }
    case LUA_TTHREAD: return fail(e, " is a %s", "coroutine");
    default: return fail(e, " is a %s", luaL_typename(L, idx));
  }
}

int tr_encode(lua_State *L, int first, int n, tr_msg *m, const tr_opts *o, char err[TR_ERRLEN]) {
  first = lua_absindex(L, first);
  luaL_checkstack(L, 8, NULL);
  enc e = {0};
  e.L = L, e.m = m, e.o = o, e.err = err, e.room = TR_ERRLEN - 80;
  err[0] = '\0';
  lua_settop(L, lua_gettop(L) + 3);   /* room for the context, seen, names */
  e.ctx = lua_gettop(L) - 2, e.seen = e.ctx + 1, e.names = e.ctx + 2;
  putv(&e, (uint64_t)n);
  for (int k = 0; k < n; k++) {
    if (!enc_value(&e, first + k)) {
      char label[64];
      int num = k + 1 - (o->first_is_function ? 1 : 0);
      if (o->first_is_function && k == 0) snprintf(label, sizeof label, "function");
      else snprintf(label, sizeof label, o->label ? o->label : "value #%d", num);
      if (err[0] == '.' && err[1] != '.') memmove(err, err + 1, strlen(err));
      e.room = TR_ERRLEN - 1;  /* the label always shows */
      if (err[0] != ' ') prepend(&e, ": ");
      prepend(&e, label);
      lua_settop(L, e.ctx - 1);
      return 0;
    }
  }
  if (e.has_seen) scratch_give(L, e.ctx, CTX_SEEN, e.seen, e.nrefs + e.nups, 0);
  lua_settop(L, e.ctx - 1);
  return 1;
}

/* --------------------------------------------------------------- decoder */

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

static lua_Integer unzigzag(uint64_t v) {
  return (lua_Integer)((v >> 1) ^ (uint64_t)-(int64_t)(v & 1));
}

/* Pushes the value of ref r (1 <= r <= nrefs). */
static void push_ref(dec *d, uint64_t r) {
  if (d->has_refs) lua_rawgeti(d->L, d->refs, (lua_Integer)r);
  else lua_pushvalue(d->L, d->refs);
}

static int dec_ctx(dec *d) { return ctx_in_slot(d->L, d->ctx, &d->has_ctx); }

static void add_ref(dec *d) {
  lua_State *L = d->L;
  if (d->nrefs == 0) {
    lua_pushvalue(L, -1);
    lua_replace(L, d->refs);
    d->nrefs = 1;
    return;
  }
  if (!d->has_refs) {
    scratch_take(L, dec_ctx(d), CTX_REFS);
    lua_pushvalue(L, d->refs);
    lua_rawseti(L, -2, 1);
    lua_replace(L, d->refs);
    d->has_refs = 1;
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, d->refs, ++d->nrefs);
}

/* Names in a message are not NUL-terminated: printed with "%.*s". */
static int shown(size_t len) { return len > 60 ? 60 : (int)len; }

/* Pushes package.loaded[name], requiring it if needed. */
static int push_module(dec *d, const char *name, size_t len) {
  lua_State *L = d->L;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushlstring(L, name, len);
  if (lua_rawget(L, -2) != LUA_TNIL) { lua_remove(L, -2); return 1; }
  lua_pop(L, 2);
  lua_getglobal(L, "require");
  lua_pushlstring(L, name, len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    snprintf(d->err, TR_ERRLEN, "cannot load module '%.*s' here: %.150s", shown(len), name,
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error");
    lua_pop(L, 1);
    return 0;
  }
  return 1;
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

static int dec_table(dec *d) {
  lua_State *L = d->L;
  uint64_t narr, nhash;
  if (++d->depth > TR_MAXDEPTH) return bad(d, "nested too deeply");
  if (!lua_checkstack(L, 6)) return bad(d, "nested too deeply");
  if (!getv(d, &narr) || !getv(d, &nhash)) return 0;
  /* Every array slot takes at least a byte of the message and every pair
   * two, nested tables included, so the slots of all the tables of an
   * honest message add up to no more than its length: lying counts cannot
   * make nested tables preallocate more than that. */
  if (narr > d->slots || nhash > (d->slots - narr) / 2) return bad(d, "table larger than the message");
  d->slots -= narr + 2 * nhash;
  lua_createtable(L, narr > (1 << 24) ? (1 << 24) : (int)narr, nhash > (1 << 24) ? (1 << 24) : (int)nhash);
  add_ref(d);
  int t = lua_gettop(L);
  for (uint64_t i = 1; i <= narr; i++) {
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
      scratch_take(L, dec_ctx(d), CTX_MTS);
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

/* Loads the blob as a fresh closure, or reuses the cached one. */
static int load_blob(dec *d, tr_blob *b, int cached) {
  lua_State *L = d->L;
  if (cached) {
    lua_rawgeti(L, dec_ctx(d), CTX_LOADCACHE);
    if (lua_rawgeti(L, -1, (lua_Integer)b->id) == LUA_TFUNCTION) {
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 1);
  }
  if (luaL_loadbufferx(L, b->code, b->len, "=(transferred function)", "b") != LUA_OK) {
    snprintf(d->err, TR_ERRLEN, "malformed message: bad function code (%.120s)",
             lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    lua_pop(L, cached ? 2 : 1);
    return 0;
  }
  if (cached) {
    /* The cache is a plain table of bounded size: dropped when full. */
    lua_getfield(L, -2, "n");
    lua_Integer count = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    if (count > LOADCACHE_MAX) {
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawseti(L, dec_ctx(d), CTX_LOADCACHE);
      lua_replace(L, -3);
      count = 1;
    }
    lua_pushinteger(L, count);
    lua_setfield(L, -3, "n");
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, (lua_Integer)b->id);
    lua_remove(L, -2);
  }
  return 1;
}

static int dec_function(dec *d) {
  lua_State *L = d->L;
  uint64_t bi, nups;
  if (!getv(d, &bi) || !getv(d, &nups)) return 0;
  if (bi >= (uint64_t)d->m->nblobs) return bad(d, "function code index out of range");
  if (nups > 255 || nups > left(d)) return bad(d, "bad upvalue count");
  if (++d->depth > TR_MAXDEPTH) return bad(d, "nested too deeply");
  int only_env = 1;
  for (uint64_t i = 0; i < nups; i++)
    if (d->p[i] != U_ENV) { only_env = 0; break; }
  if (!load_blob(d, d->m->blobs[bi], only_env)) return 0;
  int f = lua_gettop(L);
  lua_Debug ar;
  lua_pushvalue(L, f);
  lua_getinfo(L, ">u", &ar);
  if (ar.nups != nups) return bad(d, "upvalue count does not match the code");
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
    case T_CFUNC: {
      const char *field;
      size_t flen;
      if (!get_str(d, &s, &len) || !get_str(d, &field, &flen)) return 0;
      if (!push_module(d, s, len)) return 0;
      if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushlstring(L, field, flen);
        lua_rawget(L, -2);
        lua_remove(L, -2);
      }
      if (!lua_iscfunction(L, -1)) {
        snprintf(d->err, TR_ERRLEN, "function %.*s.%.*s is not loaded here",
                 shown(len), s, shown(flen), field);
        return 0;
      }
      return 1;
    }
    case T_MODULE:
      if (!get_str(d, &s, &len)) return 0;
      return push_module(d, s, len);
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

int tr_decode(lua_State *L, const tr_msg *m, size_t *pos, int lightuserdata, char err[TR_ERRLEN]) {
  dec d = {0};
  d.L = L, d.m = m, d.p = m->data, d.end = m->data + m->len, d.lightuserdata = lightuserdata;
  d.err = err;
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
  if (d.has_mts) scratch_give(L, d.ctx, CTX_MTS, d.mts, d.nmts, 1);
  if (d.has_refs) scratch_give(L, d.ctx, CTX_REFS, d.refs, d.nrefs, 1);
  lua_rotate(L, d.ctx, -3);   /* the values down, the three slots up */
  lua_pop(L, 3);
  *pos = (size_t)(d.p - m->data);
  return (int)n;
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
