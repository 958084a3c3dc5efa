/* ProcessPoolExecutor: worker processes fed over pipes.
 *
 * DESIGN
 * Each worker process has a proxy thread in the parent (a pool.c worker
 * thread).  The proxy takes futures from the shared queue, marks them
 * RUNNING (a call sent ahead counts as running, as in Python), writes them
 * as frames (wire.h) and reads results back in order, completing the
 * futures with the encoded outcome; the owning state decodes it.  The proxy
 * never blocks on one pipe while the other could stall: both ends are
 * non-blocking and it poll()s them together, so big arguments and big
 * results cannot deadlock.
 *
 * Window: how many calls a worker may have in flight.  It follows the
 * measured time per call: many for tiny calls (one write and one read carry
 * a batch, so a call costs no syscall of its own), one for slow calls (no
 * call waits behind a long one while another worker idles).
 *
 * Processes: spawned with posix_spawn (nothing runs between fork and exec)
 * from the worker program found next to core.so, with the task pipe as
 * fd 3 and the result pipe as fd 4; every descriptor of ours is
 * close-on-exec and the worker closes anything else it inherited.  A worker
 * retires after max_tasks_per_child calls and a new one starts with the
 * next call.  One that dies otherwise, or writes a malformed frame, breaks
 * the pool: its calls in flight and every pending one fail with
 * BrokenProcessPool.  Every child is reaped by its proxy.
 *
 * Monitor: a proxy waiting for work sleeps on the pool's condition, not on
 * its pipes, so it cannot see its worker die.  One monitor thread per pool
 * (started with the first worker process, stopped and joined by the last
 * proxy to exit) poll()s a duplicate of every worker's result pipe for
 * POLLHUP only.  A worker that ends while its proxy waits for work breaks
 * the pool at once (as in Python: later submits raise); one that ends
 * while its proxy is busy is left to the proxy, which sees the end on its
 * own pipes.  pd->mu guards the process list and the monitor's state; it
 * is never held with the pool's lock.
 *
 * Killing: kill_workers/terminate_workers signal every listed process and
 * leave the signal in pd->kill_sig, so a process spawned a moment later
 * (its future already taken) is signalled as it is listed.
 *
 * Signals: proxies, like all workers, block every signal, so a write to a
 * dead worker's pipe gives EPIPE here instead of killing the host.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "lauxlib.h"
#include "clock.h"
#include "futures.h"
#include "pool.h"
#include "procpool.h"
#include "transfer.h"
#include "wire.h"

extern char **environ;

#define WINDOW_MAX 256
#define BROKEN_MSG "A process in the process pool was terminated abruptly while the future was running or pending."

/* A live worker process, as the monitor and kill_workers see it. */
typedef struct wproc {
  pid_t pid;
  int fd;                      /* a duplicate of its result pipe: HUP once it ends */
  int watch;                   /* its proxy waits for work, not on the pipes */
  int hup;                     /* the monitor saw it end */
} wproc;

enum { MON_NONE, MON_RUNNING, MON_STOPPING };

typedef struct procdata {
  char *worker_path;
  pool_t *p;                   /* not a reference: only proxies (which hold one) use it */
  pthread_mutex_t mu;          /* guards everything below */
  pthread_cond_t stopped;      /* the monitor went from STOPPING to NONE */
  wproc *procs;
  int nprocs, capprocs;
  int kill_sig;                /* set by kill_workers: signal newcomers too */
  int nproxies;
  int mon;                     /* MON_* */
  pthread_t mon_thread;
  int mon_fd;                  /* eventfd that wakes the monitor */
} procdata;

typedef struct proc {
  pid_t pid;                   /* -1: none running */
  int to, from;                /* our ends: tasks out, results in */
  uint64_t *known;             /* blob ids this process has been sent */
  size_t nknown, capknown;
  long tasks_left;             /* before it retires; -1: never */
} proc_t;

typedef struct proxy {
  pool_t *p;
  procdata *pd;
  const char *name;
  proc_t pr;
  fut_t *inflight[WINDOW_MAX];
  int head, count;             /* ring of calls sent, in order */
  uint64_t next_id;            /* task id of inflight[head] is first_id */
  uint64_t first_id;
  tr_msg out, in;              /* bytes to write / read so far */
  size_t outoff;
  double avg, mark;            /* seconds per call (EWMA); last result time */
  int ended;                   /* the monitor saw the worker end: pump finds out how */
} proxy;

/* ------------------------------------------------------------- processes */

/* How a worker ended, for the broken-pool message. */
static void describe_end(char *why, size_t len, pid_t pid, int signo, int code) {
  if (signo > 0) snprintf(why, len, " (worker %d killed by signal %d)", (int)pid, signo);
  else if (code >= 0) snprintf(why, len, " (worker %d exited with status %d)", (int)pid, code);
  else snprintf(why, len, " (worker %d ended)", (int)pid);
}

static void wake_monitor(procdata *pd) {
  uint64_t one = 1;
  if (pd->mon == MON_RUNNING && write(pd->mon_fd, &one, sizeof one) < 0) { /* full: awake anyway */ }
}

/* The monitor saw a worker end while its proxy waited for work: the pool
 * is broken.  Its exit status follows the closing of its pipes at once;
 * read it without reaping (the proxy reaps). */
static void monitor_break(procdata *pd, pid_t pid) {
  char how[96], why[256];
  describe_end(how, sizeof how, pid, 0, -1);
  for (int i = 0; i < 1000; i++) {
    siginfo_t si;
    si.si_pid = 0;
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) break;
    if (si.si_pid == pid) {
      if (si.si_code == CLD_EXITED) describe_end(how, sizeof how, pid, 0, si.si_status);
      else describe_end(how, sizeof how, pid, si.si_status, -1);
      break;
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  snprintf(why, sizeof why, "%s%s", BROKEN_MSG, how);
  pool_break(pd->p, why);
}

static void *monitor_main(void *arg) {
  procdata *pd = arg;
  struct pollfd *pf = NULL;
  pid_t *who = NULL;
  int cap = 0;
  for (;;) {
    int n = 1;
    pthread_mutex_lock(&pd->mu);
    if (pd->mon == MON_STOPPING) { pthread_mutex_unlock(&pd->mu); break; }
    if (cap < pd->nprocs + 1) {
      int c = pd->nprocs + 8;
      struct pollfd *npf = realloc(pf, (size_t)c * sizeof *npf);
      if (npf) pf = npf;
      pid_t *nwho = npf ? realloc(who, (size_t)c * sizeof *nwho) : NULL;
      if (nwho) { who = nwho; cap = c; }
    }
    if (cap == 0) { pthread_mutex_unlock(&pd->mu); break; }   /* no memory: no monitor */
    pf[0].fd = pd->mon_fd;
    pf[0].events = POLLIN;
    for (int i = 0; i < pd->nprocs && n < cap; i++) {
      wproc *w = &pd->procs[i];
      if (w->fd < 0 || w->hup) continue;
      pf[n].fd = w->fd;
      pf[n].events = 0;   /* POLLHUP and POLLERR only: results are the proxy's */
      who[n++] = w->pid;
    }
    pthread_mutex_unlock(&pd->mu);
    if (poll(pf, (nfds_t)n, -1) < 0) continue;
    if (pf[0].revents) {
      uint64_t v;
      if (read(pd->mon_fd, &v, sizeof v) < 0) { /* nothing to read: fine */ }
    }
    for (int i = 1; i < n; i++) {
      if (!pf[i].revents) continue;
      int broke = 0;
      pthread_mutex_lock(&pd->mu);
      for (int j = 0; j < pd->nprocs; j++) {
        wproc *w = &pd->procs[j];
        if (w->pid != who[i] || w->fd != pf[i].fd) continue;
        w->hup = 1;
        broke = w->watch;
      }
      pthread_mutex_unlock(&pd->mu);
      if (broke) monitor_break(pd, who[i]);
    }
  }
  free(pf);
  free(who);
  return NULL;
}

/* Lists a new worker process (fd: a duplicate of its result pipe, or -1),
 * starting the monitor if none runs.  With pd->mu held. */
static void procs_add(procdata *pd, pid_t pid, int fd) {
  if (pd->nprocs == pd->capprocs) {
    int cap = pd->capprocs ? pd->capprocs * 2 : 4;
    wproc *n = realloc(pd->procs, (size_t)cap * sizeof *n);
    if (n) { pd->procs = n; pd->capprocs = cap; }
  }
  if (pd->nprocs == pd->capprocs) {   /* no memory: unlisted, unkillable by kill_workers */
    if (fd >= 0) close(fd);
    return;
  }
  while (pd->mon == MON_STOPPING) pthread_cond_wait(&pd->stopped, &pd->mu);
  if (pd->mon == MON_NONE && fd >= 0) {
    pd->mon_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pd->mon_fd >= 0 && pthread_create(&pd->mon_thread, NULL, monitor_main, pd) == 0) {
      pd->mon = MON_RUNNING;
    } else if (pd->mon_fd >= 0) {
      close(pd->mon_fd);
      pd->mon_fd = -1;
    }
  }
  if (pd->mon != MON_RUNNING && fd >= 0) { close(fd); fd = -1; }   /* unwatched */
  pd->procs[pd->nprocs++] = (wproc){pid, fd, 0, 0};
  if (pd->kill_sig) kill(pid, pd->kill_sig);
  wake_monitor(pd);
}

static wproc *procs_find(procdata *pd, pid_t pid) {
  for (int i = 0; i < pd->nprocs; i++)
    if (pd->procs[i].pid == pid) return &pd->procs[i];
  return NULL;
}

static void procs_remove(procdata *pd, pid_t pid) {
  pthread_mutex_lock(&pd->mu);
  wproc *w = procs_find(pd, pid);
  if (w) {
    if (w->fd >= 0) close(w->fd);
    *w = pd->procs[--pd->nprocs];
  }
  pthread_mutex_unlock(&pd->mu);
}

/* A proxy about to wait for work tells the monitor to watch its worker;
 * 0 if that worker already ended (the proxy must not sleep). */
static int watch_begin(procdata *pd, pid_t pid) {
  pthread_mutex_lock(&pd->mu);
  wproc *w = procs_find(pd, pid);
  int alive = !w || !w->hup;
  if (w && alive) w->watch = 1;
  pthread_mutex_unlock(&pd->mu);
  return alive;
}

static void watch_end(procdata *pd, pid_t pid) {
  pthread_mutex_lock(&pd->mu);
  wproc *w = procs_find(pd, pid);
  if (w) w->watch = 0;
  pthread_mutex_unlock(&pd->mu);
}

static void proxy_enter(procdata *pd) {
  pthread_mutex_lock(&pd->mu);
  pd->nproxies++;
  pthread_mutex_unlock(&pd->mu);
}

/* The last proxy out stops the monitor and joins it, so no thread of ours
 * outlives the pool's last worker thread. */
static void proxy_leave(procdata *pd) {
  pthread_mutex_lock(&pd->mu);
  int last = --pd->nproxies == 0 && pd->mon == MON_RUNNING;
  if (last) {
    wake_monitor(pd);
    pd->mon = MON_STOPPING;
  }
  pthread_mutex_unlock(&pd->mu);
  if (!last) return;
  pthread_join(pd->mon_thread, NULL);
  pthread_mutex_lock(&pd->mu);
  close(pd->mon_fd);
  pd->mon_fd = -1;
  pd->mon = MON_NONE;
  pthread_cond_broadcast(&pd->stopped);
  pthread_mutex_unlock(&pd->mu);
}

static int high_fd(int fd) {   /* away from 0..4, which the worker uses */
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return h;
}

/* Starts the worker process and queues its HELLO (and INIT) frames. */
static int spawn_worker(proxy *x, char *err, size_t errlen) {
  pool_t *p = x->p;
  int tp[2], rp[2];
  /* posix_spawn may report a program that cannot run only as an exit
   * status 127 (old C libraries, valgrind): say it clearly first. */
  if (access(x->pd->worker_path, X_OK) != 0) {
    snprintf(err, errlen, "cannot start the worker program '%s': %s (name one with worker = path)",
             x->pd->worker_path, strerror(errno));
    return 0;
  }
  if (pipe2(tp, O_CLOEXEC) != 0) goto fail_errno;
  if (pipe2(rp, O_CLOEXEC) != 0) { close(tp[0]); close(tp[1]); goto fail_errno; }
  for (int i = 0; i < 2; i++) { tp[i] = high_fd(tp[i]); rp[i] = high_fd(rp[i]); }
  /* Room for a big result in one write: fewer trips between the two
   * processes.  Refused past the user's pipe quota, which is fine. */
  if (rp[1] >= 0 && fcntl(rp[1], F_SETPIPE_SZ, 1 << 20) < 0) { /* the default size */ }
  if (tp[0] < 0 || tp[1] < 0 || rp[0] < 0 || rp[1] < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) {
      if (tp[i] >= 0) close(tp[i]);
      if (rp[i] >= 0) close(rp[i]);
    }
    errno = e;
    goto fail_errno;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  /* Default dispositions, and SIGINT blocked until the worker has set it
   * to be ignored: a Ctrl-C while it starts must not kill it. */
  sigset_t intr, all;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  sigfillset(&all);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, tp[0], 3);
  posix_spawn_file_actions_adddup2(&fa, rp[1], 4);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &intr);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *argv[] = {x->pd->worker_path, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, x->pd->worker_path, &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(tp[0]);
  close(rp[1]);
  if (rc != 0) {
    close(tp[1]);
    close(rp[0]);
    snprintf(err, errlen, "cannot start the worker program '%s': %s (name one with worker = path)",
             x->pd->worker_path, strerror(rc));
    return 0;
  }
  fcntl(tp[1], F_SETFL, O_NONBLOCK);
  fcntl(rp[0], F_SETFL, O_NONBLOCK);
  x->pr.pid = pid;
  x->pr.to = tp[1];
  x->pr.from = rp[0];
  x->pr.nknown = 0;
  x->ended = 0;
  const pool_conf *c = pool_config(p);
  x->pr.tasks_left = c->max_tasks > 0 ? c->max_tasks : -1;
  pthread_mutex_lock(&x->pd->mu);
  procs_add(x->pd, pid, fcntl(rp[0], F_DUPFD_CLOEXEC, 10));
  pthread_mutex_unlock(&x->pd->mu);

  size_t s = wire_begin(&x->out, W_HELLO);
  const char *path = c->path ? c->path : "", *cpath = c->cpath ? c->cpath : "";
  int ok = s != (size_t)-1 && wire_str(&x->out, x->name, strlen(x->name)) &&
           wire_str(&x->out, path, strlen(path)) && wire_str(&x->out, cpath, strlen(cpath)) &&
           tr_put_varint(&x->out, 0);
  if (!ok) { snprintf(err, errlen, "not enough memory"); return 0; }
  wire_end(&x->out, s);
  return 1;   /* send_call queues the INIT frame, if any */
fail_errno:
  snprintf(err, errlen, "cannot create pipes for a worker: %s", strerror(errno));
  return 0;
}

/* Reaps the worker; describes how it ended into why. */
static void reap(proxy *x, char *why, size_t len) {
  int status = 0;
  pid_t pid = x->pr.pid;
  if (pid < 0) return;
  if (x->pr.to >= 0) close(x->pr.to);
  close(x->pr.from);
  x->pr.to = x->pr.from = -1;
  pid_t r;
  while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
    ;
  procs_remove(x->pd, pid);
  x->pr.pid = -1;
  if (!why) return;
  if (r < 0) describe_end(why, len, pid, 0, -1);
  else if (WIFSIGNALED(status)) describe_end(why, len, pid, WTERMSIG(status), -1);
  else describe_end(why, len, pid, 0, WEXITSTATUS(status));
}

/* ---------------------------------------------------------------- frames */

static int known(proc_t *pr, uint64_t id) {
  for (size_t i = 0; i < pr->nknown; i++)
    if (pr->known[i] == id) return 1;
  return 0;
}

static int remember(proc_t *pr, uint64_t id) {
  if (pr->nknown == pr->capknown) {
    size_t cap = pr->capknown ? pr->capknown * 2 : 16;
    uint64_t *n = realloc(pr->known, cap * sizeof *n);
    if (!n) return 0;
    pr->known = n;
    pr->capknown = cap;
  }
  pr->known[pr->nknown++] = id;
  return 1;
}

/* Queues DEF frames for the message's blobs this process has not seen,
 * then the frame of the call itself. */
static int put_call(proxy *x, int type, uint64_t id, const tr_msg *m) {
  for (int i = 0; i < m->nblobs; i++) {
    tr_blob *b = m->blobs[i];
    if (known(&x->pr, b->id)) continue;
    size_t s = wire_begin(&x->out, W_DEF);
    if (s == (size_t)-1 || !tr_put_varint(&x->out, b->id) || !wire_bytes(&x->out, b->code, b->len) ||
        !remember(&x->pr, b->id))
      return 0;
    wire_end(&x->out, s);
  }
  size_t s = wire_begin(&x->out, type);
  if (s == (size_t)-1) return 0;
  if (type == W_TASK && !tr_put_varint(&x->out, id)) return 0;
  if (!wire_msg_by_id(&x->out, m)) return 0;
  wire_end(&x->out, s);
  return 1;
}

/* Fails every call in flight with the broken-pool error. */
static void fail_inflight(proxy *x, const char *why) {
  while (x->count > 0) {
    fut_t *f = x->inflight[x->head];
    x->head = (x->head + 1) % WINDOW_MAX;
    x->count--;
    x->first_id++;
    fut_fail_msg(f, OUT_BROKEN, why);
    fut_unref(f);
  }
}

/* Handles the frames read so far; 0 on a malformed or FAILED frame. */
static int take_results(proxy *x, char *why, size_t len) {
  size_t off = 0;
  for (;;) {
    int type;
    const unsigned char *payload;
    size_t plen, whole;
    int rc = wire_frame(x->in.data + off, x->in.len - off, &type, &payload, &plen, &whole);
    if (rc == 0) break;
    if (rc < 0) { snprintf(why, len, "the worker sent a malformed frame"); return 0; }
    wire_rd r = {payload, payload + plen};
    if (type == W_FAILED) {
      snprintf(why, len, "%.*s", (int)(plen < 200 ? plen : 200), (const char *)payload);
      return 0;
    }
    uint64_t id;
    const unsigned char *tb;
    size_t tblen;
    tr_msg m;
    msg_init(&m);
    if (type != W_RESULT || !wire_varint(&r, &id) || id != x->first_id || x->count == 0 ||
        r.p >= r.end || *r.p > OUT_TRANSFER) {
      snprintf(why, len, "the worker sent a malformed frame");
      return 0;
    }
    int outcome = *r.p++;
    if (!wire_getstr(&r, &tb, &tblen) || !wire_read_inline(&r, &m)) {
      msg_free(&m);
      snprintf(why, len, "the worker sent a malformed frame");
      return 0;
    }
    fut_t *f = x->inflight[x->head];
    x->head = (x->head + 1) % WINDOW_MAX;
    x->count--;
    x->first_id++;
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

static int window(proxy *x) {
  if (x->avg <= 0) return 2;
  if (x->avg > 0.005) return 1;
  double w = 0.002 / x->avg;
  return w < 2 ? 2 : w > WINDOW_MAX ? WINDOW_MAX : (int)w;
}

/* Sends one call: starts a process if needed.  0 (with why) if none could. */
static int send_call(proxy *x, fut_t *f, char *why, size_t len) {
  if (x->pr.pid < 0) {
    if (!spawn_worker(x, why, len)) return 0;
    const pool_conf *c = pool_config(x->p);
    if (c->has_init && !put_call(x, W_INIT, 0, &c->init)) {
      snprintf(why, len, "not enough memory");
      return 0;
    }
  }
  if (!put_call(x, W_TASK, x->next_id, &f->msg)) {
    snprintf(why, len, "not enough memory");
    return 0;
  }
  msg_free(&f->msg);   /* the call is on its way */
  if (x->count == 0) x->mark = clk_now();
  x->inflight[(x->head + x->count) % WINDOW_MAX] = f;
  x->count++;
  x->next_id++;
  if (x->pr.tasks_left > 0) x->pr.tasks_left--;
  return 1;
}

/* Moves bytes both ways until something was read; 0 when the worker ended
 * (EOF or an error on its pipes). */
static int pump(proxy *x) {
  struct pollfd pf[2] = {{x->pr.from, POLLIN, 0}, {x->pr.to, POLLOUT, 0}};
  int n = x->outoff < x->out.len ? 2 : 1;
  if (poll(pf, (nfds_t)n, -1) < 0) return errno == EINTR;
  if (n == 2 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
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

/* Takes up to `room` calls (waiting for the first only if nothing is in
 * flight) and sends those not cancelled meanwhile. */
static int feed(proxy *x, int room, int *stop, char *why, size_t len) {
  fut_t *got[WINDOW_MAX];
  int n = 0;
  int idle = x->count == 0 && x->outoff == x->out.len;
  /* Sleeping for work, the proxy leaves its worker to the monitor; if that
   * worker already ended, it does not sleep: pump() sees the end. */
  int watched = idle && x->pr.pid >= 0;
  if (watched && !watch_begin(x->pd, x->pr.pid)) idle = watched = 0, x->ended = 1;
  fut_t *f = pool_take(x->p, idle, got + 1, room - 1, &n);
  if (watched) watch_end(x->pd, x->pr.pid);
  if (!f) { if (idle) *stop = 1; return 1; }
  got[0] = f;
  n++;
  int ok = 1;
  for (int i = 0; i < n; i++) {
    fut_t *c = got[i];
    if (ok && !fut_set_running(c)) { fut_unref(c); continue; }   /* cancelled */
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

static void *proxy_main(void *arg) {
  pool_worker *w = arg;
  proxy x = {0};
  x.p = w->pool;
  x.pd = pool_data(x.p);
  x.name = w->name;
  x.pr.pid = -1;
  x.pr.to = x.pr.from = -1;
  msg_init(&x.out);
  msg_init(&x.in);
  proxy_enter(x.pd);
  char why[256] = "", how[96] = "";
  int broken = 0;
  for (;;) {
    /* A retired worker: collect its exit, the next call starts a new one. */
    if (x.pr.pid >= 0 && x.pr.tasks_left == 0 && x.count == 0 && x.outoff == x.out.len) {
      close(x.pr.to);   /* end of input: the worker exits */
      x.pr.to = -1;
      while (pump(&x))
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
    if (x.count == 0 && x.outoff == x.out.len && !x.ended) continue;
    if (!pump(&x)) {
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
  }
  if (broken) {
    pool_break(x.p, why);   /* first: a failed future means a broken pool */
    fail_inflight(&x, why);
    if (x.pr.pid >= 0) kill(x.pr.pid, SIGKILL);
  }
  reap(&x, NULL, 0);
  free(x.pr.known);
  msg_free(&x.out);
  msg_free(&x.in);
  proxy_leave(x.pd);
  pool_worker_exit(w);
  return NULL;
}

/* ------------------------------------------------------------- Lua side */

static void destroy(void *data) {
  procdata *pd = data;
  free(pd->worker_path);
  free(pd->procs);
  pthread_mutex_destroy(&pd->mu);
  pthread_cond_destroy(&pd->stopped);
  free(pd);
}

static const pool_backend backend = {
  {"ProcessPoolExecutor", &pool_executor_class}, LUAX_BROKEN_PROCESS, 1, 0, proxy_main, destroy
};

/* An absolute path: a relative one is taken from the current directory
 * now, so a host that changes directory later still finds the program. */
static char *absolute(const char *path) {
  if (path[0] == '/') return strdup(path);
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return strdup(path);
  size_t n = strlen(cwd) + strlen(path) + 2;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s/%s", cwd, path);
  return s;
}

/* Where the worker program is: next to the file that holds this code
 * (as dlopen named it, perhaps relative to the directory of the moment). */
static char *default_worker_path(void) {
  Dl_info info;
  if (!dladdr((void *)default_worker_path, &info) || !info.dli_fname) return strdup("futures-worker");
  char *copy = strdup(info.dli_fname);
  if (!copy) return NULL;
  const char *dir = dirname(copy);
  size_t n = strlen(dir) + sizeof "/worker";
  char *path = malloc(n);
  if (path) snprintf(path, n, "%s/worker", dir);
  free(copy);
  char *abs = path ? absolute(path) : NULL;
  free(path);
  return abs;
}

static int signal_workers(lua_State *L, int sig) {
  pool_t *p = pool_check(L, 1);
  procdata *pd = pool_data(p);
  pool_break(p, sig == SIGKILL ? "the workers were killed" : "the workers were terminated");
  pthread_mutex_lock(&pd->mu);
  if (!pd->kill_sig) pd->kill_sig = sig;
  for (int i = 0; i < pd->nprocs; i++) kill(pd->procs[i].pid, sig);
  pthread_mutex_unlock(&pd->mu);
  return 0;
}

static int l_terminate_workers(lua_State *L) { return signal_workers(L, SIGTERM); }
static int l_kill_workers(lua_State *L) { return signal_workers(L, SIGKILL); }

/* ex:_pids() -> the worker process ids now running (for specs) */
static int l_pids(lua_State *L) {
  pool_t *p = pool_check(L, 1);
  procdata *pd = pool_data(p);
  lua_newtable(L);
  pthread_mutex_lock(&pd->mu);
  for (int i = 0; i < pd->nprocs; i++) {
    lua_pushinteger(L, pd->procs[i].pid);
    lua_rawseti(L, -2, i + 1);
  }
  pthread_mutex_unlock(&pd->mu);
  return 1;
}

/* core.ProcessPoolExecutor(max_workers, initializer, initargs, nil,
 *                          max_tasks_per_child, worker_path) */
static int l_new(lua_State *L) {
  const char *path = luaL_optstring(L, 6, NULL);
  lua_settop(L, 5);
  pool_t *p = pool_push_new(L, &backend);
  procdata *pd = calloc(1, sizeof *pd);
  if (!pd) return luaL_error(L, "not enough memory");
  pthread_mutex_init(&pd->mu, NULL);
  pthread_cond_init(&pd->stopped, NULL);
  pd->mon_fd = -1;
  pd->p = p;
  pool_set_data(p, pd);
  pd->worker_path = path ? absolute(path) : strdup(lua_tostring(L, lua_upvalueindex(1)));
  if (!pd->worker_path) return luaL_error(L, "not enough memory");
  return 1;
}

static const luaL_Reg extra[] = {
  {"terminate_workers", l_terminate_workers},
  {"kill_workers", l_kill_workers},
  {"_pids", l_pids},
  {NULL, NULL}
};

void ppool_open(lua_State *L) {
  pool_open(L, &backend);
  lua_getfield(L, -1, "ProcessPoolExecutor_methods");
  luaL_setfuncs(L, extra, 0);
  lua_pop(L, 1);
  /* The default worker program, found once, while the module's path (if
   * relative) still means what it meant to dlopen. */
  char *path = default_worker_path();
  if (!path) luaL_error(L, "not enough memory");
  lua_pushstring(L, path);
  free(path);
  lua_pushcclosure(L, l_new, 1);
  lua_setfield(L, -2, "ProcessPoolExecutor");
}
