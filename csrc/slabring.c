/* The ring of big arrays between a worker process and its proxy; see
 * slabring.h.  One memfd mapped by both: a header page with `released`,
 * then the ring's bytes of slots (as many as the biggest slab needs;
 * tests make smaller ones).  The worker alone writes slots and moves
 * its head; the proxy alone reads them and moves `released`. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "pages.h"
#include "slabring.h"

#define RING_HEAD 4096                         /* the header page */
#define RING_MAX ((uint64_t)SLAB_MAX * sizeof(ap_slot))   /* the biggest slab fits */
#define RING_MIN ((uint64_t)1 << 16)
#define RING_KEEP ((uint64_t)4 << 20)          /* past this, pages go back once read */
#define RING_ALIGN 64

typedef struct ring_head {
  _Atomic uint64_t released;   /* positions below this may be written again */
} ring_head;

struct slabring {
  ring_head *h;
  unsigned char *data;
  uint64_t cap;                /* bytes of slots, a multiple of RING_HEAD */
  uint64_t head;               /* worker: the end of what it wrote */
  slab_maker maker;            /* worker: ring_make over this ring */
};

/* What a worker's blob names: its slots in the ring. */
typedef struct ring_ref { uint64_t pos, n; } ring_ref;

static atomic_int enabled = 1;
static _Atomic uint64_t cap_next = RING_MAX;   /* of rings made from now on */
static _Atomic uint64_t taken;   /* arrays proxies copied out, for tests */

void ring_enable(int on) { atomic_store(&enabled, on); }
int ring_enabled(void) { return atomic_load(&enabled); }
uint64_t ring_taken(void) { return atomic_load_explicit(&taken, memory_order_relaxed); }

uint64_t ring_set_size(uint64_t bytes) {
  if (bytes) {
    bytes = bytes < RING_MIN ? RING_MIN : bytes > RING_MAX ? RING_MAX : bytes / RING_HEAD * RING_HEAD;
    atomic_store(&cap_next, bytes);
  }
  return atomic_load(&cap_next);
}

static slabring *map_ring(int fd, uint64_t cap) {
  slabring *r = calloc(1, sizeof *r);
  void *p = r ? mmap(NULL, RING_HEAD + cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  if (p == MAP_FAILED) { free(r); return NULL; }
  r->h = p;
  r->data = (unsigned char *)p + RING_HEAD;
  r->cap = cap;
  return r;
}

slabring *ring_create(int *fd) {
  if (!ring_enabled()) return NULL;
  int f = memfd_create("futures-ring", MFD_CLOEXEC);
  if (f < 0) return NULL;
  int h = fcntl(f, F_DUPFD_CLOEXEC, 10);   /* away from the child's 0..6 */
  close(f);
  if (h < 0) return NULL;
  uint64_t cap = atomic_load(&cap_next);
  slabring *r = ftruncate(h, (off_t)(RING_HEAD + cap)) == 0 ? map_ring(h, cap) : NULL;
  if (!r) { close(h); return NULL; }
  *fd = h;
  return r;
}

slabring *ring_open(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return NULL;   /* the parent made none */
  uint64_t cap = st.st_size > RING_HEAD ? (uint64_t)st.st_size - RING_HEAD : 0;
  int sized = cap >= RING_MIN && cap <= RING_MAX && cap % RING_HEAD == 0;   /* a ring's size */
  slabring *r = sized ? map_ring(fd, cap) : NULL;
  close(fd);
  return r;
}

void ring_free(slabring *r) {
  if (!r) return;
  munmap(r->h, RING_HEAD + r->cap);
  free(r);
}

/* ------------------------------------------------------------ worker */

static void ref_destroy(tr_blob *b) { (void)b; }   /* its space goes back when the proxy read it */
static int ref_push(struct lua_State *L, tr_blob *b) { (void)L, (void)b; return 0; }
static uint64_t ref_pos(tr_blob *b) { return ((ring_ref *)TR_BLOB_OBJ(b))->pos; }
static uint64_t ref_slots(tr_blob *b) { return ((ring_ref *)TR_BLOB_OBJ(b))->n; }

static const tr_kind ref_kind = {"array", 0, ref_destroy, ref_push, ref_pos, ref_slots};

static uint64_t bytes_of(uint64_t n) { return (n * sizeof(ap_slot) + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN; }

/* Where `bytes` fit: at offset 0 of the next lap if that space is free
 * (so the same first pages serve again and again), else right after the
 * last array; UINT64_MAX if nowhere. */
static uint64_t place(slabring *r, uint64_t bytes) {
  uint64_t rel = atomic_load_explicit(&r->h->released, memory_order_acquire);
  int idle = rel >= r->head;   /* nothing written is still unread */
  uint64_t cap = r->cap, lap = (r->head + cap - 1) / cap * cap;
  if (bytes > cap) return UINT64_MAX;
  if (idle || lap + bytes <= rel + cap) return lap;
  if (r->head % cap + bytes <= cap && r->head + bytes <= rel + cap) return r->head;
  return UINT64_MAX;
}

static tr_blob *ring_make(void *ctx, const ap_slot *a, size_t n) {
  slabring *r = ctx;
  uint64_t bytes = bytes_of(n), pos = place(r, bytes);
  if (pos == UINT64_MAX) return NULL;
  /* Into free space: until the head moves, nobody reads it. */
  if (!slab_copy_plain((ap_slot *)(r->data + pos % r->cap), a, n)) return NULL;
  tr_blob *b = tr_blob_new_obj(&ref_kind, sizeof(ring_ref));
  if (!b) return NULL;
  *(ring_ref *)TR_BLOB_OBJ(b) = (ring_ref){pos, n};
  r->head = pos + bytes;
  return b;
}

const slab_maker *ring_maker(slabring *r) {
  r->maker = (slab_maker){ring_make, r};
  return &r->maker;
}

/* ------------------------------------------------------------- proxy */

/* Gives the whole pages of [off, end) past RING_KEEP back to the system. */
static void drop_pages(slabring *r, uint64_t off, uint64_t end) {
  if (off < RING_KEEP) off = RING_KEEP;
  if (off < end) pages_advise(r->data + off, end - off, MADV_REMOVE);
}

tr_blob *ring_take(slabring *r, uint64_t pos, uint64_t n, int *bad) {
  *bad = 1;
  if (n == 0 || n > SLAB_MAX) return NULL;
  uint64_t off = pos % r->cap, bytes = bytes_of(n);
  if (off + bytes > r->cap) return NULL;
  ap_slot *s = slab_alloc(n);
  /* The worker may write on meanwhile: only the copy is checked and used. */
  if (s && !slab_copy_plain(s, (const ap_slot *)(r->data + off), n)) { free(s); return NULL; }
  *bad = 0;
  drop_pages(r, off, off + bytes);
  if (pos + bytes > atomic_load_explicit(&r->h->released, memory_order_relaxed))
    atomic_store_explicit(&r->h->released, pos + bytes, memory_order_release);
  if (!s) return NULL;
  atomic_fetch_add_explicit(&taken, 1, memory_order_relaxed);
  return slab_of(s, n);
}
