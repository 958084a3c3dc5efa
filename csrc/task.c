/* Running one call inside a worker's Lua state: decode the function and
 * its arguments, call it under a message handler that keeps the original
 * error value and records a traceback, encode what came out.  Everything
 * happens inside lua_pcall, so a memory error or a value that cannot cross
 * becomes the future's failure, never a crash or a lost result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "luax.h"
#include "outcome.h"
#include "slab.h"
#include "task.h"
#include "transfer.h"

typedef struct run_ctx {
  const tr_msg *call;
  tr_msg *out;
  int outcome;
  int lightuserdata;
  const slab_maker *slabs;
  char *traceback;   /* set by msgh */
} run_ctx;

/* The call this thread is running, for its message handler: one per
 * thread at a time (a worker runs its calls one after the other).
 * Initial-exec: static TLS, read without a __tls_get_addr call.  The
 * sanitizer runtimes up to GCC 13 misread a dynamic TLS block that malloc
 * happens to place 16 bytes into a page (google/sanitizers#1322): TSan then
 * dies resetting terabytes of shadow, LSan scans garbage. */
static _Thread_local run_ctx *running __attribute__((tls_model("initial-exec")));

static int tostring_meta(lua_State *L) {
  return luaL_callmeta(L, 1, "__tostring");
}

static int msgh(lua_State *L) {
  /* Never lua_tostring on slot 1: it would turn a number error into a
   * string in place, and the error value must cross unchanged. */
  const char *msg = NULL;
  int t = lua_type(L, 1);
  if (t == LUA_TSTRING) msg = lua_tostring(L, 1);
  else if (t == LUA_TNUMBER) msg = luaL_tolstring(L, 1, NULL);
  if (!msg) {
    /* Protected: a __tostring that raises must not replace the error
     * value ("error in error handling"), only go without a message. */
    lua_pushcfunction(L, tostring_meta);
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  free(running->traceback);
  running->traceback = strdup(lua_tostring(L, -1));   /* NULL if out of memory: no traceback */
  lua_settop(L, 1);
  return 1;
}

static void out_text(run_ctx *c, int outcome, const char *text) {
  msg_free(c->out);
  tr_encode_string(c->out, text, strlen(text));
  c->outcome = outcome;
}

static int run_protected(lua_State *L) {
  run_ctx *c = lua_touserdata(L, 1);
  char err[TR_ERRLEN];
  size_t pos = 0;
  lua_pushcfunction(L, msgh);   /* 2 */
  int n = tr_decode(L, c->call, &pos, c->lightuserdata, err);
  if (n < 1) { out_text(c, OUT_TRANSFER, n < 0 ? err : "empty call"); return 0; }
  if (lua_pcall(L, n - 1, LUA_MULTRET, 2) == LUA_OK) {
    tr_opts o = {c->lightuserdata, "result #%d", 0, c->slabs};
    if (tr_encode(L, 3, lua_gettop(L) - 2, c->out, &o, err)) c->outcome = OUT_VALUES;
    else out_text(c, OUT_TRANSFER, err);
  } else {
    tr_opts o = {c->lightuserdata, "the error value", 0, NULL};
    if (tr_encode(L, 3, 1, c->out, &o, err)) c->outcome = OUT_ERROR;
    else out_text(c, OUT_TRANSFER, err);
  }
  return 0;
}

int task_run(lua_State *L, const tr_msg *call, tr_msg *out, char **traceback, int lightuserdata) {
  return task_run_slabs(L, call, out, traceback, lightuserdata, lightuserdata ? &slab_local : NULL);
}

int task_run_slabs(lua_State *L, const tr_msg *call, tr_msg *out, char **traceback, int lightuserdata,
                   const slab_maker *slabs) {
  int top = lua_gettop(L);
  run_ctx c = {call, out, OUT_TRANSFER, lightuserdata, slabs, NULL};
  run_ctx *outer = running;
  running = &c;
  *traceback = NULL;
  lua_pushcfunction(L, run_protected);
  lua_pushlightuserdata(L, &c);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *e = lua_tostring(L, -1);
    out_text(&c, OUT_TRANSFER, e ? e : "error while passing values");
  }
  running = outer;
  if (c.outcome == OUT_ERROR) *traceback = c.traceback;
  else free(c.traceback);
  lua_settop(L, top);
  return c.outcome;
}

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  luax_error(L, LUAX_CANCELLED, "the call was stopped");
}

void task_stop_arm(lua_State *L) {
  lua_sethook(L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void task_stop_disarm(lua_State *L) { lua_sethook(L, NULL, 0, 0); }

int task_init(lua_State *L, const tr_msg *call, char *err, size_t errlen, int lightuserdata) {
  tr_msg out;
  char *tb;
  msg_init(&out);
  int outcome = task_run(L, call, &out, &tb, lightuserdata);
  if (outcome != OUT_VALUES) {
    /* The reason, as text: the traceback's first line, or the transfer error. */
    size_t pos = 0;
    char derr[TR_ERRLEN];
    const char *why = tb;
    if (!why && tr_decode(L, &out, &pos, 0, derr) == 1) why = lua_tostring(L, -1);
    if (!why) why = "(no message)";
    size_t len = strcspn(why, "\n");   /* the message, not the traceback */
    snprintf(err, errlen, "the initializer failed: %.*s", (int)len, why);
    lua_settop(L, 0);
  }
  free(tb);
  msg_free(&out);
  return outcome == OUT_VALUES;
}
