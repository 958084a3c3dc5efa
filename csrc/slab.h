/* A slab: the array part of a big table of numbers and booleans, copied in
 * Lua's own slot layout into one block from malloc, riding in a blob of its
 * own kind (msg.h) so that a message freed unread frees it too.  It only
 * crosses between threads of this process, where the receiver's table can
 * take the block as its array part (ap_adopt) instead of decoding into
 * fresh memory of its own: a thread worker's big result then costs the
 * owner of the pool neither the copy nor the page faults. */
#ifndef FUTURES_SLAB_H
#define FUTURES_SLAB_H
#include "arraypart.h"
#include "msg.h"

#define SLAB_MIN 4096          /* smaller arrays are cheaper to encode */
#define SLAB_MAX (1 << 24)     /* the decoder's largest preallocation */

/* Copies slots 1..n of the array part `a` into a new slab; NULL if one of
 * them holds a collectable value (a string, a table...) or out of memory. */
tr_blob *slab_copy(const ap_slot *a, size_t n);
int slab_is(const tr_blob *b);
size_t slab_len(const tr_blob *b);
/* The slots, still owned by the slab; NULL once taken. */
const ap_slot *slab_slots(tr_blob *b);
/* Takes the slots out: the caller owns them (free()); NULL if taken. */
ap_slot *slab_take(tr_blob *b);
#endif
