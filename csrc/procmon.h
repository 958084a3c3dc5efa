/* The process list of a process pool and its monitor thread. */
#ifndef FUTURES_PROCMON_H
#define FUTURES_PROCMON_H
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include "pool.h"

typedef struct pmon_proc pmon_proc;

typedef struct pmon {
  pool_t *p;                   /* not a reference: only proxies (which hold one) use it */
  pthread_mutex_t mu;          /* guards everything below */
  pthread_cond_t stopped;      /* the monitor went from STOPPING to NONE */
  pmon_proc *procs;
  size_t nprocs, capprocs;
  int kill_sig;                /* set by pmon_signal: signal newcomers too */
  double kill_at;              /* after a SIGTERM: when to send SIGKILL (0: never) */
  int nproxies;
  int starting;                /* proxies starting a process, not yet listed */
  int state;                   /* MON_* in procmon.c */
  pthread_t thread;
  int wake_fd;                 /* eventfd that wakes the monitor */
} pmon;

void pmon_init(pmon *m, pool_t *p);
void pmon_destroy(pmon *m);

/* A proxy thread starts / ends; the last one out stops the monitor. */
void pmon_enter(pmon *m);
void pmon_leave(pmon *m);

/* Lists a new worker process (watching a duplicate of result_fd) /
 * unlists it once reaped. */
void pmon_add(pmon *m, pid_t pid, int result_fd);
void pmon_remove(pmon *m, pid_t pid);

/* A proxy about to wait for work has the monitor watch its worker; 0 if
 * that worker already ended (the proxy must not sleep). */
int pmon_watch_begin(pmon *m, pid_t pid);
void pmon_watch_end(pmon *m, pid_t pid);

/* How many processes are listed (live, or dead and not yet reaped). */
size_t pmon_count(pmon *m);
/* A proxy begins starting a process; pmon_start_end says it is over (the
 * process listed, or not started) and returns how many processes are
 * listed or still being started by other proxies, in one look. */
void pmon_start_begin(pmon *m);
size_t pmon_start_end(pmon *m);

/* Signals every listed process, and those listed later. */
void pmon_signal(pmon *m, int sig);

/* The listed pids, malloc'd (*n of them; NULL if none or no memory). */
pid_t *pmon_pids(pmon *m, size_t *n);
#endif
