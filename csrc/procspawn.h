/* Starting and reaping worker processes. */
#ifndef FUTURES_PROCSPAWN_H
#define FUTURES_PROCSPAWN_H
#include <stddef.h>
#include <sys/types.h>

/* A started worker: its pid and our ends of its pipes (non-blocking,
 * close-on-exec, away from descriptors 0..4). */
typedef struct spawned { pid_t pid; int to, from; } spawned;

/* Starts the worker program at path with the task pipe as fd 3, the
 * result pipe as fd 4, claim_fd as CLAIM_FD (claim.h) and ring_fd, unless
 * negative, as RING_FD (slabring.h).  0 on failure with why in err; *resource is set
 * when the cause is a lack of descriptors or processes (EMFILE, ENFILE,
 * EAGAIN, ENOMEM): other workers may still run calls. */
int spawn_worker(const char *path, int claim_fd, int ring_fd, spawned *s, char *err, size_t errlen, int *resource);

/* Waits for pid to end (EINTR-safe); describes how into why (if not NULL). */
void spawn_reap(pid_t pid, char *why, size_t len);

/* " (worker 12 killed by signal 9)" and the like, for broken-pool messages;
 * signo > 0, else code >= 0 for an exit status, else just "ended". */
void spawn_describe_end(char *why, size_t len, pid_t pid, int signo, int code);

/* The worker program next to the file that holds this code; malloc'd. */
char *spawn_default_path(void);
/* path made absolute against the current directory; malloc'd. */
char *spawn_absolute(const char *path);
#endif
