/* MPIPoolExecutor on the other ranks: serve rank 0's calls until STOP.
 *
 * What a process worker does over its pipes (procworker.c), over MPI
 * messages from and to rank 0: read the frames of the stream (HELLO, DEF,
 * FORGET, INIT, TASK), run each call in one fresh Lua state made from the HELLO
 * (rank 0's package paths), and stream RESULT frames back, in order.
 * Results wait while more calls are already here, so a window of calls
 * costs one message each way; they go out before the rank would wait for
 * input, or once the oldest is FLUSH_AFTER old.  A failed initializer (or
 * a state that cannot be made) is told to rank 0 with a FAILED frame; the
 * rank then runs nothing until STOP.  After STOP it answers BYE, closes
 * its state and returns, and the script goes on.  Runs on the main thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lauxlib.h"
#include "mpisession.h"
#include "task.h"
#include "wire.h"

#define FLUSH_AFTER 0.0005
#define OUT_FLUSH 65536
#define SPIN 1e-3
#define NAP_MAX 1e-3

/* A message whose blobs are named by rank 0's ids. */
static int read_by_id(wire_rd *r, idmap *d, tr_msg *m) {
  uint64_t nb;
  if (!fb->wire_varint(r, &nb) || nb > (uint64_t)(r->end - r->p)) return 0;
  for (uint64_t i = 0; i < nb; i++) {
    uint64_t id;
    tr_blob *b;
    if (!fb->wire_varint(r, &id) || !(b = fb->wdefs_find(d, id)) || fb->msg_add_blob(m, b) < 0) return 0;
  }
  size_t rest = (size_t)(r->end - r->p);
  if (!fb->msg_reserve(m, rest)) return 0;
  msg_put(m, r->p, rest);
  return 1;
}

typedef struct wio {
  tr_msg in;              /* bytes received, from `off` on not yet used */
  size_t off, used;       /* used: the frame handed out last */
  tr_msg out;             /* result frames not yet sent */
  double out_since;
} wio;

static void flush(wio *x) {
  for (size_t off = 0; off < x->out.len;) {
    size_t n = x->out.len - off;
    if (n > MPIS_CHUNK) n = MPIS_CHUNK;
    MPI_Send(x->out.data + off, (int)n, MPI_BYTE, 0, TAG_RESULTS, mpis.comm);
    off += n;
  }
  x->out.len = 0;
}

static void send_empty(int tag) { MPI_Send(NULL, 0, MPI_BYTE, 0, tag, mpis.comm); }

/* The next frame: 1; 0 at STOP; -1 on malformed bytes or no memory.  The
 * payload in r stays valid until the next call. */
static int read_frame(wio *x, int *type, wire_rd *r) {
  x->off += x->used;
  x->used = 0;
  for (;;) {
    size_t have = x->in.len - x->off, whole, plen;
    const unsigned char *payload;
    int rc = fb->wire_frame(x->in.data + x->off, have, type, &payload, &plen, &whole);
    if (rc < 0) return -1;
    if (rc > 0) { r->p = payload; r->end = payload + plen; x->used = whole; return 1; }
    if (x->off) {   /* keep the unused bytes at the front */
      memmove(x->in.data, x->in.data + x->off, have);
      x->in.len = have;
      x->off = 0;
    }
    MPI_Message m;
    MPI_Status st;
    int count;
    mpis_backoff bo = {0, 0};
    for (;;) {
      if (mpis_probe(0, &m, &st)) break;
      flush(x);   /* about to wait: results first */
      mpis_idle(&bo, SPIN, NAP_MAX);
    }
    MPI_Get_count(&st, MPI_BYTE, &count);
    if (st.MPI_TAG == TAG_STOP) {
      MPI_Mrecv(NULL, 0, MPI_BYTE, &m, MPI_STATUS_IGNORE);
      return have == 0 ? 0 : -1;
    }
    size_t len = x->in.len;
    if (!mpis_recv_append(&m, count, &x->in)) return -1;
    if (st.MPI_TAG != TAG_CALLS) x->in.len = len;   /* not ours to read */
  }
}

static void send_failed(wio *x, const char *why) {
  flush(x);
  size_t s = fb->wire_begin(&x->out, W_FAILED);
  if (s != (size_t)-1 && fb->wire_bytes(&x->out, why, strlen(why))) fb->wire_end(&x->out, s);
  else x->out.len = 0;
  flush(x);
}

static int run_task(lua_State *L, wire_rd *r, idmap *d, wio *x) {
  tr_msg *out = &x->out;
  uint64_t taskid;
  tr_msg call, res;
  char *tb = NULL;
  if (!fb->wire_varint(r, &taskid)) return 0;
  fb->msg_init(&call);
  fb->msg_init(&res);
  int ok = read_by_id(r, d, &call);
  if (ok) {
    unsigned char outcome = (unsigned char)fb->task_run(L, &call, &res, &tb, 0);
    if (!fb->wire_fits(&res, 1)) {   /* fail this call, not the stream */
      static const char big[] = "the outcome is too large to send from a worker rank (2 GiB at most)";
      fb->msg_free(&res);
      fb->tr_encode_string(&res, big, sizeof big - 1);
      outcome = OUT_TRANSFER;
      free(tb);
      tb = NULL;
    }
    if (!out->len) x->out_since = mpis_now();
    size_t s = fb->wire_begin(out, W_RESULT);
    ok = s != (size_t)-1 && fb->tr_put_varint(out, taskid) && fb->wire_bytes(out, &outcome, 1) &&
         fb->wire_str(out, tb ? tb : "", tb ? strlen(tb) : 0) && fb->wire_msg_inline(out, &res);
    free(tb);
    if (ok) {
      fb->wire_end(out, s);
      if (out->len > OUT_FLUSH || mpis_now() - x->out_since > FLUSH_AFTER) flush(x);
    }
  }
  fb->msg_free(&call);
  fb->msg_free(&res);
  return ok;
}

/* HELLO: name, path, cpath, max tasks (unused here). */
static lua_State *hello(wire_rd *r, char *err, size_t errlen) {
  const unsigned char *s[3];
  size_t n[3];
  uint64_t mt;
  for (int i = 0; i < 3; i++)
    if (!fb->wire_getstr(r, &s[i], &n[i])) { snprintf(err, errlen, "a malformed HELLO frame"); return NULL; }
  if (!fb->wire_varint(r, &mt)) { snprintf(err, errlen, "a malformed HELLO frame"); return NULL; }
  char *str[3];
  for (int i = 0; i < 3; i++) str[i] = n[i] ? strndup((const char *)s[i], n[i]) : NULL;
  ws_config cfg = {str[1], str[2], str[0] ? str[0] : "MPIPoolExecutor"};
  lua_State *L = fb->ws_new(&cfg, err, errlen);
  for (int i = 0; i < 3; i++) free(str[i]);
  return L;
}

int mpiw_serve(char *err, size_t errlen) {
  wio x;
  idmap d = {0};   /* rank 0's code blobs, by its ids: DEF adds, FORGET drops */
  wire_rd r;
  int type, rc, status = 0, failed = 0;
  char why[256];
  lua_State *L = NULL;
  memset(&x, 0, sizeof x);
  fb->msg_init(&x.in);
  fb->msg_init(&x.out);
  while ((rc = read_frame(&x, &type, &r)) != 0) {
    if (rc < 0) {
      /* Tell rank 0, then take nothing more from this stream until STOP. */
      if (!failed) send_failed(&x, "a worker rank received a malformed frame");
      snprintf(err, errlen, "rank %d received a malformed frame from rank 0", mpis.rank);
      status = -1;
      failed = 1;
      x.in.len = x.off = x.used = 0;
      continue;
    }
    if (failed) continue;
    int ok = 1;
    if (type == W_HELLO) {
      ok = !L;
      if (ok && !(L = hello(&r, why, sizeof why))) { send_failed(&x, why); failed = 1; }
    } else if (type == W_DEF) {
      uint64_t id;
      ok = fb->wire_varint(&r, &id) && fb->wdefs_add(&d, id, r.p, (size_t)(r.end - r.p));
    } else if (type == W_FORGET) {
      ok = fb->wdefs_forget(&d, &r);
    } else if (type == W_INIT && L) {
      tr_msg call;
      fb->msg_init(&call);
      ok = read_by_id(&r, &d, &call);
      if (ok && fb->task_init(L, &call, why, sizeof why, 0)) send_empty(TAG_READY);
      else if (ok) { send_failed(&x, why); failed = 1; }
      fb->msg_free(&call);
    } else if (type == W_TASK && L) {
      ok = run_task(L, &r, &d, &x);
    } else {
      ok = 0;
    }
    if (!ok) {
      send_failed(&x, "a worker rank received a malformed frame or ran out of memory");
      snprintf(err, errlen, "rank %d could not read a frame from rank 0", mpis.rank);
      status = -1;
      failed = 1;
    }
  }
  flush(&x);
  send_empty(TAG_BYE);
  if (L) lua_close(L);
  fb->wdefs_free(&d);
  fb->msg_free(&x.in);
  fb->msg_free(&x.out);
  return status;
}
