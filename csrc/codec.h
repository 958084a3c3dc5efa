/* The codec's private header: what its files share.  The rest of the
 * library sees only transfer.h.
 *
 *   codecctx.c  the per-state context: caches and scratch tables
 *   encode.c    values to bytes          decode.c  bytes to values
 *   funcs.c     code blobs: dump, load   names.c   package.loaded names
 *   paths.c     where a value that cannot cross sits ("argument #2: [3].conn")
 *
 * THE FORMAT
 * A message holds a varint count, then that many values, each a tag byte
 * and its payload:
 *
 *   NIL FALSE TRUE             no payload
 *   INT                        zigzag varint (the integer subtype is kept)
 *   FLT                        8 bytes, host order (pipes never leave the host)
 *   STR   len bytes            a string of REF_MINSTR bytes or more gets a ref
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
 *   MTFIELD module field       a metatable found as a table field of a
 *                              loaded module (a class); gets a ref
 *   CONST blob n dep...        a table marked by futures.constant: blob holds
 *                              its encoding, encoded once; dep are this
 *                              message's indices of the n blobs that encoding
 *                              refers to by its own numbers 0..n-1; gets a ref
 *   SHARED blob                a shared object (a queue): the message's blob
 *                              of that index, of a kind (msg.h), whose push
 *                              makes the receiver's value; by reference
 *   SLAB blob                  only as a table's first array value: all
 *                              narr slots are the slab (slab.h) of that
 *                              blob index, whose length is narr
 *
 * A constant's blob: the 8-byte pid and 8-byte blob id (host order) of the
 * process and blob it was first encoded into, then a message of one value,
 * the table.  Receivers decode it once per blob id and state; a state gets
 * its own marked table back, not a copy, when the origin is its own.
 *
 * Both sides number refs in the same order, so a ref is never written out.
 */
#ifndef FUTURES_CODEC_H
#define FUTURES_CODEC_H
#include <stdint.h>
#include <string.h>
#include "lua.h"
#include "transfer.h"

enum {
  T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TABLE, T_REF,
  T_LFUNC, T_CFUNC, T_MODULE, T_LIGHTUD, T_MTFIELD, T_CONST, T_SHARED, T_SLAB,
  U_ENV = 0x20, U_JOIN = 0x21
};
#define REF_MINSTR 32   /* shorter strings are cheaper to send again */

/* Writers of a number's bytes at d, which has room (11 bytes: a float in 9,
 * an integer as a zigzag varint after its tag); each returns the end.  The
 * encoder and the scalar short cut (scalar.c) write through these, the
 * decoders read integers back with unzigzag. */
static inline unsigned char *put_int_at(unsigned char *d, lua_Integer i) {
  uint64_t u = (uint64_t)i;
  *d++ = T_INT;
  return tr_varint_at(d, (u << 1) ^ (uint64_t)-(int64_t)(u >> 63));
}

static inline unsigned char *put_flt_at(unsigned char *d, double x) {
  *d++ = T_FLT;
  memcpy(d, &x, 8);
  return d + 8;
}

/* The bytes of the nil, boolean, number or string at idx at d, which has
 * room (11 bytes, or a string's length and 10); returns the end
 * (scalar.c).  The scalar and call short cuts write through it. */
unsigned char *put_scalar_at(lua_State *L, int idx, unsigned char *d);

static inline lua_Integer unzigzag(uint64_t v) {
  return (lua_Integer)((v >> 1) ^ (uint64_t)-(int64_t)(v & 1));
}

/* ------------------------------------------------------------ codecctx.c */

/* Slots of the per-state context table. */
enum {
  CTX_FNCACHE = 1,  /* closure -> blob (weak keys) */
  CTX_CODECACHE,    /* dump string -> blob (weak values) */
  CTX_LOADCACHE,    /* blob id -> loaded closure */
  CTX_NAMES,        /* C function or module -> name */
  CTX_NAMESSIG,     /* the signature of package.loaded it was built from */
  CTX_SEEN,         /* scratch tables (false while one is in use) */
  CTX_REFS,
  CTX_MTS,
  CTX_PROTOBLOB,    /* prototype address -> blob box, its keeper its user value (bounded) */
  CTX_ANCHOR,       /* the context's ref and C memory (codecctx.c) */
  CTX_FACTORY,      /* blob id -> its entry: closure factory, kept closure (bounded, funcs.c) */
  CTX_CONSTS,       /* constant table -> false, true (being encoded), blob (weak keys) */
  CTX_CONSTBYID,    /* origin blob id -> the constant of this state (weak values) */
  CTX_CONSTCACHE,   /* blob id -> the decoded constant (bounded) */
  CTX_SLOTS = CTX_CONSTCACHE
};
#define BLOB_MT "futures.blob"   /* a full userdata holding one tr_blob ref */

/* The context in the reserved stack slot idx, put there on first use
 * (*has says whether it is there yet). */
int cx_in_slot(lua_State *L, int idx, int *has);
void cx_push(lua_State *L);   /* pushes it */
/* The C memory of the context at ctx: CX_FRONT_BYTES, zeroed when made,
 * for funcs.c's front slots; found without a table lookup. */
#define CX_FRONT_BYTES 1024
void *cx_front(lua_State *L, int ctx);
/* Takes a scratch table out of its slot (or makes one) onto the stack. */
void cx_scratch_take(lua_State *L, int ctx, int slot);
/* Empties the scratch table at idx (n entries: keys 1..n if `array`, else
 * any keys) and gives it back. */
void cx_scratch_give(lua_State *L, int ctx, int slot, int idx, int n, int array);

/* Pushes a new full userdata holding a ref to b (BLOB_MT). */
void cx_push_blob(lua_State *L, tr_blob *b);
/* Stores the value on top as t[id] of the bounded cache in ctx slot
 * `slot` (emptied when full), leaving the value on top. */
/* Pushes the bounded cache table in ctx slot `slot`, counting one more
 * entry; when full it is replaced by an empty one (returns 1 then). */
int cx_cache_room(lua_State *L, int ctx, int slot);
void cx_cache_put(lua_State *L, int ctx, int slot, uint64_t id);

/* -------------------------------------------------------------- consts.c */

#define CONST_HEAD 16   /* pid, origin id */
#define CONSTMSG_MT "futures.constmsg"   /* a full userdata holding a tr_msg */

/* Whether any table was ever marked constant in this process: while none
 * was, the encoder looks none up. */
int cs_any(void);
void cs_mark_any(void);
uint64_t cs_pid(void);
/* Pushes a new, empty message owned by a full userdata. */
tr_msg *cs_push_msg(lua_State *L);
void cs_open(lua_State *L);

/* --------------------------------------------------------------- paths.c */

/* An encode error being built in err, from the leaf outwards. */
typedef struct tr_path {
  char *err;
  size_t room;  /* what the path may fill; the rest is kept for the label */
  int elided;   /* the middle was cut: nothing more is prepended */
  int head;     /* err starts with a head (a function's upvalue) */
} tr_path;

/* What a path may fill of err: a long one is cut to about this. */
#define PATH_ROOM 240

int path_fail(tr_path *p, const char *fmt, const char *a);   /* returns 0 */
void path_prepend(tr_path *p, const char *s);
void path_step(tr_path *p, const char *s);
void path_key(tr_path *p, lua_State *L, int k, int as_key);
/* Upvalue i (named name) of the Lua function at stack index f failed. */
void path_upvalue(tr_path *p, lua_State *L, int f, int i, const char *name);
void path_label(tr_path *p, const tr_opts *o, int k);

/* --------------------------------------------------------------- names.c */

/* Pushes the reverse map of package.loaded (module -> name, C function
 * or table field -> {module, field}) kept in ctx, rebuilt if
 * package.loaded changed or if `force`. */
void names_push(lua_State *L, int ctx, int force);
/* Pushes package.loaded[name], requiring it if needed; 0 with err set. */
int names_push_module(lua_State *L, const char *name, size_t len, char *err);
/* The name under which package.loaded holds the value at idx ("work"
 * for a global, "job.work" for a field of module job) into buf; 0 if
 * none.  Slow: for error messages. */
int names_global(lua_State *L, int idx, char *buf, size_t size);
/* Pushes package.loaded[mod][field] if it is a C function (a table if
 * `metatable`); 0 with err set. */
int names_push_field(lua_State *L, const char *mod, size_t mlen, const char *field, size_t flen,
                     int metatable, char *err);
/* Whether the value at idx is still what the map entry at `entry`
 * ({module, field}) names: a module's field may have been replaced. */
int names_is_field(lua_State *L, int entry, int idx);

/* --------------------------------------------------------------- funcs.c */

/* The shared blob of the Lua function at idx (cached per prototype, or
 * per closure, and per dump); raises memory errors. */
tr_blob *fn_blob(lua_State *L, int ctx, int idx);
/* The upvalue count of the Lua function at idx. */
int fn_nups(lua_State *L, int idx);
/* Pushes the closure of the code of b for a function with no upvalue but
 * _ENV: one per blob id and state, shared by all calls.  0 with err set
 * if the code does not load. */
int fn_load(lua_State *L, int ctx, const tr_blob *b, char *err);
/* For a function with upvalues: pushes a fresh closure of b's code (its
 * upvalues are for the caller to set) and returns 2, or, for code that
 * cannot change its upvalues (proto.h, pr_pure), may push its entry and
 * return 1; 0 with err set if the code does not load.  An entry makes
 * fresh closures (fn_fresh) and keeps one whose upvalues are set
 * (fn_keep), to be given again (fn_kept pushes it, or nothing, returning
 * 0) to a call that brings the same scalar values: it cannot be told
 * from a fresh one but by its identity, as the shared closure of a
 * function with no upvalue but _ENV.  `missed`: a kept one was not the
 * same; code whose values keep changing is soon given fresh closures
 * only. */
int fn_entry(lua_State *L, int ctx, const tr_blob *b, char *err);
void fn_fresh(lua_State *L, int e);
int fn_kept(lua_State *L, int e);
void fn_keep(lua_State *L, int ctx, const tr_blob *b, int e, int f, int missed);

#endif
