/* The proxy thread: feeds one worker process over its pipes.
 *
 * DESIGN
 * Each worker process has a proxy thread in the parent (a pool.c worker
 * thread).  The proxy takes futures from the shared queue, marks them
 * RUNNING (a call in the send-ahead window counts as running, as in
 * Python), writes them
 * as frames (wire.h) and reads results back in order, completing the
 * futures with the encoded outcome; the owning state decodes it (big arrays
 * come through the ring, slabring.h: the proxy copies them out).  The proxy
 * never blocks on one pipe while the other could stall: both ends are
 * non-blocking and it poll()s them together, so big arguments and big
 * results cannot deadlock.
 *
 * Window: how many calls a worker may have in flight.  It follows the
 * measured time per call: many for tiny calls (one write and one read carry
 * a batch, so a call costs no syscall of its own), one for slow calls and
 * before any call was timed.  No call waits behind another while a worker
 * is free: pool_take hands a busy proxy a call ahead only when no worker
 * is idle and none could still be started, and calls sent ahead are not
 * committed.  The worker starts each only by claiming it in a page shared
 * with the proxy (claim.c); when the running call has gone on for
 * RECLAIM_AFTER while a worker idles, the proxy takes back the calls not
 * started and returns them, pending again, to the head of the queue.  A
 * call is owned by exactly one of the two, so it runs at most once and
 * its future completes once.  A call's message stays with its future
 * until it completes, so a call taken back can be sent again.
 *
 * Processes (procspawn.c): a worker retires after max_tasks_per_child calls
 * and a new one starts with the next call.  One that dies otherwise, or
 * writes a malformed frame, breaks the pool: its calls in flight and every
 * pending one fail with BrokenProcessPool.  Every child is reaped by its
 * proxy, which lists it with the monitor (procmon.c) while it lives.
 *
 * Signals: proxies, like all workers, block every signal, so a write to a
 * dead worker's pipe gives EPIPE here instead of killing the host.
 *
 * Stopping a running call (f:cancel(true), call_timeout).  A call in the
 * window whose future is done was stopped: only this proxy completes the
 * calls it sent, otherwise.  So a stop needs no message of its own: the
 * stopper (any thread) only wakes the proxy through its eventfd (a small
 * refcounted pstop, held by the stopper while it writes: the proxy may
 * have finished with the call and be gone by then).  The proxy then looks
 * for the first stopped call in its window, stores its id in the claim
 * page and signals the worker (procworker.c), which stops that call if it
 * runs it, or as it starts it.  Its RESULT is dropped like any result of
 * a done future.  Once the stopped call is the oldest in flight (the one
 * running), a worker that has not sent its result within stop_grace is
 * killed and reaped; the calls behind it never started, and go back to
 * the queue for the next worker, which starts with the next call: the
 * pool is not broken.  call_timeout is a deadline on the oldest call in
 * flight, counted from when the one before it ended (or from when it was
 * sent): then fut_timeout fails it with TimeoutError and stops it as above.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "claim.h"
#include "clock.h"
#include "procdefs.h"
#include "procspawn.h"
#include "qserve.h"
#include "proxy.h"
#include "slabring.h"
#include "transfer.h"
#include "wire.h"

#define WINDOW_MAX 256
#define RECLAIM_AFTER 0.003   /* seconds a call runs before those behind it move */
#define MALFORMED "the worker sent a malformed frame"
#define BROKEN_MSG "A process in the process pool was terminated abruptly while the future was running or pending."

/* What a stopper needs of its proxy: a way to wake it. */
typedef struct pstop {
  atomic_int refs;
  int efd;                     /* eventfd in the proxy's poll, or -1 */
} pstop;

static void ps_unref(pstop *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  if (s->efd >= 0) close(s->efd);
  free(s);
}

static void ps_hold(fut_t *f) { atomic_fetch_add(&((pstop *)f->stop_arg)->refs, 1); }

static void ps_stop(fut_t *f) {
  pstop *s = f->stop_arg;
  uint64_t one = 1;
  if (s->efd >= 0 && write(s->efd, &one, sizeof one) < 0) { /* readable already */ }
  ps_unref(s);
}

static const fut_holder stopper = {{ps_stop, FUT_STOP_HOLD}, ps_hold};

typedef struct proc {
  pid_t pid;                   /* -1: none running */
  int to, from;                /* our ends: tasks out, results in */
  pdefs defs;                  /* the code blobs it holds */
  claim_t *claim;              /* which calls sent it has started */
  slabring *ring;              /* its results' big arrays; NULL: none */
  long tasks_left;             /* before it retires; -1: never */
} proc_t;

typedef struct proxy {
  pool_t *p;
  procdata *pd;
  const char *name;
  proc_t pr;
  fut_t *inflight[WINDOW_MAX];
  uint64_t ids[WINDOW_MAX];    /* their task ids */
  int head, count;             /* ring of calls sent, in order */
  uint64_t next_id;            /* the id of the next call sent */
  tr_msg out, in;              /* bytes to write / read so far */
  size_t outoff;
  double avg, mark;            /* seconds per call (EWMA); last result time */
  int ended;                   /* the monitor saw the worker end: pump finds out how */
  int reclaiming;              /* calls were taken back: none ahead until the next result */
  qserve qs;                   /* its requests on queues */
  pstop *ctl;                  /* NULL: its calls cannot be stopped */
  int look;                    /* woken by a stopper: look for stopped calls */
  int stopping;                /* a call in the window was stopped */
  int short_of_memory;         /* a result's array could not be copied out */
  uint64_t stop_head;          /* the id of the oldest call, when it was seen stopped */
  double stop_since;           /* then (0: the oldest call is not stopped) */
} proxy;

static int put_call(proxy *x, int type, uint64_t id, const tr_msg *m);

/* Starts the worker process and queues its HELLO and INIT frames;
 * *resource: it failed for want of descriptors or processes. */
static int start_process(proxy *x, char *err, size_t errlen, int *resource) {
  spawned s;
  int cfd;
  claim_free(x->pr.claim);
  if (!(x->pr.claim = claim_create(x->next_id, &cfd))) {
    *resource = errno == EMFILE || errno == ENFILE || errno == ENOMEM;
    snprintf(err, errlen, "cannot create the claim page for a worker: %s", strerror(errno));
    return 0;
  }
  int rfd = -1;
  ring_free(x->pr.ring);
  x->pr.ring = ring_create(&rfd);   /* without one, results come as values */
  int started = spawn_worker(x->pd->worker_path, cfd, rfd, &s, err, errlen, resource);
  close(cfd);
  if (rfd >= 0) close(rfd);
  if (!started) return 0;
  x->pr.pid = s.pid;
  x->pr.to = s.to;
  x->pr.from = s.from;
  pdefs_clear(&x->pr.defs);
  x->ended = 0;
  x->reclaiming = 0;
  const pool_conf *c = pool_config(x->p);
  x->pr.tasks_left = c->max_tasks > 0 ? c->max_tasks : -1;
  pmon_add(&x->pd->mon, s.pid, s.from);

  size_t st = wire_begin(&x->out, W_HELLO);
  const char *path = c->path ? c->path : "", *cpath = c->cpath ? c->cpath : "";
  int ok = st != (size_t)-1 && wire_str(&x->out, x->name, strlen(x->name)) &&
           wire_str(&x->out, path, strlen(path)) && wire_str(&x->out, cpath, strlen(cpath)) &&
           tr_put_varint(&x->out, 0);
  if (ok) wire_end(&x->out, st);
  if (ok && c->has_init) ok = put_call(x, W_INIT, 0, &c->init);
  if (!ok) snprintf(err, errlen, "not enough memory");
  return ok;
}

/* Reaps the worker; describes how it ended into why. */
static void reap(proxy *x, char *why, size_t len) {
  pid_t pid = x->pr.pid;
  if (pid < 0) return;
  qs_worker_gone(&x->qs);   /* after its last frames were read */
  if (x->pr.to >= 0) close(x->pr.to);
  close(x->pr.from);
  x->pr.to = x->pr.from = -1;
  spawn_reap(pid, why, len);
  pmon_remove(&x->pd->mon, pid);
  x->pr.pid = -1;
}

/* ---------------------------------------------------------------- frames */

/* Queues the DEF and FORGET frames the message's blobs need, then the
 * frame of the call itself. */
static int put_call(proxy *x, int type, uint64_t id, const tr_msg *m) {
  if (!pdefs_send(&x->pr.defs, &x->out, m) || !qs_sending(&x->qs, m)) return 0;
  size_t s = wire_begin(&x->out, type);
  if (s == (size_t)-1) return 0;
  if (type == W_TASK && !tr_put_varint(&x->out, id)) return 0;
  if (!wire_msg_tagged(&x->out, m)) return 0;
  wire_end(&x->out, s);
  return 1;
}

/* Fails every call in flight with the broken-pool error. */
static void fail_inflight(proxy *x, const char *why) {
  while (x->count > 0) {
    fut_t *f = x->inflight[x->head];
    x->head = (x->head + 1) % WINDOW_MAX;
    x->count--;
    fut_fail_msg(f, OUT_BROKEN, why);
    fut_unref(f);
  }
}

/* What a RESULT frame may name besides code: a queue, an array in the ring. */
static tr_blob *named_queue(void *ctx, uint64_t id) { return qs_resolve(&((proxy *)ctx)->qs, id); }

static tr_blob *named_array(void *ctx, uint64_t pos, uint64_t slots) {
  proxy *x = ctx;
  int bad = 1;
  tr_blob *b = x->pr.ring ? ring_take(x->pr.ring, pos, slots, &bad) : NULL;
  x->short_of_memory = !b && !bad;
  return b;
}

static int failing(char *why, size_t len, const char *s) { snprintf(why, len, "%s", s); return 0; }

/* Handles the frames read so far; 0 on a malformed or FAILED frame. */
static int take_results(proxy *x, char *why, size_t len) {
  size_t off = 0;
  for (;;) {
    int type;
    const unsigned char *payload;
    size_t plen, whole;
    int rc = wire_frame(x->in.data + off, x->in.len - off, &type, &payload, &plen, &whole);
    if (rc == 0) break;
    if (rc < 0) return failing(why, len, MALFORMED);
    wire_rd r = {payload, payload + plen};
    if (type == W_QPUT || type == W_QGET || type == W_QINFO || type == W_QCLOSE || type == W_QDROP) {
      if (!qs_frame(&x->qs, type, &r, &x->out)) { snprintf(why, len, "the worker sent a malformed queue request"); return 0; }
      off += whole;
      continue;
    }
    if (type == W_FAILED) {
      snprintf(why, len, "%.*s", (int)(plen < 200 ? plen : 200), (const char *)payload);
      return 0;
    }
    uint64_t id;
    const unsigned char *tb;
    size_t tblen;
    tr_msg m;
    msg_init(&m);
    if (type != W_RESULT || !wire_varint(&r, &id) || x->count == 0 || id != x->ids[x->head] ||
        r.p >= r.end || *r.p > OUT_TRANSFER)
      return failing(why, len, MALFORMED);
    int outcome = *r.p++;
    x->short_of_memory = 0;
    if (!wire_getstr(&r, &tb, &tblen) || !wire_read_inline_q(&r, &m, &(wire_resolver){named_queue, named_array, x})) {
      msg_free(&m);
      if (!x->short_of_memory) return failing(why, len, MALFORMED);
      outcome = OUT_TRANSFER, tblen = 0;   /* this call fails, the pool goes on */
      if (!tr_encode_string(&m, "not enough memory for the result", 32)) return failing(why, len, "not enough memory");
    }
    fut_t *f = x->inflight[x->head];
    x->head = (x->head + 1) % WINDOW_MAX;
    x->count--;
    x->reclaiming = 0;
    fut_complete(f, outcome, &m, tblen ? strndup((const char *)tb, tblen) : NULL);
    msg_free(&m);
    fut_unref(f);
    double now = clk_now(), dt = now - x->mark;
    x->mark = now;
    x->avg = x->avg > 0 ? 0.8 * x->avg + 0.2 * dt : dt;
    off += whole;
  }
  if (off) {
    memmove(x->in.data, x->in.data + off, x->in.len - off);
    x->in.len -= off;
  }
  return 1;
}

/* No call is sent ahead before one was timed (the next may be long, and
 * other workers may be starting), nor while a reclaim is answered. */
static int window(proxy *x) {
  if (x->avg <= 0 || x->reclaiming) return 1;
  if (x->avg > 0.005) return 1;
  double w = 0.002 / x->avg;
  return w < 2 ? 2 : w > WINDOW_MAX ? WINDOW_MAX : (int)w;
}

/* Sends one call to the running process.  0 (with why) if it could not. */
static int send_call(proxy *x, fut_t *f, char *why, size_t len) {
  if (!put_call(x, W_TASK, x->next_id, &f->msg)) {
    snprintf(why, len, "not enough memory");
    return 0;
  }
  /* f->msg stays until the call completes: a call sent ahead and skipped
   * goes to another worker. */
  if (x->count == 0) x->mark = clk_now();
  x->inflight[(x->head + x->count) % WINDOW_MAX] = f;
  x->ids[(x->head + x->count) % WINDOW_MAX] = x->next_id;
  x->count++;
  x->next_id++;
  if (x->pr.tasks_left > 0) x->pr.tasks_left--;
  return 1;
}

/* Moves bytes both ways until something was read; 0 when the worker ended
 * (EOF or an error on its pipes). */
static int pump(proxy *x, int timeout_ms) {
  int efd = x->ctl ? x->ctl->efd : -1;   /* poll skips a negative one */
  struct pollfd pf[4] = {{x->pr.from, POLLIN, 0}, {x->qs.efd, POLLIN, 0}, {efd, POLLIN, 0},
                         {x->pr.to, POLLOUT, 0}};
  int n = x->outoff < x->out.len ? 4 : 3;
  int qt = qs_timeout_ms(&x->qs);
  if (qt >= 0 && (timeout_ms < 0 || qt < timeout_ms)) timeout_ms = qt;
  if (poll(pf, (nfds_t)n, timeout_ms) < 0) return errno == EINTR;
  if (pf[2].revents & POLLIN) {
    uint64_t v;
    if (read(efd, &v, sizeof v) > 0) x->look = 1;
  }
  if (x->qs.head && !qs_serve(&x->qs, &x->out)) return 0;   /* a queue changed, or a deadline */
  /* Non-blocking: replies just made go out in this round too. */
  if (x->outoff < x->out.len && (n == 3 || (pf[3].revents & (POLLOUT | POLLERR | POLLHUP)))) {
    ssize_t w = write(x->pr.to, x->out.data + x->outoff, x->out.len - x->outoff);
    if (w > 0) {
      x->outoff += (size_t)w;
      if (x->outoff == x->out.len) x->out.len = x->outoff = 0;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      x->out.len = x->outoff = 0;   /* EPIPE: the worker is gone; read says how */
    }
  }
  if (pf[0].revents & (POLLIN | POLLERR | POLLHUP)) {
    if (!msg_reserve(&x->in, 65536)) return 0;
    ssize_t r = read(x->pr.from, x->in.data + x->in.len, x->in.cap - x->in.len);
    if (r == 0) return 0;
    if (r < 0) return errno == EAGAIN || errno == EINTR;
    x->in.len += (size_t)r;
  }
  return 1;
}

/* Calls sent ahead wait behind the one running; once it has run for
 * RECLAIM_AFTER (and well past the usual time per call) while another
 * worker is idle, those not started are taken back (claim.c) and given
 * back to the queue, for that worker.  Returns the poll timeout until the
 * next look (ms, -1: none). */
static int reclaim_timer(proxy *x) {
  if (x->count < 2 || x->reclaiming) return -1;
  double due = x->mark + RECLAIM_AFTER + 4 * x->avg, now = clk_now();
  if (now < due) return (int)((due - now) * 1000) + 1;
  if (!pool_idle_workers(x->p)) return (int)(RECLAIM_AFTER * 1000);
  uint64_t from = claim_take_back(x->pr.claim, x->next_id);
  if (from == x->next_id) return 1;   /* the worker started one meanwhile: soon again */
  fut_t *back[WINDOW_MAX];
  int n = 0;
  while (x->count > 0 && x->ids[(x->head + x->count - 1) % WINDOW_MAX] >= from) {
    back[n++] = x->inflight[(x->head + x->count - 1) % WINDOW_MAX];
    x->count--;
    if (x->pr.tasks_left >= 0) x->pr.tasks_left++;
  }
  for (int i = 0; i < n / 2; i++) {   /* back in the order they were sent */
    fut_t *t = back[i];
    back[i] = back[n - 1 - i];
    back[n - 1 - i] = t;
  }
  x->reclaiming = 1;
  pool_giveback(x->p, back, n);
  return -1;
}

/* ------------------------------------------------------------- stopping */

/* Finds the first stopped call in flight, tells the worker about it (once
 * per call) and notes since when the oldest call has been stopped. */
static void update_stops(proxy *x) {
  uint64_t first = CLAIM_NONE;
  for (int i = 0; i < x->count; i++) {
    int k = (x->head + i) % WINDOW_MAX;
    if (fut_done(atomic_load(&x->inflight[k]->state))) { first = x->ids[k]; break; }
  }
  x->look = 0;
  x->stopping = first != CLAIM_NONE;
  if (!x->stopping || first != x->ids[x->head]) {
    x->stop_since = 0;
  } else if (!x->stop_since || x->stop_head != first) {
    x->stop_head = first;
    x->stop_since = clk_now();
  }
  if (x->stopping && x->pr.pid >= 0 && atomic_load(&x->pr.claim->stop) != first) {
    atomic_store(&x->pr.claim->stop, first);
    kill(x->pr.pid, CLAIM_STOP_SIGNAL);
  }
}

static int ms_until(double due, double now) {
  if (due <= now) return 0;
  double ms = (due - now) * 1000 + 1;
  return ms > 1e9 ? 1000000000 : (int)ms;
}

/* call_timeout and stop_grace, for the oldest call in flight: times it
 * out when it has run too long; sets *kill when it was stopped and the
 * worker has not let go of it in time.  Returns the poll timeout until the
 * next look (ms, -1: none). */
static int stop_timer(proxy *x, int *kill_now) {
  *kill_now = 0;
  if (x->count == 0 || x->pr.pid < 0) return -1;
  const pool_conf *c = pool_config(x->p);
  double now = clk_now();
  if (!x->stop_since && c->call_timeout > 0 && now >= x->mark + c->call_timeout) {
    fut_timeout(x->inflight[x->head]);   /* wakes us too: harmless */
    update_stops(x);
  }
  if (x->stop_since) {
    double due = x->stop_since + c->stop_grace;
    if (now >= due) *kill_now = 1;
    return ms_until(due, now);
  }
  return c->call_timeout > 0 ? ms_until(x->mark + c->call_timeout, now) : -1;
}

static int min_timeout(int a, int b) { return a < 0 ? b : b < 0 ? a : a < b ? a : b; }

/* The worker kept running a stopped call past the grace: kills it, keeps
 * the results it wrote before, and gives the calls behind the stopped one
 * (none of which started) back to the queue.  The next call starts a new
 * worker.  0 (with why) if what it wrote was malformed. */
static int replace_worker(proxy *x, char *why, size_t len) {
  kill(x->pr.pid, SIGKILL);
  x->out.len = x->outoff = 0;      /* nothing more for it */
  while (pump(x, -1))               /* to the end of what it wrote */
    ;
  if (!take_results(x, why, len)) return 0;
  x->in.len = 0;                    /* a frame cut short by the kill */
  reap(x, NULL, 0);
  fut_t *back[WINDOW_MAX];
  int n = 0;
  while (x->count > 0) {
    fut_t *f = x->inflight[x->head];
    x->head = (x->head + 1) % WINDOW_MAX;
    x->count--;
    if (fut_done(atomic_load(&f->state))) fut_unref(f);   /* stopped: done with */
    else back[n++] = f;
  }
  x->head = 0;
  x->stopping = 0;
  x->stop_since = 0;
  if (n) pool_giveback(x->p, back, n);
  return 1;
}

/* The proxy's own descriptors, made once it has a worker: out of
 * descriptors, a proxy that cannot start one gives its calls back and
 * leaves holding none, so the workers that run can take them.  Without
 * them, waits on queues end by their deadlines only and a stop is seen at
 * the next poll.  Made before any call of this proxy can be stopped. */
static void proxy_fds(proxy *x) {
  qs_open(&x->qs);
  if (x->ctl && x->ctl->efd < 0) x->ctl->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

/* Takes up to `room` calls (waiting for the first only if nothing is in
 * flight) and sends those not cancelled meanwhile. */
static int feed(proxy *x, int room, int *stop, char *why, size_t len) {
  fut_t *got[WINDOW_MAX];
  int n = 0;
  /* Puts its worker sent ahead, waiting for room, keep it polling. */
  int idle = x->count == 0 && x->outoff == x->out.len && !x->qs.head;
  /* Sleeping for work, the proxy leaves its worker to the monitor; if that
   * worker already ended, it does not sleep: pump() sees the end. */
  int watched = idle && x->pr.pid >= 0;
  if (watched && !pmon_watch_begin(&x->pd->mon, x->pr.pid)) idle = watched = 0, x->ended = 1;
  fut_t *f = pool_take(x->p, idle, got + 1, room - 1, &n);
  if (watched) pmon_watch_end(&x->pd->mon, x->pr.pid);
  if (!f) { if (idle) *stop = 1; return 1; }
  got[0] = f;
  n++;
  int ok = 1, resource = 0;
  size_t others = 1;
  if (x->pr.pid < 0) {
    pmon_start_begin(&x->pd->mon);
    int started = start_process(x, why, len, &resource);
    others = pmon_start_end(&x->pd->mon);
    if (started) proxy_fds(x);
  }
  if (x->pr.pid < 0) {
    /* Out of descriptors or processes while other workers run or start:
     * they take these calls, and this proxy leaves (a later submit may
     * start one again).  With no other worker, no call could ever run:
     * break. */
    if (resource && others > 0) {
      pool_giveback(x->p, got, n);
      *stop = 1;
      return 1;
    }
    pool_break(x->p, why);   /* first: a failed future means a broken pool */
    ok = 0;
  }
  for (int i = 0; i < n; i++) {
    fut_t *c = got[i];
    int running = ok && (x->ctl ? fut_set_running_stoppable(c, &stopper.s, x->ctl) : fut_set_running(c));
    if (ok && !running) { fut_unref(c); continue; }   /* cancelled */
    if (ok && !wire_fits(&c->msg, 0)) {
      fut_fail_msg(c, OUT_TRANSFER, "the call is too large to send to a worker process (2 GiB at most)");
      fut_unref(c);
      continue;
    }
    if (ok && send_call(x, c, why, len)) continue;
    /* This call and the rest fail with the reason; the pool breaks first,
     * so whoever sees one of them fail finds the pool broken. */
    if (ok) pool_break(x->p, why);
    ok = 0;
    fut_fail_msg(c, OUT_BROKEN, why);
    fut_unref(c);
  }
  return ok;
}

void *proxy_main(void *arg) {
  pool_worker *w = arg;
  proxy x = {0};
  x.p = w->pool;
  x.pd = pool_data(x.p);
  x.name = w->name;
  x.pr.pid = -1;
  x.pr.to = x.pr.from = -1;
  msg_init(&x.out);
  msg_init(&x.in);
  qs_init(&x.qs);
  pmon_enter(&x.pd->mon);
  if ((x.ctl = calloc(1, sizeof *x.ctl))) {
    atomic_init(&x.ctl->refs, 1);
    x.ctl->efd = -1;   /* made with the first worker process (proxy_fds) */
  }
  char why[256] = "", how[96] = "";
  int broken = 0;
  for (;;) {
    /* A retired worker: collect its exit, the next call starts a new one. */
    if (x.pr.pid >= 0 && x.pr.tasks_left == 0 && x.count == 0 && x.outoff == x.out.len) {
      close(x.pr.to);   /* end of input: the worker exits */
      x.pr.to = -1;
      while (pump(&x, -1))
        ;
      if (x.in.len && !take_results(&x, why, sizeof why)) { broken = 1; break; }
      reap(&x, NULL, 0);
    }
    int room = window(&x) - x.count;
    /* Never more calls than the worker (or the next one) has left. */
    int max_tasks = pool_config(x.p)->max_tasks;
    long left = x.pr.pid >= 0 ? x.pr.tasks_left : max_tasks > 0 ? max_tasks : -1;
    if (left > 0 && room > left) room = (int)left;
    if (room > 0 && !(x.pr.pid >= 0 && x.pr.tasks_left == 0)) {
      int stop = 0;
      if (!feed(&x, room, &stop, why, sizeof why)) { broken = 1; break; }
      if (stop) break;
    }
    if (x.pr.pid < 0) continue;
    /* Nothing in flight (every call taken was cancelled): wait for work,
     * not on a worker that has nothing to say. */
    if (x.count == 0 && x.outoff == x.out.len && !x.ended && !x.qs.head) continue;
    int kill_now, timeout = stop_timer(&x, &kill_now);
    if (kill_now) {
      if (!replace_worker(&x, why, sizeof why)) { broken = 1; break; }
      continue;
    }
    timeout = min_timeout(reclaim_timer(&x), timeout);
    /* Every call taken back (a worker slow to start even the first): none
     * will answer; wait for work again instead. */
    if (x.count == 0 && x.outoff == x.out.len && !x.ended && !x.qs.head) continue;
    if (!pump(&x, timeout)) {
      /* The worker ended.  Results it wrote before are still good. */
      int good = take_results(&x, why, sizeof why);
      if (good && !x.in.len && x.count == 0 && x.pr.tasks_left == 0) { reap(&x, NULL, 0); continue; }
      reap(&x, how, sizeof how);
      if (good && x.in.len) snprintf(why, sizeof why, "the worker ended in the middle of a frame");
      if (good && !x.in.len) snprintf(why, sizeof why, "%s%s", BROKEN_MSG, how);
      else snprintf(why + strlen(why), sizeof why - strlen(why), "%s", how);
      broken = 1;
      break;
    }
    if (!take_results(&x, why, sizeof why)) { broken = 1; break; }
    if (x.look || x.stopping) update_stops(&x);
  }
  if (broken) {
    pool_break(x.p, why);   /* first: a failed future means a broken pool */
    fail_inflight(&x, why);
    if (x.pr.pid >= 0) kill(x.pr.pid, SIGKILL);
  }
  reap(&x, NULL, 0);
  pdefs_clear(&x.pr.defs);
  claim_free(x.pr.claim);
  ring_free(x.pr.ring);
  if (x.ctl) ps_unref(x.ctl);
  msg_free(&x.out);
  msg_free(&x.in);
  qs_free(&x.qs);
  pmon_leave(&x.pd->mon);
  pool_worker_exit(w);
  return NULL;
}
