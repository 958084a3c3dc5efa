/* Running one call inside a worker's Lua state. */
#ifndef FUTURES_TASK_H
#define FUTURES_TASK_H
#include "lua.h"
#include "msg.h"

/* Decodes the call in `call` (function, then arguments), runs it in L and
 * encodes the outcome into `out` (empty on entry).  Returns the outcome
 * kind (OUT_VALUES, OUT_ERROR or OUT_TRANSFER, see future.h); with
 * OUT_ERROR, *traceback is a malloc'd traceback string or NULL.  Never
 * raises; leaves L's stack as it found it. */
int task_run(lua_State *L, const tr_msg *call, tr_msg *out, char **traceback, int lightuserdata);
/* The same, its results' big arrays made into blobs by `slabs` (slab.h;
 * NULL: encoded as values).  task_run is this with slabs from malloc for a
 * thread worker (lightuserdata 1), none otherwise. */
struct slab_maker;
int task_run_slabs(lua_State *L, const tr_msg *call, tr_msg *out, char **traceback, int lightuserdata,
                   const struct slab_maker *slabs);

/* Stopping a running call (cancel(true), call_timeout): task_stop_arm
 * sets a hook on L that raises futures.CancelledError at every Lua
 * instruction, call and return, so a pcall in the call cannot keep it
 * running; task_stop_disarm removes it once the call has returned.  Arm
 * may be called from another thread or a signal handler while L runs, as
 * lua.c's Ctrl-C does (lua_sethook is made for that); never both at once. */
void task_stop_arm(lua_State *L);
void task_stop_disarm(lua_State *L);

/* Runs an initializer call the same way; returns 1 or 0 with a message. */
int task_init(lua_State *L, const tr_msg *call, char *err, size_t errlen, int lightuserdata);
#endif
