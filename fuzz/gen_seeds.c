/* Writes the seed corpus of decode_fuzz: real messages made by tr_encode
 * from a few Lua values, one file each, in the format of fuzz_input.h.
 * A seed that sends a function sends one of fuzz_functions, whose dump is
 * the blob the target attaches.
 * Usage: gen_seeds DIR   (`make fuzz-seeds` rewrites fuzz/corpus/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "lualib.h"
#include "queueobj.h"
#include "transfer.h"
#include "fuzz_input.h"

typedef struct seed {
  const char *name;
  int lud;       /* values include light userdata (passed as ...) */
  int twice;     /* two messages back to back (the load cache is hit) */
  int fn;        /* >= 0: the values are the results of fuzz_functions[fn] */
  const char *code;  /* otherwise: returns the values */
  int queue;     /* a queue is passed to code (after the light userdata) */
} seed;

static const seed seeds[] = {
  {"scalars", 0, 0, -1,
   "return nil, true, false, 0, -1, 63, -64, 8191, math.maxinteger, math.mininteger,"
   " 1.5, 0/0, -0.0, 1/0, -1/0", 0},
  {"strings", 0, 0, -1,
   "local long = string.rep('0123456789', 4)"
   " return '', 'short', 'a\\0b', long, long, {long, [long] = long}", 0},
  {"tables", 0, 0, -1,
   "local t = {1, 2, 3, nil, 5, x = {y = {z = 1}}, [true] = 'b', [1.5] = 'f', [-3] = 0}"
   " t.self = t; t.x.up = t; return t, t.x", 0},
  {"keys", 0, 0, -1, "local k = {} return {[k] = k, [{}] = {}, [{1}] = {[k] = 1}}", 0},
  {"class", 0, 0, -1,
   "local C = {} C.__index = C C[1] = setmetatable({}, C)"
   " return {setmetatable({x = 1}, C), setmetatable({2}, C), C}", 0},
  {"named", 0, 0, -1, "return string, math, _G, math.sqrt, string.format, print, {table.insert}", 0},
  {"deep", 0, 0, -1, "local t = {} for i = 1, 60 do t = {t, d = i} end return t", 0},
  {"many", 0, 0, -1,
   "local t = {} for i = 1, 200 do t[i] = i % 7 == 0 and {i} or i * 1.5 end"
   " return table.unpack(t)", 0},
  {"bighash", 0, 0, -1, "local t = {} for i = 1, 300 do t['k' .. i] = i end return t", 0},
  {"lightud", 1, 0, -1, "return ..., {p = ...}", 0},
  {"closure", 0, 0, 0, NULL, 0},
  {"recursive", 0, 0, 1, NULL, 0},
  {"shared", 0, 0, 2, NULL, 0},
  {"envonly", 0, 1, 3, NULL, 0},
  {"metatable", 0, 0, 4, NULL, 0},
  {"upvalues", 0, 1, 5, NULL, 0},
  {"empty", 0, 0, 6, NULL, 0},
  {"mtfield", 0, 0, -1,
   "local t = {} for i = 1, 3 do t[i] = setmetatable({i}, package.preload) end"
   " return t, setmetatable({}, package.searchers), package.preload", 0},
  {"queue", 0, 0, -1, "local _, q = ... return q, {q, [q] = 1}, 'after'", 1},
};

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  if (!msg_reserve(ud, sz)) return 1;
  msg_put(ud, p, sz);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s DIR\n", argv[0]); return 2; }
  int failed = 0;
  for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
    const seed *s = &seeds[i];
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    tr_open(L);
    if (s->fn >= 0) {
      if (fuzz_push_function(L, s->fn) < 0) { fprintf(stderr, "%s: %s\n", s->name, lua_tostring(L, -1)); return 1; }
    } else {
      if (luaL_loadstring(L, s->code) != LUA_OK) { fprintf(stderr, "%s: %s\n", s->name, lua_tostring(L, -1)); return 1; }
      lua_pushlightuserdata(L, (void *)s);
      if (s->queue) {
        tr_blob *qb = queueobj_new_blob(0);
        if (!qb || !qb->kind->push(L, qb)) { fprintf(stderr, "%s: no queue\n", s->name); return 1; }
        tr_blob_unref(qb);   /* the Queue holds it */
      }
      if (lua_pcall(L, 1 + s->queue, LUA_MULTRET, 0) != LUA_OK) { fprintf(stderr, "%s: %s\n", s->name, lua_tostring(L, -1)); return 1; }
    }
    int n = lua_gettop(L);
    tr_msg m;
    msg_init(&m);
    char err[TR_ERRLEN];
    tr_opts o = {s->lud, "value #%d", 0};
    for (int k = 0; k < (s->twice ? 2 : 1); k++) {
      if (!tr_encode(L, 1, n, &m, &o, err)) { fprintf(stderr, "%s: %s\n", s->name, err); return 1; }
    }
    if (m.nblobs != (s->fn >= 0) + s->queue) { fprintf(stderr, "%s: %d blobs\n", s->name, m.nblobs); failed = 1; }
    if (s->fn >= 0) {  /* the target attaches its own dump: it must be this one */
      tr_msg code;
      msg_init(&code);
      lua_pushvalue(L, 1);
      lua_dump(L, dump_writer, &code, 0);
      lua_pop(L, 1);
      if (code.len != m.blobs[0]->len || memcmp(code.data, m.blobs[0]->code, code.len) != 0) {
        fprintf(stderr, "%s: the blob is not the dump of the first result\n", s->name);
        failed = 1;
      }
      msg_free(&code);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%02zu-%s", argv[1], i, s->name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return 1; }
    unsigned char flags = (unsigned char)((s->fn >= 0 ? FUZZ_BLOB : 0) | (s->lud ? FUZZ_LUD : 0) |
                                          (s->queue ? FUZZ_QUEUE : 0));
    fputc(flags, f);
    if (s->fn >= 0) fputc(s->fn, f);
    fwrite(m.data, 1, m.len, f);
    if (fclose(f) != 0) { perror(path); return 1; }
    printf("%s: %zu bytes, %d blob(s)\n", path, m.len, m.nblobs);
    msg_free(&m);
    lua_close(L);
  }
  return failed;
}
