/* A slab: the array part of a big table of numbers and booleans, copied in
 * Lua's own slot layout into one block from malloc, riding in a blob of its
 * own kind (msg.h) so that a message freed unread frees it too.  It only
 * crosses between threads of this process, where the receiver's table can
 * take the block as its array part (ap_adopt) instead of decoding into
 * fresh memory of its own: a thread worker's big result then costs the
 * owner of the pool neither the copy nor the page faults.  A process
 * worker's big results reach its proxy through shared memory and become
 * slabs there (slabring.c). */
#ifndef FUTURES_SLAB_H
#define FUTURES_SLAB_H
#include "arraypart.h"
#include "msg.h"

#define SLAB_MIN 4096          /* smaller arrays are cheaper to encode */
#define SLAB_MAX (1 << 24)     /* the decoder's largest preallocation */

/* Copies n slots from s to d; returns whether they all hold numbers,
 * booleans or nils (the tag checked is the one written). */
int slab_copy_plain(ap_slot *restrict d, const ap_slot *restrict s, size_t n);
/* Room for n slots from malloc, its pages faulted in at once (pages.h). */
ap_slot *slab_alloc(size_t n);
/* A slab made of the n slots at s (from malloc: the slab owns them now);
 * NULL if out of memory (s is freed). */
tr_blob *slab_of(ap_slot *s, size_t n);

/* How an encoder makes the blob for slots 1..n of an array part `a`
 * (SLAB_MIN <= n <= SLAB_MAX, as the encoder checks):
 * NULL if one of them holds a collectable value (a string, a table...),
 * or if there is no room (the encoder then writes the values). */
typedef struct slab_maker {
  tr_blob *(*make)(void *ctx, const ap_slot *a, size_t n);
  void *ctx;
} slab_maker;
/* A slab from malloc, for messages to this process's threads. */
extern const slab_maker slab_local;
int slab_is(const tr_blob *b);
size_t slab_len(const tr_blob *b);
/* The slots, still owned by the slab; NULL once taken. */
const ap_slot *slab_slots(tr_blob *b);
/* Takes the slots out: the caller owns them (free()); NULL if taken. */
ap_slot *slab_take(tr_blob *b);
#endif
