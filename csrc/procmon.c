/* The process list of a process pool and its monitor thread.
 *
 * A proxy waiting for work sleeps on the pool's condition, not on its
 * pipes, so it cannot see its worker die.  One monitor thread per pool
 * (started with the first worker process, stopped and joined by the last
 * proxy to exit) poll()s a duplicate of every worker's result pipe for
 * POLLHUP only.  A worker that ends while its proxy waits for work breaks
 * the pool at once (as in Python: later submits raise); one that ends
 * while its proxy is busy is left to the proxy, which sees the end on its
 * own pipes.  m->mu guards the list and the monitor's state; it is never
 * held with the pool's lock.
 *
 * Killing: pmon_signal signals every listed process and leaves the signal
 * in m->kill_sig, so a process spawned a moment later (its future already
 * taken) is signalled as it is listed.  A SIGTERM is a request a worker
 * may not act on (stopped, or ignoring it): after TERM_GRACE the monitor
 * sends SIGKILL to every process still listed, so the calls they hold fail
 * with BrokenProcessPool and interpreter exit does not wait for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "clock.h"
#include "grow.h"
#include "procmon.h"
#include "procspawn.h"

#define BROKEN_MSG "A process in the process pool was terminated abruptly while the future was running or pending."

/* A live worker process, as the monitor and pmon_signal see it. */
struct pmon_proc {
  pid_t pid;
  int fd;                      /* a duplicate of its result pipe: HUP once it ends */
  int watch;                   /* its proxy waits for work, not on the pipes */
  int hup;                     /* the monitor saw it end */
};

enum { MON_NONE, MON_RUNNING, MON_STOPPING };

#define TERM_GRACE 1.0   /* seconds from terminate_workers to SIGKILL */

void pmon_init(pmon *m, pool_t *p) {
  memset(m, 0, sizeof *m);
  m->p = p;
  m->wake_fd = -1;
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->stopped, NULL);
}

void pmon_destroy(pmon *m) {
  free(m->procs);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->stopped);
}

static void wake(pmon *m) {
  uint64_t one = 1;
  if (m->state == MON_RUNNING && write(m->wake_fd, &one, sizeof one) < 0) { /* full: awake anyway */ }
}

/* The monitor saw a worker end while its proxy waited for work: the pool
 * is broken.  Its exit status follows the closing of its pipes at once;
 * read it without reaping (the proxy reaps). */
static void monitor_break(pmon *m, pid_t pid) {
  char how[96], why[256];
  spawn_describe_end(how, sizeof how, pid, 0, -1);
  for (int i = 0; i < 1000; i++) {
    siginfo_t si;
    si.si_pid = 0;
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) break;
    if (si.si_pid == pid) {
      if (si.si_code == CLD_EXITED) spawn_describe_end(how, sizeof how, pid, 0, si.si_status);
      else spawn_describe_end(how, sizeof how, pid, si.si_status, -1);
      break;
    }
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  snprintf(why, sizeof why, "%s%s", BROKEN_MSG, how);
  pool_break(m->p, why);
}

/* terminate_workers' grace is over: SIGKILL for whoever is still here. */
static void kill_late(pmon *m) {
  pthread_mutex_lock(&m->mu);
  if (m->kill_at > 0 && clk_now() >= m->kill_at) {
    m->kill_at = 0;
    m->kill_sig = SIGKILL;
    for (size_t i = 0; i < m->nprocs; i++) kill(m->procs[i].pid, SIGKILL);
  }
  pthread_mutex_unlock(&m->mu);
}

static void *monitor_main(void *arg) {
  pmon *m = arg;
  struct pollfd *pf = NULL;
  pid_t *who = NULL;
  size_t cappf = 0, capwho = 0;
  for (;;) {
    int n = 1;
    pthread_mutex_lock(&m->mu);
    if (m->state == MON_STOPPING) { pthread_mutex_unlock(&m->mu); break; }
    struct pollfd *npf = grow_array(pf, &cappf, m->nprocs + 1, sizeof *pf);
    if (npf) pf = npf;
    pid_t *nwho = grow_array(who, &capwho, m->nprocs + 1, sizeof *who);
    if (nwho) who = nwho;
    size_t cap = cappf < capwho ? cappf : capwho;
    if (cap == 0) { pthread_mutex_unlock(&m->mu); break; }   /* no memory: no monitor */
    pf[0].fd = m->wake_fd;
    pf[0].events = POLLIN;
    for (size_t i = 0; i < m->nprocs && (size_t)n < cap; i++) {
      pmon_proc *w = &m->procs[i];
      if (w->fd < 0 || w->hup) continue;
      pf[n].fd = w->fd;
      pf[n].events = 0;   /* POLLHUP and POLLERR only: results are the proxy's */
      who[n++] = w->pid;
    }
    int timeout = -1;
    if (m->kill_at > 0) {
      double left = m->kill_at - clk_now();
      timeout = left > 0 ? (int)(left * 1000) + 1 : 0;
    }
    pthread_mutex_unlock(&m->mu);
    if (timeout >= 0) kill_late(m);
    if (poll(pf, (nfds_t)n, timeout) < 0) continue;
    if (pf[0].revents) {
      uint64_t v;
      if (read(m->wake_fd, &v, sizeof v) < 0) { /* nothing to read: fine */ }
    }
    for (int i = 1; i < n; i++) {
      if (!pf[i].revents) continue;
      int broke = 0;
      pthread_mutex_lock(&m->mu);
      for (size_t j = 0; j < m->nprocs; j++) {
        pmon_proc *w = &m->procs[j];
        if (w->pid != who[i] || w->fd != pf[i].fd) continue;
        w->hup = 1;
        broke = w->watch;
      }
      pthread_mutex_unlock(&m->mu);
      if (broke) monitor_break(m, who[i]);
    }
  }
  free(pf);
  free(who);
  return NULL;
}

void pmon_add(pmon *m, pid_t pid, int result_fd) {
  int fd = fcntl(result_fd, F_DUPFD_CLOEXEC, 10);
  pthread_mutex_lock(&m->mu);
  pmon_proc *procs = grow_array(m->procs, &m->capprocs, m->nprocs + 1, sizeof *procs);
  if (!procs) {   /* no memory: unlisted, unkillable by kill_workers */
    pthread_mutex_unlock(&m->mu);
    if (fd >= 0) close(fd);
    return;
  }
  m->procs = procs;
  while (m->state == MON_STOPPING) pthread_cond_wait(&m->stopped, &m->mu);
  if (m->state == MON_NONE && fd >= 0) {
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->wake_fd >= 0 && pthread_create(&m->thread, NULL, monitor_main, m) == 0) {
      m->state = MON_RUNNING;
    } else if (m->wake_fd >= 0) {
      close(m->wake_fd);
      m->wake_fd = -1;
    }
  }
  if (m->state != MON_RUNNING && fd >= 0) { close(fd); fd = -1; }   /* unwatched */
  m->procs[m->nprocs++] = (pmon_proc){pid, fd, 0, 0};
  if (m->kill_sig) kill(pid, m->kill_sig);
  wake(m);
  pthread_mutex_unlock(&m->mu);
}

static pmon_proc *find(pmon *m, pid_t pid) {
  for (size_t i = 0; i < m->nprocs; i++)
    if (m->procs[i].pid == pid) return &m->procs[i];
  return NULL;
}

void pmon_remove(pmon *m, pid_t pid) {
  pthread_mutex_lock(&m->mu);
  pmon_proc *w = find(m, pid);
  if (w) {
    if (w->fd >= 0) close(w->fd);
    *w = m->procs[--m->nprocs];
  }
  pthread_mutex_unlock(&m->mu);
}

int pmon_watch_begin(pmon *m, pid_t pid) {
  pthread_mutex_lock(&m->mu);
  pmon_proc *w = find(m, pid);
  int alive = !w || !w->hup;
  if (w && alive) w->watch = 1;
  pthread_mutex_unlock(&m->mu);
  return alive;
}

void pmon_watch_end(pmon *m, pid_t pid) {
  pthread_mutex_lock(&m->mu);
  pmon_proc *w = find(m, pid);
  if (w) w->watch = 0;
  pthread_mutex_unlock(&m->mu);
}

void pmon_enter(pmon *m) {
  pthread_mutex_lock(&m->mu);
  m->nproxies++;
  pthread_mutex_unlock(&m->mu);
}

/* The last proxy out stops the monitor and joins it, so no thread of ours
 * outlives the pool's last worker thread. */
void pmon_leave(pmon *m) {
  pthread_mutex_lock(&m->mu);
  int last = --m->nproxies == 0 && m->state == MON_RUNNING;
  if (last) {
    wake(m);
    m->state = MON_STOPPING;
  }
  pthread_mutex_unlock(&m->mu);
  if (!last) return;
  pthread_join(m->thread, NULL);
  pthread_mutex_lock(&m->mu);
  close(m->wake_fd);
  m->wake_fd = -1;
  m->state = MON_NONE;
  pthread_cond_broadcast(&m->stopped);
  pthread_mutex_unlock(&m->mu);
}

void pmon_signal(pmon *m, int sig) {
  pthread_mutex_lock(&m->mu);
  if (!m->kill_sig) m->kill_sig = sig;
  for (size_t i = 0; i < m->nprocs; i++) kill(m->procs[i].pid, sig);
  if (sig == SIGTERM && m->kill_at == 0) {
    m->kill_at = clk_now() + TERM_GRACE;
    wake(m);
  }
  pthread_mutex_unlock(&m->mu);
}

void pmon_start_begin(pmon *m) {
  pthread_mutex_lock(&m->mu);
  m->starting++;
  pthread_mutex_unlock(&m->mu);
}

size_t pmon_start_end(pmon *m) {
  pthread_mutex_lock(&m->mu);
  size_t n = m->nprocs + (size_t)--m->starting;
  pthread_mutex_unlock(&m->mu);
  return n;
}

size_t pmon_count(pmon *m) {
  pthread_mutex_lock(&m->mu);
  size_t n = m->nprocs;
  pthread_mutex_unlock(&m->mu);
  return n;
}

pid_t *pmon_pids(pmon *m, size_t *n) {
  pthread_mutex_lock(&m->mu);
  pid_t *out = m->nprocs ? malloc(m->nprocs * sizeof *out) : NULL;
  *n = out ? m->nprocs : 0;
  for (size_t i = 0; i < *n; i++) out[i] = m->procs[i].pid;
  pthread_mutex_unlock(&m->mu);
  return out;
}
