/* The Lua Future object: a userdata around a C future (fut.h). */
#ifndef FUTURES_FUTURE_H
#define FUTURES_FUTURE_H
#include "fut.h"
#include "lua.h"

#define FUTURE_MT "futures.Future"

typedef struct future_box {
  fut_t *f;     /* NULL once finalized */
  int single;   /* user value 1 is the one returned value, not a table */
  void (*fin)(void *extra);   /* future_push_new_ext's, or NULL */
} future_box;

/* Pushes a new, pending Lua Future (raises on OOM).  mt: the stack index
 * of the Future metatable where the caller has it at hand (an upvalue),
 * or 0. */
future_box *future_push_new(lua_State *L, int mt);
/* The same with `extra` bytes for the caller after the box (future_extra)
 * and user value FUTURE_EXTRA_UV, its own; the Future's __gc runs
 * fin(extra).  One allocation for a Future and what makes it (a spawned
 * coroutine's record). */
#define FUTURE_EXTRA_UV 3
future_box *future_push_new_ext(lua_State *L, int mt, size_t extra, void (*fin)(void *));
void *future_extra(future_box *b);
/* Pushes the Future metatable (for a function that keeps it at hand). */
void future_push_class(lua_State *L);
/* The C future of the Future at idx; raises if it is not one. */
fut_t *future_check(lua_State *L, int idx);
/* Completes the Future at idx with the n values at the top (popped): the
 * values returned, or with `failed` one error value (and its traceback,
 * or NULL).  For outcomes made in this state: set_result, a TransferError
 * of the arguments, a spawned coroutine.  Dropped if it is done already. */
void future_finish_local(lua_State *L, int idx, int n, int failed, const char *traceback);
void future_open(lua_State *L);   /* core.Future into the module table at -1 */
#endif
