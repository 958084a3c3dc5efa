/* The ring: shared memory through which a worker process hands its proxy
 * the big arrays of numbers in its results, so that they cross neither the
 * pipe nor the owner's decoder.
 *
 * The worker's encoder copies such an array, in Lua's own slot layout,
 * into free space of the ring and names it in the RESULT frame by its
 * position (wire.h); the proxy copies it out into a block from malloc (a
 * slab, slab.h, which the owner's table then takes as its array part),
 * checks every slot, and gives the space back.  So the owner of the pool
 * pays neither the copy nor the page faults of a big result: its proxy
 * does, while the owner goes on.  Shared memory rather than a read of the
 * worker's memory: it needs no permission to trace the child, and what a
 * worker wrote before it died can still be read.
 *
 * Space goes round in order.  `released` (written by the proxy) is the
 * position up to which the worker may write again; positions only grow
 * (the offset in the ring is the position modulo its size), and the
 * worker starts again at offset 0 whenever that space is free, so a
 * steady stream of results keeps using the same few pages.  An array that
 * finds no room is encoded as values, as on a pool without a ring. */
#ifndef FUTURES_SLABRING_H
#define FUTURES_SLABRING_H
#include <stdint.h>
#include "slab.h"

#define RING_FD 6   /* where the worker finds the ring */

typedef struct slabring slabring;

/* Parent: a new, empty ring; *fd is a descriptor for the child (close it
 * once spawned).  NULL on failure. */
slabring *ring_create(int *fd);
/* Worker: maps the ring at fd (then closes fd); NULL if there is none. */
slabring *ring_open(int fd);
void ring_free(slabring *r);

/* Worker: the encoder's slab maker over the ring (slab.h), good while
 * the ring is. */
const slab_maker *ring_maker(slabring *r);

/* Parent: the array of n slots at position pos, as a new slab, and its
 * space given back; NULL with *bad set if the worker named space outside
 * the ring or a slot that is not a number, a boolean or nil, with *bad
 * clear if out of memory. */
tr_blob *ring_take(slabring *r, uint64_t pos, uint64_t n, int *bad);

/* Turns the ring off or back on for workers started from now on (tests
 * compare it with the encoded path); how many arrays came through rings. */
void ring_enable(int on);
int ring_enabled(void);
uint64_t ring_taken(void);
/* The size of the rings made from now on (bytes of slots; 0: leave it),
 * rounded to pages between 64 KiB and the default, for tests of a ring
 * that fills up; returns it. */
uint64_t ring_set_size(uint64_t bytes);
#endif
