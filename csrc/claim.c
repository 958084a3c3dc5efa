/* Taking back calls sent ahead to a worker process.
 *
 * A proxy sends calls ahead so that a worker never waits for its next
 * call; those calls are not committed.  One shared word decides, for each
 * call, whether the worker started it or the proxy took it back, so the
 * two can never both run it:
 *   - the worker starts task id by moving `next` from id to id + 1 (a
 *     compare-and-swap: it fails if the proxy got there first);
 *   - the proxy takes back every task from `next` on by setting CLAIM_BACK
 *     in it (compare-and-swap: it fails if the worker started one
 *     meanwhile, and the proxy tries again later), after storing in
 *     `resume` the first id it has not sent yet.
 * The worker skips the tasks below `resume` silently (their futures are
 * the proxy's again) and starts `resume`, clearing the mark.  One take-back
 * at a time: a second waits until the worker has cleared the first.
 * The page is a memfd mapped by both processes, passed as CLAIM_FD.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "claim.h"

#define CLAIM_BACK ((uint64_t)1 << 63)

claim_t *claim_create(uint64_t first, int *fd) {
  int f = memfd_create("futures-claim", MFD_CLOEXEC);
  if (f < 0) return NULL;
  int h = fcntl(f, F_DUPFD_CLOEXEC, 10);   /* away from the child's 0..5 */
  close(f);
  if ((f = h) < 0) return NULL;
  if (ftruncate(f, sizeof(claim_t)) != 0) { close(f); return NULL; }
  void *p = mmap(NULL, sizeof(claim_t), PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  if (p == MAP_FAILED) { close(f); return NULL; }
  claim_t *c = p;
  atomic_store(&c->resume, 0);
  atomic_store(&c->stop, CLAIM_NONE);
  atomic_store(&c->next, first);
  *fd = f;
  return c;
}

claim_t *claim_open(int fd) {
  void *p = mmap(NULL, sizeof(claim_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  return p == MAP_FAILED ? NULL : p;
}

void claim_free(claim_t *c) {
  if (c) munmap(c, sizeof *c);
}

int claim_start(claim_t *c, uint64_t id) {
  uint64_t n = atomic_load(&c->next);
  for (;;) {
    if ((n & CLAIM_BACK) && id < atomic_load(&c->resume)) return 0;
    if (atomic_compare_exchange_weak(&c->next, &n, id + 1)) return 1;
  }
}

uint64_t claim_take_back(claim_t *c, uint64_t end) {
  uint64_t n = atomic_load(&c->next);
  if ((n & CLAIM_BACK) || n >= end) return end;
  atomic_store(&c->resume, end);   /* before the mark: the worker reads it after */
  if (!atomic_compare_exchange_strong(&c->next, &n, n | CLAIM_BACK)) return end;
  return n;
}
