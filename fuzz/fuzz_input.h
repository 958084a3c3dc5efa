/* The fuzz input format, shared by the target and the seed generator.
 *
 *   byte 0        flags: FUZZ_BLOB attaches one code blob, FUZZ_LUD lets
 *                 light userdata decode (as in a thread pool)
 *   FUZZ_BLOB:    byte 1 picks the blob: the lua_dump of the first value
 *                 returned by fuzz_functions[byte 1 % FUZZ_NFUNCTIONS]
 *   FUZZ_QUEUE:   a queue's blob is attached too (after the code blob)
 *   the rest      the message bytes: one or more encoded messages, back
 *                 to back (the target decodes up to FUZZ_ROUNDS of them)
 *
 * Blob code is real lua_dump output, never input bytes: Lua does not check
 * binary chunks (its manual says so), and its undump allocates whatever
 * sizes garbage bytecode claims before reading them, so raw input as code
 * fuzzes Lua, not this decoder (it runs out of memory within a minute).
 */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H
#include <string.h>
#include "lauxlib.h"
#define FUZZ_BLOB 0x01
#define FUZZ_LUD 0x02
#define FUZZ_QUEUE 0x04
#define FUZZ_ROUNDS 4

/* Chunks whose first result is the function sent; the seeds send all their
 * results.  Same chunk name on both sides, so the dumps are identical. */
static const char *const fuzz_functions[] = {
  "local up = {1} return function(a) return up[1] + a end",
  "local function f(n) if n < 1 then return 0 end return f(n - 1) + 1 end return f",
  "local n = 0 local fs = {} for i = 1, 3 do fs[i] = function() n = n + i return n end end"
  " return fs[1], fs, fs[2]",
  "return function(x) return print, tostring(x) end",
  "local mt = {} mt.__index = function(t, k) return k end mt.__gc = tostring"
  " return mt.__index, setmetatable({}, mt), setmetatable({}, setmetatable({}, {__mode = 'k'}))",
  "local a, b, c = 1, 'two', {3} return function() a = a + 1 return a, b, c end",
  "return function() end",
};
#define FUZZ_NFUNCTIONS ((int)(sizeof fuzz_functions / sizeof *fuzz_functions))
#define FUZZ_CHUNKNAME "=fuzz"

/* Pushes the results of fuzz_functions[i]; returns how many, or -1 with
 * the error message on the stack. */
static inline int fuzz_push_function(lua_State *L, int i) {
  int top = lua_gettop(L);
  const char *src = fuzz_functions[i];
  if (luaL_loadbufferx(L, src, strlen(src), FUZZ_CHUNKNAME, "t") != LUA_OK ||
      lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK)
    return -1;
  return lua_gettop(L) - top;
}
#endif
