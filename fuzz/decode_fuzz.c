/* libFuzzer target over tr_decode: bytes from a worker process must be
 * checked before use, so no input may crash the decoder (docs/reference.md: malformed
 * input is a BrokenProcessPool error, never a crash).
 *
 * Each input (format in fuzz_input.h) becomes a tr_msg, optionally with
 * one code blob (always real lua_dump output: see fuzz_input.h), and is
 * decoded inside lua_pcall in a fresh state with the
 * standard libraries and the codec's caches.  What decodes must also encode
 * and decode again in the same state: an encoder/decoder disagreement
 * aborts.  The state cannot reach the file system or the process (no io,
 * os or debug; empty package paths), so a decoded finalizer that runs at
 * lua_close cannot do harm.
 *
 * Build and run: `make fuzz` (FUZZ_SECONDS, default 60).  Replay one case:
 * build-fuzz/decode_fuzz build-fuzz/crash-...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "lualib.h"
#include "queueobj.h"
#include "transfer.h"
#include "fuzz_input.h"

#define MSG_MT "fuzz.msg"

typedef struct fuzz_case {
  const tr_msg *m;
  int lud;
} fuzz_case;

static void die(const char *what, const char *err) {
  fprintf(stderr, "decode_fuzz: %s: %s\n", what, err);
  abort();
}

static int msg_gc(lua_State *L) {
  msg_free(luaL_checkudata(L, 1, MSG_MT));
  return 0;
}

/* A message owned by the state, so that a raise cannot leak it. */
static tr_msg *new_msg(lua_State *L) {
  tr_msg *m = lua_newuserdatauv(L, sizeof *m, 0);
  msg_init(m);
  if (luaL_newmetatable(L, MSG_MT)) {
    lua_pushcfunction(L, msg_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return m;
}

static void check_err(const char *err) {
  size_t n = strnlen(err, TR_ERRLEN);
  if (n == 0 || n == TR_ERRLEN) die("failure without a message", n ? "(unterminated)" : "");
}

static int run(lua_State *L) {
  const fuzz_case *c = lua_touserdata(L, 1);
  char err[TR_ERRLEN];
  size_t pos = 0;
  lua_settop(L, 0);
  for (int round = 0; round < FUZZ_ROUNDS && pos < c->m->len; round++) {
    int base = lua_gettop(L);
    size_t before = pos;
    int n = tr_decode(L, c->m, &pos, c->lud, err);
    if (n < 0) {
      check_err(err);
      if (lua_gettop(L) != base) die("stack not restored after a failure", err);
      if (pos != before) die("position moved after a failure", err);
      break;
    }
    if (lua_gettop(L) != base + n) die("decode pushed a wrong count", "");
    if (pos <= before || pos > c->m->len) die("decode position out of range", "");

    tr_msg *again = new_msg(L);
    tr_opts o = {c->lud, "value #%d", 0};
    if (tr_encode(L, base + 1, n, again, &o, err)) {
      if (lua_gettop(L) != base + n + 1) die("encode changed the stack", "");
      size_t p2 = 0;
      int n2 = tr_decode(L, again, &p2, c->lud, err);
      if (n2 < 0) die("what decoded and encoded does not decode again", err);
      if (n2 != n || p2 != again->len) die("re-decode disagrees", "");
    } else {
      check_err(err);
    }
    lua_settop(L, base);
  }
  return 0;
}

/* A fresh state that can neither touch files nor end the process. */
static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  tr_open(L);
  static const char *const unsafe[] = {"io", "os", "debug"};
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  for (size_t i = 0; i < sizeof unsafe / sizeof *unsafe; i++) {
    lua_pushnil(L);
    lua_setfield(L, -2, unsafe[i]);
    lua_pushnil(L);
    lua_setglobal(L, unsafe[i]);
  }
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  return L;
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  if (!msg_reserve(ud, sz)) return 1;
  msg_put(ud, p, sz);
  return 0;
}

/* The blobs the input may pick from: real dumps, made once; and a queue. */
static tr_blob *blobs[FUZZ_NFUNCTIONS];
static tr_blob *queue_blob;

static void make_blobs(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  for (int i = 0; i < FUZZ_NFUNCTIONS; i++) {
    if (fuzz_push_function(L, i) < 1) die("fuzz function", lua_tostring(L, -1));
    tr_msg code;
    msg_init(&code);
    lua_settop(L, 1);
    if (!lua_isfunction(L, 1) || lua_dump(L, dump_writer, &code, 0) != 0) die("fuzz function", "no dump");
    if (!(blobs[i] = tr_blob_new((const char *)code.data, code.len))) abort();
    msg_free(&code);
    lua_settop(L, 0);
  }
  lua_close(L);
  if (!(queue_blob = queueobj_new_blob(0))) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (!blobs[0]) make_blobs();
  if (size < 1) return 0;
  int flags = data[0];
  data++, size--;
  tr_msg m;
  msg_init(&m);
  if (flags & FUZZ_BLOB) {
    if (size < 1) return 0;
    if (msg_add_blob(&m, blobs[data[0] % FUZZ_NFUNCTIONS]) < 0) abort();
    data++, size--;
  }
  if ((flags & FUZZ_QUEUE) && msg_add_blob(&m, queue_blob) < 0) abort();
  if (!msg_reserve(&m, size)) abort();
  msg_put(&m, data, size);

  fuzz_case c = {&m, (flags & FUZZ_LUD) != 0};
  lua_State *L = new_state();
  lua_pushcfunction(L, run);
  lua_pushlightuserdata(L, &c);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    /* Only memory errors may escape the codec. */
    const char *e = lua_tostring(L, -1);
    if (!e || !strstr(e, "not enough memory")) die("raised", e ? e : "(not a string)");
  }
  lua_close(L);
  msg_free(&m);
  return 0;
}
