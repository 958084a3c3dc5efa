/* The body of a process worker (futures_worker_main): a fresh program, so
 * no thread, lock, descriptor or Lua state of the parent is inherited.
 *
 * It reads frames (wire.h) from descriptor 3 and writes results to
 * descriptor 4, one task at a time, in order; descriptor 5 is the page on
 * which it claims each task before starting it (claim.c), and descriptor 6,
 * if the parent made it, the ring its results' big arrays take (slabring.h).
 * Its stdout and stderr are the parent's; it ignores SIGINT (Ctrl-C is for the parent's wait) and
 * SIGPIPE (a closed stdout fails the task's write, not the worker), handles
 * CLAIM_STOP_SIGNAL (SIGUSR1: stop the running call, see below), and dies
 * with its parent.  It exits 0 when the parent closes the task pipe or after
 * max_tasks_per_child tasks, non-zero on a malformed frame or a failed
 * initializer (after telling the parent why).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "lauxlib.h"
#include "claim.h"
#include "clock.h"
#include "futures.h"
#include "embed.h"
#include "fut.h"
#include "idmap.h"
#include "owner.h"
#include "procdefs.h"
#include "qremote.h"
#include "slabring.h"
#include "task.h"
#include "transfer.h"
#include "wire.h"
#include "workerstate.h"

#define IN_FD 3
#define OUT_FD 4

/* Results.  A call's result goes out as soon as the call ends, unless the
 * call was tiny and the next call's frame is already here: then results
 * gather in `out` so a window of tiny calls costs one write.  Gathered
 * results never wait long: they go out before the worker blocks for
 * input, when the buffer is big, and, from a flusher thread, once the
 * oldest is FLUSH_AFTER old (measured from when its call ended), so a call
 * that turns out long never holds back the results before it.  x->mu
 * guards `out` and the flusher's state; every write to OUT_FD holds it.
 *
 * Calls sent ahead are not committed: the worker starts each only if it
 * can claim it (claim.c); one the parent took back is skipped without a
 * word, as the parent has given it to another worker already. */
#define FLUSH_AFTER 0.0005    /* the longest a gathered result waits */
#define TINY_CALL 0.0002      /* calls shorter than this may gather results */
#define READ_CHUNK 65536

typedef struct io {
  tr_msg in;            /* bytes read, from `off` on not yet used */
  size_t off, used;     /* used: the frame handed out last */
  pthread_mutex_t mu;   /* guards what follows */
  pthread_cond_t cv;    /* the flusher waits here */
  tr_msg out;           /* result frames not yet written */
  double out_since;     /* when the oldest of them was ready */
  int armed, quit, failed;
  int has_flusher;
  pthread_t flusher;
} io;

static int write_all(const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(OUT_FD, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return 0;
    p += w;
    n -= (size_t)w;
  }
  return 1;
}

/* With x->mu held. */
static void flush_locked(io *x) {
  if (x->out.len && !write_all(x->out.data, x->out.len)) x->failed = 1;
  x->out.len = 0;
  x->armed = 0;
}

static int flush(io *x) {
  pthread_mutex_lock(&x->mu);
  flush_locked(x);
  int ok = !x->failed;
  pthread_mutex_unlock(&x->mu);
  return ok;
}

static void *flusher_main(void *arg) {
  io *x = arg;
  pthread_mutex_lock(&x->mu);
  for (;;) {
    while (!x->quit && !(x->armed && x->out.len)) pthread_cond_wait(&x->cv, &x->mu);
    if (x->quit) break;
    double due = x->out_since + FLUSH_AFTER;
    if (clk_now() < due) {
      struct timespec ts = clk_from(due);
      pthread_cond_timedwait(&x->cv, &x->mu, &ts);
      continue;   /* look again: flushed meanwhile, or due now */
    }
    flush_locked(x);
  }
  pthread_mutex_unlock(&x->mu);
  return NULL;
}

static void io_init(io *x) {
  memset(x, 0, sizeof *x);
  msg_init(&x->in);
  msg_init(&x->out);
  pthread_mutex_init(&x->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&x->cv, &ca);
  pthread_condattr_destroy(&ca);
  /* Without the thread, results simply never gather (see add_result). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  x->has_flusher = pthread_create(&x->flusher, NULL, flusher_main, x) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void io_free(io *x) {
  flush(x);
  if (x->has_flusher) {
    pthread_mutex_lock(&x->mu);
    x->quit = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->flusher, NULL);
  }
  pthread_mutex_destroy(&x->mu);
  pthread_cond_destroy(&x->cv);
  msg_free(&x->in);
  msg_free(&x->out);
}

/* Is the next frame (after the one handed out last) already here? */
static int next_buffered(io *x) {
  int type;
  const unsigned char *payload;
  size_t plen, whole, at = x->off + x->used;
  return wire_frame(x->in.data + at, x->in.len - at, &type, &payload, &plen, &whole) == 1;
}

/* The next frame; 1, 0 at the end of input, -1 on error.  The payload in
 * r stays valid until the next call. */
static int read_frame(io *x, int *type, wire_rd *r) {
  x->off += x->used;
  x->used = 0;
  for (;;) {
    size_t have = x->in.len - x->off, whole;
    const unsigned char *payload;
    size_t plen;
    size_t want = READ_CHUNK;
    if (have >= 4) {
      int rc = wire_frame(x->in.data + x->off, have, type, &payload, &plen, &whole);
      if (rc < 0) return -1;
      if (rc > 0) { r->p = payload; r->end = payload + plen; x->used = whole; return 1; }
      size_t need = wire_announced(x->in.data + x->off) + 4;
      if (need - have > want) want = need - have;
      if (want > (1 << 20)) want = 1 << 20;   /* grow as bytes arrive, not on trust */
    }
    if (x->off) {   /* keep the unused bytes at the front */
      memmove(x->in.data, x->in.data + x->off, have);
      x->in.len = have;
      x->off = 0;
    }
    if (!flush(x)) return -1;   /* about to block: results first */
    if (!msg_reserve(&x->in, want)) return -1;
    ssize_t got = read(IN_FD, x->in.data + x->in.len, x->in.cap - x->in.len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return got == 0 && have == 0 ? 0 : -1;
    x->in.len += (size_t)got;
  }
}

/* A message whose blobs are named by the parent's ids (wire.h: odd ones
 * are queues). */
static int read_by_id(wire_rd *r, idmap *d, tr_msg *m) {
  uint64_t nb;
  if (!wire_varint(r, &nb) || nb > (uint64_t)(r->end - r->p)) return 0;
  for (uint64_t i = 0; i < nb; i++) {
    uint64_t id;
    tr_blob *b;
    if (!wire_varint(r, &id)) return 0;
    if (id & 1) {
      if (!(b = qr_blob(id >> 1))) return 0;
      int ok = msg_add_blob(m, b) >= 0;
      tr_blob_unref(b);
      if (!ok) return 0;
    } else if (!(b = wdefs_find(d, id >> 1)) || msg_add_blob(m, b) < 0) {
      return 0;
    }
  }
  size_t rest = (size_t)(r->end - r->p);
  if (!msg_reserve(m, rest)) return 0;
  msg_put(m, r->p, rest);
  return 1;
}

/* The queue handles' use of the pipes (qremote.h). */
static int chan_send(void *arg, const tr_msg *f, int now) {
  io *x = arg;
  double t = clk_now();
  pthread_mutex_lock(&x->mu);
  if (!x->out.len) x->out_since = t;
  int ok = wire_bytes(&x->out, f->data, f->len);
  if (!ok) x->failed = 1;
  else if (now || !x->has_flusher || x->out.len > READ_CHUNK) flush_locked(x);
  else if (!x->armed) {
    x->armed = 1;
    pthread_cond_signal(&x->cv);
  }
  ok = !x->failed;
  pthread_mutex_unlock(&x->mu);
  return ok;
}

/* Scans the frames after the one being run for a QREPLY; the others stay
 * where they are, in order, for read_frame. */
static int chan_reply(void *arg, tr_msg *out) {
  io *x = arg;
  size_t at = x->off + x->used;
  for (;;) {
    int type, rc;
    const unsigned char *payload;
    size_t plen, whole;
    while ((rc = wire_frame(x->in.data + at, x->in.len - at, &type, &payload, &plen, &whole)) == 1) {
      if (type == W_QREPLY) {
        if (!msg_reserve(out, plen)) return 0;
        msg_put(out, payload, plen);
        memmove(x->in.data + at, x->in.data + at + whole, x->in.len - at - whole);
        x->in.len -= whole;
        return 1;
      }
      at += whole;
    }
    if (rc < 0 || !flush(x) || !msg_reserve(&x->in, READ_CHUNK)) return 0;
    ssize_t got = read(IN_FD, x->in.data + x->in.len, x->in.cap - x->in.len);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return 0;
    x->in.len += (size_t)got;
  }
}

static int send_failed(io *x, const char *why) {
  pthread_mutex_lock(&x->mu);
  flush_locked(x);
  size_t s = wire_begin(&x->out, W_FAILED);
  int ok = s != (size_t)-1 && wire_bytes(&x->out, why, strlen(why));
  if (ok) {
    wire_end(&x->out, s);
    flush_locked(x);
    ok = !x->failed;
  }
  pthread_mutex_unlock(&x->mu);
  return ok;
}

/* Appends a RESULT frame; writes it now unless results may gather (see
 * above). */
static int add_result(io *x, uint64_t taskid, int outcome, const char *tb, tr_msg *res, int tiny) {
  double now = clk_now();
  pthread_mutex_lock(&x->mu);
  tr_msg *out = &x->out;
  if (!out->len) x->out_since = now;
  unsigned char oc = (unsigned char)outcome;
  size_t s = wire_begin(out, W_RESULT);
  int ok = s != (size_t)-1 && tr_put_varint(out, taskid) && wire_bytes(out, &oc, 1) &&
           wire_str(out, tb ? tb : "", tb ? strlen(tb) : 0) && wire_msg_inline(out, res);
  if (ok) {
    wire_end(out, s);
    int gather = tiny && x->has_flusher && out->len <= READ_CHUNK && next_buffered(x) &&
                 now - x->out_since < FLUSH_AFTER;
    if (!gather) {
      flush_locked(x);
    } else if (!x->armed) {
      x->armed = 1;
      pthread_cond_signal(&x->cv);
    }
    ok = !x->failed;
  }
  pthread_mutex_unlock(&x->mu);
  return ok;
}

/* Stopping the running call.  The parent stores the task id to stop in
 * the claim page and sends CLAIM_STOP_SIGNAL.  The handler runs on this
 * (the main) thread: every other thread of ours blocks all signals.  If
 * the id is the call running now, it arms the stop hook (task.c; setting
 * a hook is async-signal-safe by Lua's design, as lua.c's Ctrl-C) and
 * sets the state owner's stop flag (a lock-free atomic) for the waits,
 * and posts `stop_sem` for the waker thread, which wakes the owner's
 * condition (a mutex is no business of a handler).  Before it starts a
 * call the worker looks at the page itself: the stop may have come first.
 * Once the call returns, running_id goes back to CLAIM_NONE before the
 * hook and flag are cleared, so a handler that comes later does nothing:
 * a late stop never reaches the next call. */
static lua_State *stop_L;
static owner_t *stop_owner;
static claim_t *stop_claim;
static _Atomic uint64_t running_id = CLAIM_NONE;
static volatile sig_atomic_t stopped;
static sem_t stop_sem;
static atomic_int waker_quit;

static void arm_stop(void) {
  stopped = 1;
  task_stop_arm(stop_L);
  atomic_store(&stop_owner->stop, 1);
  sem_post(&stop_sem);
}

static void on_stop_signal(int sig) {
  (void)sig;
  int e = errno;
  uint64_t id = atomic_load(&running_id);
  if (id != CLAIM_NONE && !stopped && atomic_load(&stop_claim->stop) == id) arm_stop();
  errno = e;
}

static void *waker_main(void *arg) {
  (void)arg;
  for (;;) {
    if (sem_wait(&stop_sem) != 0 && errno == EINTR) continue;
    if (atomic_load(&waker_quit)) return NULL;
    owner_signal(stop_owner);
  }
}

static int make_owner(lua_State *L) {
  stop_owner = owner_get(L);
  return 0;
}

/* The owner of the worker's state, the waker and the handler; 0 if they
 * cannot be had (calls then run, and a stop kills the worker after the
 * grace period). */
static int stop_init(lua_State *L, claim_t *c, pthread_t *waker) {
  lua_pushcfunction(L, make_owner);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) { lua_pop(L, 1); return 0; }
  if (sem_init(&stop_sem, 0, 0) != 0) return 0;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int ok = pthread_create(waker, NULL, waker_main, NULL) == 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (!ok) { sem_destroy(&stop_sem); return 0; }
  owner_ref(stop_owner);
  stop_claim = c;
  stop_L = L;   /* last: run_task arms stops only once all of this is there */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(CLAIM_STOP_SIGNAL, &sa, NULL);
  sigset_t st;
  sigemptyset(&st);
  sigaddset(&st, CLAIM_STOP_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &st, NULL);
  return 1;
}

static void stop_end(pthread_t waker) {
  sigset_t st;
  sigemptyset(&st);
  sigaddset(&st, CLAIM_STOP_SIGNAL);
  pthread_sigmask(SIG_BLOCK, &st, NULL);   /* no handler from here on */
  atomic_store(&waker_quit, 1);
  sem_post(&stop_sem);
  pthread_join(waker, NULL);
  sem_destroy(&stop_sem);
  owner_unref(stop_owner);
}

/* A TASK frame: run, or skipped if the parent took it back.  *ran says
 * which. */
/* Replaces a call's outcome by a TransferError saying why: the call
 * fails, not the stream. */
static int cannot_cross(tr_msg *res, char **tb, const char *why) {
  msg_free(res);
  tr_encode_string(res, why, strlen(why));
  free(*tb);
  *tb = NULL;
  return OUT_TRANSFER;
}

/* How results' big arrays go: through the ring, if the parent made one. */
static const slab_maker *slabs;

static int run_task(lua_State *L, wire_rd *r, idmap *d, io *x, claim_t *c, int *ran) {
  uint64_t taskid;
  tr_msg call, res;
  char *tb;
  *ran = 0;
  if (!wire_varint(r, &taskid)) return 0;
  if (!claim_start(c, taskid)) return 1;
  msg_init(&call);
  msg_init(&res);
  int ok = read_by_id(r, d, &call);
  if (ok) {
    double t0 = clk_now();
    if (stop_L) {
      atomic_store(&running_id, taskid);
      if (!stopped && atomic_load(&c->stop) == taskid) arm_stop();
    }
    unsigned char outcome = (unsigned char)task_run_slabs(L, &call, &res, &tb, 0, slabs);
    if (stop_L) {
      atomic_store(&running_id, CLAIM_NONE);
      if (stopped) {
        task_stop_disarm(L);
        atomic_store(&stop_owner->stop, 0);
        stopped = 0;
      }
    }
    double took = clk_now() - t0;
    *ran = 1;
    if (!qr_msg_ok(&res))
      outcome = cannot_cross(&res, &tb, "a queue made in a worker process cannot cross to the parent");
    if (!wire_fits(&res, 1))   /* fail this call, not the stream */
      outcome = cannot_cross(&res, &tb, "the outcome is too large to send from a worker process (2 GiB at most)");
    ok = add_result(x, taskid, outcome, tb, &res, took < TINY_CALL);
    free(tb);
  }
  msg_free(&call);
  msg_free(&res);
  return ok;
}

/* A task's os.exit: puts sent ahead still reach the parent. */
static io *exiting;
static void flush_at_exit(void) { if (exiting) flush(exiting); }

FUTURES_API int futures_worker_main(int argc, char **argv, void (*init)(lua_State *worker)) {
  (void)argc;
  (void)argv;
  /* Tasks build and drop big tables over and over: keep up to 8 MB of
   * freed memory for the next one instead of giving it back to the kernel
   * and faulting it in again (a page fault costs more than filling the
   * page).  Larger blocks still come and go with mmap. */
  ws_set_preload(embed_preload);
  mallopt(M_TRIM_THRESHOLD, 8 << 20);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  /* The pool starts us with SIGINT blocked; once ignored, a pending one
   * is discarded and it can be unblocked. */
  signal(SIGINT, SIG_IGN);
  /* stdout is the parent's and may be a pipe whose reader left (`| head`):
   * a task's write then fails with EPIPE in that task, instead of the
   * signal killing the worker and breaking the pool.  posix_spawn gave us
   * default dispositions; this one is ours to set. */
  signal(SIGPIPE, SIG_IGN);
  sigset_t intr;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  sigprocmask(SIG_UNBLOCK, &intr, NULL);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1;
  claim_t *claim = claim_open(CLAIM_FD);
  slabring *ring = ring_open(RING_FD);
  closefrom(RING_FD + 1);              /* nothing but our pipes, pages and stdio */
  if (ring) slabs = ring_maker(ring);
  if (!claim) return 2;
  /* A task's own children (os.execute, io.popen) must not hold our pipes:
   * the parent sees this process end by its result pipe closing. */
  fcntl(IN_FD, F_SETFD, FD_CLOEXEC);
  fcntl(OUT_FD, F_SETFD, FD_CLOEXEC);
  setvbuf(stdout, NULL, _IOLBF, 0);    /* a task's print shows up at once */

  io x;
  idmap d = {0};
  wire_rd r;
  int type, status = 2;
  io_init(&x);
  qr_chan chan = {&x, chan_send, chan_reply};
  qr_open(&chan);
  exiting = &x;
  atexit(flush_at_exit);
  lua_State *L = NULL;
  char err[256];
  long max_tasks = 0, done = 0;
  pthread_t waker;
  int has_waker = 0;

  if (read_frame(&x, &type, &r) != 1 || type != W_HELLO) goto out;
  {
    const unsigned char *s[3];
    size_t n[3];
    uint64_t mt;
    for (int i = 0; i < 3; i++)
      if (!wire_getstr(&r, &s[i], &n[i])) goto out;
    if (!wire_varint(&r, &mt)) goto out;
    max_tasks = (long)mt;
    char *str[3];
    for (int i = 0; i < 3; i++) str[i] = n[i] ? strndup((const char *)s[i], n[i]) : NULL;
    ws_config cfg = {str[1], str[2], str[0] ? str[0] : "ProcessPoolExecutor"};
    L = ws_new(&cfg, err, sizeof err);
    for (int i = 0; i < 3; i++) free(str[i]);
    if (!L) { send_failed(&x, err); goto out; }
    if (init) init(L);
    has_waker = stop_init(L, claim, &waker);
    if (!has_waker) {
      /* Stops then come to nothing here, and the parent kills this worker
       * after its grace period: never die of the signal itself. */
      sigset_t st;
      sigemptyset(&st);
      sigaddset(&st, CLAIM_STOP_SIGNAL);
      signal(CLAIM_STOP_SIGNAL, SIG_IGN);
      pthread_sigmask(SIG_UNBLOCK, &st, NULL);
    }
  }
  for (;;) {
    int rc = read_frame(&x, &type, &r);
    if (rc == 0) { status = 0; break; }
    if (rc < 0) break;
    if (type == W_DEF) {
      uint64_t id;
      if (!wire_varint(&r, &id) || !wdefs_add(&d, id, r.p, (size_t)(r.end - r.p))) break;
    } else if (type == W_FORGET) {
      if (!wdefs_forget(&d, &r)) break;
    } else if (type == W_INIT) {
      tr_msg call;
      msg_init(&call);
      int ok = read_by_id(&r, &d, &call) && task_init(L, &call, err, sizeof err, 0);
      msg_free(&call);
      if (!ok) { send_failed(&x, err); status = 3; break; }
    } else if (type == W_TASK) {
      int ran;
      if (!run_task(L, &r, &d, &x, claim, &ran)) break;
      if (ran && max_tasks > 0 && ++done >= max_tasks) { status = 0; break; }
    } else {
      break;
    }
  }
out:
  exiting = NULL;
  qr_close();    /* handles finalized from here on send nothing */
  io_free(&x);   /* results of a retiring worker, before it exits */
  if (has_waker) stop_end(waker);
  if (L) owner_close_state(L);
  qr_end();
  wdefs_free(&d);
  claim_free(claim);
  ring_free(ring);
  return status;
}
