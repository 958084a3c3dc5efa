/* Starting, finding and reaping worker processes.
 *
 * Processes are spawned with posix_spawn (nothing runs between fork and
 * exec) from the worker program found next to core.so, with the task pipe
 * as fd 3, the result pipe as fd 4, the claim page (claim.c) as fd 5 and
 * the ring (slabring.c), if there is one, as fd 6; every descriptor of ours is
 * close-on-exec and the worker closes anything else it inherited.  The
 * child starts with default signal dispositions and SIGINT and the stop
 * signal (claim.h) blocked until it has set its own: a stop sent to a
 * worker still starting must not kill it.  Whoever spawns reaps: spawn_reap waits for the exit and
 * says how the worker ended, for the broken-pool message.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "claim.h"
#include "slabring.h"
#include "procspawn.h"

extern char **environ;

void spawn_describe_end(char *why, size_t len, pid_t pid, int signo, int code) {
  if (signo > 0) snprintf(why, len, " (worker %d killed by signal %d)", (int)pid, signo);
  else if (code >= 0) snprintf(why, len, " (worker %d exited with status %d)", (int)pid, code);
  else snprintf(why, len, " (worker %d ended)", (int)pid);
}

static int high_fd(int fd) {   /* away from 0..5, which the worker uses */
  int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return h;
}

static int lack_of_resources(int e) {
  return e == EMFILE || e == ENFILE || e == EAGAIN || e == ENOMEM;
}

int spawn_worker(const char *path, int claim_fd, int ring_fd, spawned *s, char *err, size_t errlen, int *resource) {
  int tp[2], rp[2];
  *resource = 0;
  /* posix_spawn may report a program that cannot run only as an exit
   * status 127 (old C libraries, valgrind): say it clearly first. */
  if (access(path, X_OK) != 0) {
    snprintf(err, errlen, "cannot start the worker program '%s': %s (name one with worker = path)",
             path, strerror(errno));
    return 0;
  }
  if (pipe2(tp, O_CLOEXEC) != 0) goto fail_errno;
  if (pipe2(rp, O_CLOEXEC) != 0) {
    int e = errno;
    close(tp[0]);
    close(tp[1]);
    errno = e;
    goto fail_errno;
  }
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
  sigaddset(&intr, CLAIM_STOP_SIGNAL);   /* likewise until its stop handler is in place */
  sigfillset(&all);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, tp[0], 3);
  posix_spawn_file_actions_adddup2(&fa, rp[1], 4);
  posix_spawn_file_actions_adddup2(&fa, claim_fd, CLAIM_FD);
  if (ring_fd >= 0) posix_spawn_file_actions_adddup2(&fa, ring_fd, RING_FD);
  else posix_spawn_file_actions_addclose(&fa, RING_FD);   /* a host's stray descriptor is no ring */
  posix_spawnattr_init(&at);
  posix_spawnattr_setsigmask(&at, &intr);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  char *argv[] = {(char *)path, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, path, &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(tp[0]);
  close(rp[1]);
  if (rc != 0) {
    close(tp[1]);
    close(rp[0]);
    *resource = lack_of_resources(rc);
    snprintf(err, errlen, "cannot start the worker program '%s': %s (name one with worker = path)",
             path, strerror(rc));
    return 0;
  }
  fcntl(tp[1], F_SETFL, O_NONBLOCK);
  fcntl(rp[0], F_SETFL, O_NONBLOCK);
  s->pid = pid;
  s->to = tp[1];
  s->from = rp[0];
  return 1;
fail_errno:
  *resource = lack_of_resources(errno);
  snprintf(err, errlen, "cannot create pipes for a worker: %s", strerror(errno));
  return 0;
}

void spawn_reap(pid_t pid, char *why, size_t len) {
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
    ;
  if (!why) return;
  if (r < 0) spawn_describe_end(why, len, pid, 0, -1);
  else if (WIFSIGNALED(status)) spawn_describe_end(why, len, pid, WTERMSIG(status), -1);
  else spawn_describe_end(why, len, pid, 0, WEXITSTATUS(status));
}

/* An absolute path: a relative one is taken from the current directory
 * now, so a host that changes directory later still finds the program. */
char *spawn_absolute(const char *path) {
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
char *spawn_default_path(void) {
  Dl_info info;
  if (!dladdr((void *)spawn_default_path, &info) || !info.dli_fname) return strdup("futures-worker");
  char *copy = strdup(info.dli_fname);
  if (!copy) return NULL;
  const char *dir = dirname(copy);
  size_t n = strlen(dir) + sizeof "/worker";
  char *path = malloc(n);
  if (path) snprintf(path, n, "%s/worker", dir);
  free(copy);
  char *abs = path ? spawn_absolute(path) : NULL;
  free(path);
  return abs;
}
