/* Value transfer: copies Lua values out of one state into a message and
 * back into another state.  Both pools use it: thread workers decode the
 * message directly, process workers receive it over a pipe.  This is the
 * codec's public face; its files share codec.h among themselves. */
#ifndef FUTURES_TRANSFER_H
#define FUTURES_TRANSFER_H
#include "lua.h"
#include "luax.h"
#include "msg.h"

/* The family of userdata that cross by reference (futures.Queue): a
 * userdata of a child class of it starts with a tr_blob * (NULL once
 * finalized) whose kind is set; the receiver gets kind->push's value. */
extern const luax_class tr_shared_class;

#define TR_MAXDEPTH 2000
/* Room for any error: an encode path is cut to a few hundred bytes, but
 * a module the receiver cannot load reports require's whole message, one
 * line for every file it tried. */
#define TR_ERRLEN 4096

typedef struct tr_opts {
  int lightuserdata;    /* may light userdata cross? (threads only) */
  const char *label;    /* printf format naming value #k: "argument #%d" */
  int first_is_function;/* value #1 is the task's function: "function" */
  const struct slab_maker *slabs;   /* big arrays of numbers may go as
                         * slabs (slab.h), made so; NULL: never */
} tr_opts;

/* Appends a varint count and `n` values from the stack, starting at index
 * `first`, to `m`.  Never raises for a value that cannot cross: returns 0
 * and writes "argument #2: [3].conn is a userdata (FILE*)" into err.
 * May raise memory errors; `m` must be owned by something collectable. */
int tr_encode(lua_State *L, int first, int n, tr_msg *m, const tr_opts *o,
              char err[TR_ERRLEN]);

/* Pushes the values of `m` starting at byte offset *pos; returns how many,
 * or -1 with a message in err when the bytes are malformed or a named
 * module or function cannot be found.  Runs Lua code only to `require`
 * modules named in the message.  Caller ensures protection from raises. */
int tr_decode(lua_State *L, const tr_msg *m, size_t *pos, int lightuserdata,
              char err[TR_ERRLEN]);

/* Appends a message of one string value, without a Lua state; 0 on OOM. */
int tr_encode_string(tr_msg *m, const char *s, size_t len);

/* A message of one scalar (boolean, number, string), the bytes tr_encode
 * would write, without its set-up (scalar.c): appends it to the empty m
 * and returns 1, or returns 0 for a value of another type (m untouched).
 * Raises on OOM (m must be owned by something collectable). */
int tr_encode_scalar(lua_State *L, int idx, tr_msg *m);
/* Pushes the value of m if m is a message of one scalar and returns 1;
 * otherwise 0 with nothing pushed (tr_decode reads it then). */
int tr_decode_scalar(lua_State *L, const tr_msg *m);
/* Turns both short cuts off (they then return 0) or on: a test hook. */
void tr_scalar_enable(int on);
int tr_scalar_enabled(void);

/* futures.constant(t) -> t, marked to cross to each receiving state once
 * (the module's function, see consts.c). */
int tr_constant(lua_State *L);

/* Per-state caches used by the codec (registry tables); opened by core. */
void tr_open(lua_State *L);
#endif
