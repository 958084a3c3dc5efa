/* Suspending a coroutine spawned by futures.spawn at a library wait.
 *
 * Every blocking call of the library asks susp_current() first: in a
 * spawned coroutine that can yield there, it registers a wake-up (the
 * record's job: a waiter posts it when its futures are done, the timer
 * when the deadline passes) and yields through susp_wait; elsewhere it
 * blocks the thread.  The owner runs the job from its next blocking call
 * or poll(), which resumes the coroutine; the call's continuation then
 * checks its condition again.  This file knows neither futures nor what a
 * call waits for; spawn.c makes the records and completes their futures.
 */
#ifndef FUTURES_SUSPEND_H
#define FUTURES_SUSPEND_H
#include "fut.h"
#include "lua.h"
#include "owner.h"

typedef struct susp susp_t;

/* What the spawner is told when the coroutine ends: st is lua_resume's
 * status (LUA_OK: its values are on co's stack; else its error value). */
typedef void (*susp_ended_fn)(lua_State *L, susp_t *s, lua_State *co, int st);

/* The record's size: it lives in memory its spawner provides. */
size_t susp_size(void);
/* Makes a record in mem, susp_size() zeroed bytes inside the userdata at
 * ud_idx (the spawner's value), with a new coroutine running the function at
 * the top (popped), kept in user value uv of that userdata, which stays
 * anchored until the coroutine ends.  o is L's owner. */
susp_t *susp_new(lua_State *L, owner_t *o, int ud_idx, int uv, void *mem, susp_ended_fn ended);
/* From the userdata's __gc: lets go of what the record holds. */
void susp_free(void *mem);
/* The spawner's userdata, pushed. */
void susp_push_ud(lua_State *L, susp_t *s);
/* Starts or resumes the coroutine with the nargs values at the top of L
 * (moved to it); returns when it waits, yields or ends. */
void susp_resume(lua_State *L, susp_t *s, int nargs);

/* The record of L if L is a spawned coroutine that may yield here (raises
 * CancelledError if its future was cancelled meanwhile), else NULL. */
susp_t *susp_current(lua_State *L);
/* Yields L until the record's job is posted (its wake-up) or the absolute
 * deadline passes (< 0: none); k(L, LUA_YIELD, ctx) continues the call
 * with its stack as it was.  Never returns: `return susp_wait(...)`. */
int susp_wait(lua_State *L, susp_t *s, double deadline, lua_KContext ctx, lua_KFunction k);
/* The job a waiter posts to wake the record's coroutine. */
owner_job *susp_wake_job(susp_t *s);
/* The common wait on one future, with no waiter to allocate: the record's
 * own watch node wakes it when f completes (unlinked when it resumes).
 * 0 if f is done already.  f must stay referenced until then. */
int susp_watch(susp_t *s, fut_t *f);
/* Asks the coroutine to raise CancelledError at its wait (now, or at its
 * next one); from the owner's thread. */
void susp_cancel(susp_t *s);
/* At least how often a call waiting for something that posts no wake-up
 * (an executor's workers leaving) looks again, in seconds. */
#define SUSP_RECHECK 0.005
#endif
