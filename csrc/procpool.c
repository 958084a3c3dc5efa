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
#include <sys/wait.h>
#include <unistd.h>
#include "lauxlib.h"
#include "clock.h"
#include "core.h"
#include "futures.h"
#include "pool.h"
#include "transfer.h"
#include "wire.h"

extern char **environ;

#define WINDOW_MAX 256
#define BROKEN_MSG "A process in the process pool was terminated abruptly while the future was running or pending."

typedef struct procdata {
  char *worker_path;
  pthread_mutex_t mu;          /* guards pids */
  pid_t *pids;
  int npids, cappids;
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
} proxy;

/* ------------------------------------------------------------- processes */

static void pids_add(procdata *pd, pid_t pid) {
  pthread_mutex_lock(&pd->mu);
  if (pd->npids == pd->cappids) {
    int cap = pd->cappids ? pd->cappids * 2 : 4;
    pid_t *n = realloc(pd->pids, (size_t)cap * sizeof *n);
    if (n) { pd->pids = n; pd->cappids = cap; }
  }
  if (pd->npids < pd->cappids) pd->pids[pd->npids++] = pid;
  pthread_mutex_unlock(&pd->mu);
}

static void pids_remove(procdata *pd, pid_t pid) {
  pthread_mutex_lock(&pd->mu);
  for (int i = 0; i < pd->npids; i++)
    if (pd->pids[i] == pid) { pd->pids[i] = pd->pids[--pd->npids]; break; }
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
  if (pipe2(tp, O_CLOEXEC) != 0) goto fail_errno;
  if (pipe2(rp, O_CLOEXEC) != 0) { close(tp[0]); close(tp[1]); goto fail_errno; }
  for (int i = 0; i < 2; i++) { tp[i] = high_fd(tp[i]); rp[i] = high_fd(rp[i]); }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, tp[0], 3);
  posix_spawn_file_actions_adddup2(&fa, rp[1], 4);
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &none);
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
  x->pr.tasks_left = p->max_tasks > 0 ? p->max_tasks : -1;
  pids_add(x->pd, pid);

  size_t s = wire_begin(&x->out, W_HELLO);
  const char *path = p->path ? p->path : "", *cpath = p->cpath ? p->cpath : "";
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
  pids_remove(x->pd, pid);
  x->pr.pid = -1;
  if (!why) return;
  if (r < 0) snprintf(why, len, " (worker %d ended)", (int)pid);
  else if (WIFSIGNALED(status)) snprintf(why, len, " (worker %d killed by signal %d)", (int)pid, WTERMSIG(status));
  else snprintf(why, len, " (worker %d exited with status %d)", (int)pid, WEXITSTATUS(status));
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
    if (x->p->has_init && !put_call(x, W_INIT, 0, &x->p->init)) {
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
  fut_t *f = pool_take(x->p, idle, got + 1, room - 1, &n);
  if (!f) { if (idle) *stop = 1; return 1; }
  got[0] = f;
  n++;
  int ok = 1;
  for (int i = 0; i < n; i++) {
    fut_t *c = got[i];
    if (ok && !fut_set_running(c)) { fut_unref(c); continue; }   /* cancelled */
    if (ok && send_call(x, c, why, len)) continue;
    ok = 0;   /* this call and the rest fail with the reason */
    fut_fail_msg(c, OUT_BROKEN, why);
    fut_unref(c);
  }
  return ok;
}

static void *proxy_main(void *arg) {
  pool_worker *w = arg;
  proxy x = {0};
  x.p = w->pool;
  x.pd = x.p->be_data;
  x.name = w->name;
  x.pr.pid = -1;
  x.pr.to = x.pr.from = -1;
  msg_init(&x.out);
  msg_init(&x.in);
  char why[256] = "", how[96] = "";
  int broken = 0;
  for (;;) {
    /* A retired worker: collect its exit, the next call starts a new one. */
    if (x.pr.pid >= 0 && x.pr.tasks_left == 0 && x.count == 0 && x.outoff == x.out.len) {
      while (pump(&x))
        ;
      if (x.in.len && !take_results(&x, why, sizeof why)) { broken = 1; break; }
      reap(&x, NULL, 0);
    }
    int room = window(&x) - x.count;
    if (x.pr.tasks_left > 0 && room > x.pr.tasks_left) room = (int)x.pr.tasks_left;
    if (room > 0 && !(x.pr.pid >= 0 && x.pr.tasks_left == 0)) {
      int stop = 0;
      if (!feed(&x, room, &stop, why, sizeof why)) { broken = 1; break; }
      if (stop) break;
    }
    if (x.pr.pid < 0) continue;
    if (!pump(&x)) {
      /* The worker ended.  Results it wrote before are still good. */
      take_results(&x, why, sizeof why);
      if (x.count == 0 && x.pr.tasks_left == 0) { reap(&x, NULL, 0); continue; }
      reap(&x, how, sizeof how);
      snprintf(why, sizeof why, "%s%s", BROKEN_MSG, how);
      broken = 1;
      break;
    }
    if (!take_results(&x, why, sizeof why)) { broken = 1; break; }
  }
  if (broken) {
    fail_inflight(&x, why);
    pool_break(x.p, why);
    if (x.pr.pid >= 0) kill(x.pr.pid, SIGKILL);
  }
  reap(&x, NULL, 0);
  free(x.pr.known);
  msg_free(&x.out);
  msg_free(&x.in);
  pool_worker_exit(w);
  return NULL;
}

/* ------------------------------------------------------------- Lua side */

static void destroy(pool_t *p) {
  procdata *pd = p->be_data;
  if (!pd) return;
  free(pd->worker_path);
  free(pd->pids);
  pthread_mutex_destroy(&pd->mu);
  free(pd);
}

static const pool_backend backend = {
  "ProcessPoolExecutor", "BrokenProcessPool", 1, 0, proxy_main, destroy
};

/* Where the worker program is: next to the file that holds this code. */
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
  return path;
}

static int signal_workers(lua_State *L, int sig) {
  pool_t *p = pool_check(L, 1);
  procdata *pd = p->be_data;
  pool_break(p, sig == SIGKILL ? "the workers were killed" : "the workers were terminated");
  pthread_mutex_lock(&pd->mu);
  for (int i = 0; i < pd->npids; i++) kill(pd->pids[i], sig);
  pthread_mutex_unlock(&pd->mu);
  return 0;
}

static int l_terminate_workers(lua_State *L) { return signal_workers(L, SIGTERM); }
static int l_kill_workers(lua_State *L) { return signal_workers(L, SIGKILL); }

/* ex:_pids() -> the worker process ids now running (for specs) */
static int l_pids(lua_State *L) {
  pool_t *p = pool_check(L, 1);
  procdata *pd = p->be_data;
  lua_newtable(L);
  pthread_mutex_lock(&pd->mu);
  for (int i = 0; i < pd->npids; i++) {
    lua_pushinteger(L, pd->pids[i]);
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
  p->be_data = pd;
  pd->worker_path = path ? strdup(path) : default_worker_path();
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
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "ProcessPoolExecutor");
}
