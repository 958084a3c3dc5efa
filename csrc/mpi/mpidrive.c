/* MPIPoolExecutor on rank 0: one driver thread feeds every worker rank.
 *
 * DESIGN
 * The executor is a pool.c executor whose single "worker" is the driver:
 * pool.c starts it with the first submit (max_workers 1 to pool.c; the
 * ranks it feeds are its own business) and it owns the MPI session until it
 * leaves.  Submit, cancel of pending calls, shutdown, the broken state and
 * the Lua object are pool.c's, exactly as for the process pool.
 *
 * Per worker rank the driver keeps what procpool.c keeps per process: the
 * calls in flight (a ring, in order: a rank answers in order), the code
 * blobs the rank has been sent, the frames queued for it and a result
 * stream being parsed.  Frames are the process pool's (wire.h), as one
 * byte stream per rank cut into MPI messages (mpisession.h has the tags).
 * Sends are MPI_Isend, one in flight per rank; receives are
 * MPI_Improbe + MPI_Mrecv from any rank (mpis_probe), so probe and receive
 * cannot race.
 *
 * Dispatch: a rank with nothing in flight gets a call first; then each rank
 * gets up to its window.  The window follows the rank's measured time per
 * call (1 until a result is in, 1 for calls over 5 ms, up to WINDOW_MAX for
 * tiny ones), and drops to what is in flight while the call at its head
 * runs far longer than usual: no call waits behind a long one while a rank
 * is free.  A call sent ahead counts as running, as in the process pool.
 * A call sent cannot be taken back (the process pool reclaims calls not
 * started; a rank has no way to), so a rank that ran dry earns its window
 * again, doubled with each result: slow calls after tiny ones are not all
 * sent ahead to the first rank that asks.
 *
 * Waiting: MPI has nothing to block on together with a condition, so with
 * calls in flight the driver polls: it spins for SPIN seconds after the
 * last event, then naps on its own condition for a little longer each time
 * (up to NAP_MAX); a submit pokes it awake.  While no result is due yet
 * (by the ranks' times per call) it does not spin and naps half the time
 * left, up to NAP_LONG: on a machine the ranks fill, the driver's polls
 * are CPU time the ranks' calls do not get.  With nothing in flight it
 * sleeps in pool_take like any pool worker.
 *
 * End: once the pool is shut down and the queue is drained, or the pool is
 * broken (an initializer failed: a FAILED frame; a malformed frame), every
 * rank is sent STOP and the driver keeps receiving until each has answered
 * BYE, so no message of this session is left for the next one.  A rank
 * that dies ends the whole job (Open MPI's default), so there is no
 * monitor.  Locks: d->mu only guards the nap; it is never held with the
 * pool's lock.  The driver frees everything it made before pool_worker_exit.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mpisession.h"
#include "wire.h"

#define WINDOW_MAX 256
#define SPIN 200e-6
#define NAP_MIN 20e-6
#define NAP_MAX 500e-6
#define NAP_LONG 2e-3

struct mpid_data {
  pthread_mutex_t mu;
  pthread_cond_t wake;         /* CLOCK_MONOTONIC; the driver naps here */
  atomic_int napping;
  int poked;                   /* under mu */
  atomic_int claimed;          /* the ranks are (to be) stopped by someone */
  int nranks, number;
};

typedef struct rankq {
  int rank;
  fut_t *inflight[WINDOW_MAX];
  int head, count;             /* ring of calls sent, in order */
  uint64_t next_id, first_id;  /* task id of the next call / of inflight[head] */
  pdefs defs;                  /* the code blobs this rank holds (bounded) */
  tr_msg out;                  /* frames not yet handed to MPI */
  tr_msg sending;              /* bytes being sent; [sendoff, +sendlen) in flight */
  size_t sendoff, sendlen;
  MPI_Request req;
  tr_msg in;                   /* result bytes received, not yet parsed */
  double avg, mark;            /* seconds per call (EWMA); last result time */
  int earned;                  /* window cap: 1 once it ran dry, doubled per result */
  int ready;                   /* READY in (or no initializer) */
  int stop;                    /* 1: to be sent STOP, 2: sent */
  int bye;
} rankq;

typedef struct driver {
  pool_t *p;
  mpid_data *md;
  rankq *r;
  int n, nused;                /* ranks 1..n; the first nused get calls */
  int broken;
  char why[256];
  tr_msg scratch;
} driver;

/* ------------------------------------------------------------ the object */

mpid_data *mpid_new(int nranks, int number) {
  mpid_data *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&d->wake, &a);
  pthread_condattr_destroy(&a);
  pthread_mutex_init(&d->mu, NULL);
  d->nranks = nranks;
  d->number = number;
  return d;
}

static void destroy(void *data) {
  mpid_data *d = data;
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->wake);
  free(d);
}

int mpid_nranks(mpid_data *d) { return d->nranks; }
int mpid_claim_stop(mpid_data *d) { return atomic_exchange(&d->claimed, 1) == 0; }

void mpid_poke(mpid_data *d) {
  if (!atomic_load_explicit(&d->napping, memory_order_relaxed)) return;
  pthread_mutex_lock(&d->mu);
  d->poked = 1;
  pthread_cond_signal(&d->wake);
  pthread_mutex_unlock(&d->mu);
}

static void nap(mpid_data *d, double seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  long ns = ts.tv_nsec + (long)(seconds * 1e9);
  ts.tv_sec += ns / 1000000000L;
  ts.tv_nsec = ns % 1000000000L;
  pthread_mutex_lock(&d->mu);
  atomic_store(&d->napping, 1);
  if (!d->poked) pthread_cond_timedwait(&d->wake, &d->mu, &ts);
  d->poked = 0;
  atomic_store(&d->napping, 0);
  pthread_mutex_unlock(&d->mu);
}

/* ---------------------------------------------------------------- frames */

/* Queues the DEF frames for the blobs the rank lacks and the FORGET frame
 * that keeps its set bounded (procdefs.c, as for a worker process), then
 * the call. */
static int put_call(rankq *q, int type, uint64_t id, const tr_msg *m) {
  if (!fb->pdefs_send(&q->defs, &q->out, m)) return 0;
  size_t s = fb->wire_begin(&q->out, type);
  if (s == (size_t)-1) return 0;
  if (type == W_TASK && !fb->tr_put_varint(&q->out, id)) return 0;
  if (!fb->wire_msg_by_id(&q->out, m)) return 0;
  fb->wire_end(&q->out, s);
  return 1;
}

static int put_hello(driver *d, rankq *q) {
  const pool_conf *c = fb->pool_config(d->p);
  char name[64];
  snprintf(name, sizeof name, "MPIPoolExecutor-%d_%d", d->md->number, q->rank);
  const char *path = c->path ? c->path : "", *cpath = c->cpath ? c->cpath : "";
  size_t s = fb->wire_begin(&q->out, W_HELLO);
  if (s == (size_t)-1 || !fb->wire_str(&q->out, name, strlen(name)) ||
      !fb->wire_str(&q->out, path, strlen(path)) || !fb->wire_str(&q->out, cpath, strlen(cpath)) ||
      !fb->tr_put_varint(&q->out, 0))
    return 0;
  fb->wire_end(&q->out, s);
  return !c->has_init || put_call(q, W_INIT, 0, &c->init);
}

/* ---------------------------------------------------------------- breaking */

/* The pool first (whoever sees a call fail finds it broken), then every
 * call in flight; what a rank still sends for them is dropped. */
static void do_break(driver *d, const char *why) {
  if (d->broken) return;
  d->broken = 1;
  snprintf(d->why, sizeof d->why, "%s", why);
  fb->pool_break(d->p, d->why);
  for (int i = 0; i < d->nused; i++) {
    rankq *q = &d->r[i];
    while (q->count > 0) {
      fut_t *f = q->inflight[q->head];
      q->head = (q->head + 1) % WINDOW_MAX;
      q->count--;
      fb->fut_fail_msg(f, OUT_BROKEN, d->why);
      fb->fut_unref(f);
    }
    q->out.len = 0;   /* calls not handed to MPI yet: no need to send them */
    q->in.len = 0;
    q->ready = 1;
  }
}

static void malformed(driver *d, rankq *q) {
  char why[96];
  snprintf(why, sizeof why, "worker rank %d sent a malformed frame", q->rank);
  do_break(d, why);
}

/* ------------------------------------------------------------- results */

static void take_results(driver *d, rankq *q) {
  size_t off = 0;
  while (!d->broken) {
    int type;
    const unsigned char *payload, *tb;
    size_t plen, whole, tblen;
    int rc = fb->wire_frame(q->in.data + off, q->in.len - off, &type, &payload, &plen, &whole);
    if (rc == 0) break;
    if (rc < 0) { malformed(d, q); return; }
    wire_rd r = {payload, payload + plen};
    if (type == W_FAILED) {
      char why[256];
      snprintf(why, sizeof why, "%.*s (on rank %d)", (int)(plen < 200 ? plen : 200),
               (const char *)payload, q->rank);
      do_break(d, why);
      return;
    }
    uint64_t id;
    if (type != W_RESULT || !fb->wire_varint(&r, &id) || id != q->first_id || q->count == 0 ||
        r.p >= r.end || *r.p > OUT_TRANSFER) {
      malformed(d, q);
      return;
    }
    int outcome = *r.p++;
    tr_msg m;
    fb->msg_init(&m);
    if (!fb->wire_getstr(&r, &tb, &tblen) || !fb->wire_read_inline(&r, &m)) {
      fb->msg_free(&m);
      malformed(d, q);
      return;
    }
    fut_t *f = q->inflight[q->head];
    q->head = (q->head + 1) % WINDOW_MAX;
    q->count--;
    q->first_id++;
    fb->fut_complete(f, outcome, &m, tblen ? strndup((const char *)tb, tblen) : NULL);
    fb->msg_free(&m);
    fb->fut_unref(f);
    double now = mpis_now(), dt = now - q->mark;
    q->mark = now;
    q->avg = q->avg > 0 ? 0.8 * q->avg + 0.2 * dt : dt;
    q->earned = q->earned * 2 > WINDOW_MAX ? WINDOW_MAX : q->earned * 2;
    off += whole;
  }
  if (d->broken) { q->in.len = 0; return; }
  if (off) {
    memmove(q->in.data, q->in.data + off, q->in.len - off);
    q->in.len -= off;
  }
}

/* Receives what the ranks sent; 1 if anything came. */
static int pump_recvs(driver *d) {
  int any = 0;
  for (int k = 0; k < 64; k++) {
    int count;
    MPI_Message m;
    MPI_Status st;
    if (!mpis_probe(MPI_ANY_SOURCE, &m, &st)) break;
    any = 1;
    MPI_Get_count(&st, MPI_BYTE, &count);
    rankq *q = st.MPI_SOURCE >= 1 && st.MPI_SOURCE <= d->n ? &d->r[st.MPI_SOURCE - 1] : NULL;
    tr_msg *buf = q && st.MPI_TAG == TAG_RESULTS && !d->broken ? &q->in : &d->scratch;
    if (!mpis_recv_append(&m, count, buf)) {
      /* Cannot take it: the session cannot go on.  (The message stays.) */
      do_break(d, "not enough memory for a message from a worker rank");
      continue;
    }
    d->scratch.len = 0;
    if (!q) continue;
    if (st.MPI_TAG == TAG_RESULTS && buf == &q->in) take_results(d, q);
    else if (st.MPI_TAG == TAG_READY) q->ready = 1;
    else if (st.MPI_TAG == TAG_BYE) q->bye = 1;
  }
  return any;
}

/* ---------------------------------------------------------------- sends */

static void start_chunk(rankq *q) {
  size_t n = q->sending.len - q->sendoff;
  if (n > MPIS_CHUNK) n = MPIS_CHUNK;
  q->sendlen = n;
  MPI_Isend(q->sending.data + q->sendoff, (int)n, MPI_BYTE, q->rank, TAG_CALLS, mpis.comm, &q->req);
}

/* Moves every rank's stream along; 1 if anything moved. */
static int pump_sends(driver *d) {
  int any = 0;
  for (int i = 0; i < d->n; i++) {
    rankq *q = &d->r[i];
    if (q->req != MPI_REQUEST_NULL) {
      int done;
      MPI_Test(&q->req, &done, MPI_STATUS_IGNORE);
      if (!done) continue;
      any = 1;
      q->sendoff += q->sendlen;
      q->sendlen = 0;
      if (q->sendoff >= q->sending.len) q->sending.len = q->sendoff = 0;
    }
    if (q->stop == 2) continue;
    if (q->sendoff < q->sending.len) {
      start_chunk(q);
      any = 1;
    } else if (q->out.len) {
      fb->msg_free(&q->sending);   /* empty by now: keeps no blob */
      tr_msg t = q->out;           /* raw bytes: swap the buffers */
      if (t.data == q->out.inl) { fb->msg_init(&q->sending); fb->wire_bytes(&q->sending, t.data, t.len); }
      else {
        q->sending = t;   /* its blob list (empty) stays the sending's own */
        q->sending.blobs = q->sending.inlblobs;
        q->sending.capblobs = MSG_INLINE_BLOBS;
        fb->msg_init(&q->out);
      }
      q->out.len = 0;
      start_chunk(q);
      any = 1;
    } else if (q->stop == 1) {
      MPI_Isend(NULL, 0, MPI_BYTE, q->rank, TAG_STOP, mpis.comm, &q->req);
      q->stop = 2;
      any = 1;
    }
  }
  return any;
}

/* --------------------------------------------------------------- dispatch */

static int window(rankq *q) {
  if (q->avg <= 0 || q->avg > 0.005) return 1;
  double w = 0.002 / q->avg;
  int n = w < 2 ? 2 : w > WINDOW_MAX ? WINDOW_MAX : (int)w;
  return n < q->earned ? n : q->earned;
}

static int room(rankq *q, double now) {
  if (q->count > 0) {
    double late = 8 * q->avg > 0.002 ? 8 * q->avg : 0.002;
    if (now - q->mark > late) return 0;   /* its head runs long: nothing behind it */
  }
  return window(q) - q->count;
}

/* Sends call c to rank q, or fails it. */
static void send_one(driver *d, rankq *q, fut_t *c) {
  if (d->broken) {
    fb->fut_fail_msg(c, OUT_BROKEN, d->why);
  } else if (!fb->fut_set_running(c)) {
    /* cancelled meanwhile */
  } else if (!fb->wire_fits(&c->msg, 0)) {
    fb->fut_fail_msg(c, OUT_TRANSFER, "the call is too large to send to a worker rank (2 GiB at most)");
  } else if (!put_call(q, W_TASK, q->next_id, &c->msg)) {
    do_break(d, "not enough memory");
    fb->fut_fail_msg(c, OUT_BROKEN, d->why);
  } else {
    fb->msg_free(&c->msg);   /* the call is on its way */
    if (q->count == 0) {
      /* Ran dry: the next calls may not be like the ones it timed (a map
       * of slow calls after tiny ones), and calls sent ahead are committed. */
      q->earned = 1;
      q->mark = mpis_now();
    }
    q->inflight[(q->head + q->count) % WINDOW_MAX] = c;
    q->count++;
    q->next_id++;
    return;   /* the ring has the queue's reference */
  }
  fb->fut_unref(c);
}

static int take_for(driver *d, rankq *q, int want) {
  fut_t *got[WINDOW_MAX];
  int n = 0;
  if (want < 1 || q->out.len > MPIS_CHUNK) return 0;   /* let its bytes drain first */
  fut_t *f = fb->pool_take(d->p, 0, got + 1, want - 1, &n);
  if (!f) return 0;
  got[0] = f;
  for (int i = 0; i <= n; i++) send_one(d, q, got[i]);
  return 1;
}

static int feed(driver *d) {
  int any = 0;
  double now = mpis_now();
  for (int i = 0; i < d->nused && !d->broken; i++)   /* free ranks first */
    if (d->r[i].count == 0) any |= take_for(d, &d->r[i], 1);
  for (int i = 0; i < d->nused && !d->broken; i++)
    any |= take_for(d, &d->r[i], room(&d->r[i], now));
  return any;
}

/* Nothing in flight, nothing to send, every initializer done. */
static int idle(driver *d) {
  for (int i = 0; i < d->n; i++) {
    rankq *q = &d->r[i];
    if (q->count || q->out.len || q->sending.len || q->req != MPI_REQUEST_NULL || !q->ready) return 0;
  }
  return 1;
}

/* Seconds until the first result is due: the soonest of mark + avg over
 * the ranks with calls in flight; 0 when one may come any time (its calls
 * are not timed yet, or bytes still move). */
static double due_in(driver *d, double now) {
  double due = -1;
  for (int i = 0; i < d->n; i++) {
    rankq *q = &d->r[i];
    if (q->out.len || q->sending.len || !q->ready) return 0;
    if (q->count == 0) continue;
    if (q->avg <= 0) return 0;
    double t = q->mark + q->avg - now;
    if (due < 0 || t < due) due = t;
  }
  return due > 0 ? due : 0;
}

static void wait_a_little(driver *d, mpis_backoff *b) {
  double now = mpis_now();
  if (b->since == 0) b->since = now;
  double due = due_in(d, now);
  if (due > NAP_MAX) {   /* no result soon: no spin, few wakes */
    double t = due / 2;
    b->delay = 0;
    nap(d->md, t < NAP_MAX ? NAP_MAX : t > NAP_LONG ? NAP_LONG : t);
    return;
  }
  if (now - b->since < SPIN) { sched_yield(); return; }
  b->delay = b->delay == 0 ? NAP_MIN : b->delay * 2 > NAP_MAX ? NAP_MAX : b->delay * 2;
  nap(d->md, b->delay);
}

/* ------------------------------------------------------------- the thread */

static void run(driver *d) {
  mpis_backoff bo = {0, 0};
  for (;;) {
    int any = pump_recvs(d);
    any |= feed(d);
    any |= pump_sends(d);
    if (idle(d)) {
      fut_t *f = fb->pool_take(d->p, 1, NULL, 0, NULL);
      if (!f) break;   /* shut down (or broken) and drained */
      send_one(d, &d->r[0], f);
      mpis_busy(&bo);
      continue;
    }
    if (any) mpis_busy(&bo);
    else wait_a_little(d, &bo);
  }
  /* STOP to every rank, after its last frames; then its BYE. */
  for (int i = 0; i < d->n; i++) if (d->r[i].stop == 0) d->r[i].stop = 1;
  for (;;) {
    int any = pump_sends(d) | pump_recvs(d), done = 1;
    for (int i = 0; i < d->n; i++) done &= d->r[i].bye && d->r[i].req == MPI_REQUEST_NULL;
    if (done) break;
    if (any) mpis_busy(&bo);
    else wait_a_little(d, &bo);
  }
}

static void *driver_main(void *arg) {
  pool_worker *w = arg;
  driver d;
  memset(&d, 0, sizeof d);
  d.p = w->pool;
  d.md = fb->pool_data(d.p);
  mpis_acquire();
  mpid_claim_stop(d.md);
  d.n = mpis.size - 1;
  d.nused = d.md->nranks;
  fb->msg_init(&d.scratch);
  d.r = calloc((size_t)d.n, sizeof *d.r);
  if (!d.r) {
    fb->pool_break(d.p, "not enough memory");
    mpis_release();
    mpid_stop_ranks();
  } else {
    int has_init = fb->pool_config(d.p)->has_init;
    for (int i = 0; i < d.n; i++) {
      rankq *q = &d.r[i];
      q->rank = i + 1;
      q->earned = 1;
      q->req = MPI_REQUEST_NULL;
      fb->msg_init(&q->out);
      fb->msg_init(&q->sending);
      fb->msg_init(&q->in);
      q->ready = i >= d.nused || !has_init;
      if (i >= d.nused) q->stop = 1;   /* not used: its session ends at once */
      else if (!put_hello(&d, q)) do_break(&d, "not enough memory");
    }
    run(&d);
    for (int i = 0; i < d.n; i++) {
      fb->pdefs_clear(&d.r[i].defs);
      fb->msg_free(&d.r[i].out);
      fb->msg_free(&d.r[i].sending);
      fb->msg_free(&d.r[i].in);
    }
    free(d.r);
    mpis_release();
  }
  fb->msg_free(&d.scratch);
  mpis_session_end();
  fb->pool_worker_exit(w);
  return NULL;
}

/* From the main thread: the ranks of a session that never started. */
void mpid_stop_ranks(void) {
  mpis_acquire();
  for (int r = 1; r < mpis.size; r++) MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, mpis.comm);
  int left = mpis.size - 1;
  tr_msg junk;
  fb->msg_init(&junk);
  while (left > 0) {
    MPI_Message m;
    MPI_Status st;
    int count;
    MPI_Mprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, mpis.comm, &m, &st);
    MPI_Get_count(&st, MPI_BYTE, &count);
    if (!mpis_recv_append(&m, count, &junk)) break;
    junk.len = 0;
    if (st.MPI_TAG == TAG_BYE) left--;
  }
  fb->msg_free(&junk);
  mpis_release();
}

static pool_backend backend;
static pthread_once_t backend_once = PTHREAD_ONCE_INIT;
static const luax_class *backend_parent;

static void make_backend(void) {
  backend.cls.name = "MPIPoolExecutor";
  backend.cls.parent = backend_parent;
  backend.broken = LUAX_BROKEN_PROCESS;   /* futures.BrokenProcessPool: a worker is a process */
  backend.broken_kind = 1;
  backend.lightuserdata = 0;
  backend.worker_main = driver_main;
  backend.destroy = destroy;
}

const pool_backend *mpid_backend(const luax_class *executor_class) {
  backend_parent = executor_class;
  pthread_once(&backend_once, make_backend);
  return &backend;
}
