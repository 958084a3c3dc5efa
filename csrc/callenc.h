/* The codec's short cut for a submitted call: a Lua function whose
 * upvalues are _ENV or scalars, and scalar arguments.  Declared here,
 * beside transfer.h, for the executors' submit. */
#ifndef FUTURES_CALLENC_H
#define FUTURES_CALLENC_H
#include "lua.h"
#include "msg.h"

/* The `n` values from `first` (the function, then its arguments), the
 * very bytes tr_encode would append to m, without its set-up: returns 1,
 * or 0 with m untouched for values of other kinds (tr_encode takes them
 * then, and says why any cannot cross).  Off with the scalar short cuts
 * (tr_scalar_enable).  Raises on OOM (m must be owned by something
 * collectable). */
int tr_encode_call(lua_State *L, int first, int n, tr_msg *m);
#endif
