/* Faulting fresh memory in ahead of a big copy: one system call instead of
 * a page fault for every page (on small VMs a fault costs more than
 * writing the page); and other advice on whole pages.  MADV_POPULATE_WRITE is Linux 5.14's; older kernels
 * refuse it, harmlessly. */
#ifndef FUTURES_PAGES_H
#define FUTURES_PAGES_H
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PAGES_WORTH ((size_t)1 << 18)   /* smaller copies fault in few pages */

/* madvise(advice) over the whole pages inside [p, p + len). */
static inline void pages_advise(void *p, size_t len, int advice) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = ((uintptr_t)p + page - 1) & ~(page - 1),
            b = ((uintptr_t)p + len) & ~(page - 1);
  if (a < b) madvise((void *)a, b - a, advice);
}

static inline void pages_prefault(void *p, size_t len) {
  if (len >= PAGES_WORTH) pages_advise(p, len, MADV_POPULATE_WRITE);
}
#endif
