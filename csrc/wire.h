/* Frames on the pipes between a process pool and its workers.
 *
 * A frame is a 4-byte little-endian length (of what follows), a type byte
 * and a payload.  Parent to worker:
 *   HELLO  name, path, cpath (each varint length + bytes), max tasks
 *          (varint; 0: the parent ends the worker by closing the pipe)
 *   DEF    wire id (varint), bytecode (rest)   a code blob the worker lacks
 *   FORGET wire ids (varints, rest)            blobs the worker may drop
 *   INIT   nblobs, wire ids..., message (rest) the initializer call
 *   TASK   task id, nblobs, wire ids..., message (rest)
 * Worker to parent:
 *   RESULT task id, outcome byte, traceback (varint length + bytes),
 *          nblobs, (length + bytecode)..., message (rest)
 *   FAILED why (rest)                           the initializer failed
 * Every TASK the worker starts gets one RESULT, in the order sent; one the
 * parent took back before it started (claim.c) gets none.
 * Queues (the worker's requests on the parent's queues, served by its
 * proxy: qserve.c), worker to parent:
 *   QPUT   request id, queue id, sync byte, timeout (8-byte double, < 0:
 *          none), message (inline)   sync 0: sent ahead, no reply
 *   QGET   request id, queue id, timeout
 *   QINFO  request id, queue id      QCLOSE  request id, queue id (no reply)
 *   QDROP  queue id, count           the worker holds the queue no more,
 *                                    having received it in `count` messages
 * and parent to worker:
 *   QREPLY request id, status byte (QUEUE_OK, QUEUE_WAIT: timed out,
 *          QUEUE_CLOSED), then for QPUT the puts it may send ahead
 *          (varint), for QGET the value (a message, inline), for QINFO
 *          size, maxsize, closed (varints)
 * The worker reads a QREPLY wherever it is among the frames sent ahead of
 * it, and leaves those for later, in order.
 * Messages are the codec's encodings (codec.h); their code blobs travel by id one way
 * (the parent keeps a bounded set of blobs in each worker: procdefs.c) and inline the other.
 * A queue in a message travels as its id: in a TASK's blob list as an odd
 * number (code blobs are even: id * 2), inline as a zero length and id * 2.
 * A big array of a result travels in the ring (slabring.h): inline as a
 * zero length, its position * 2 + 1 and its count of slots.
 */
#ifndef FUTURES_WIRE_H
#define FUTURES_WIRE_H
#include <stddef.h>
#include <stdint.h>
#include "msg.h"

enum { W_HELLO = 'H', W_DEF = 'D', W_FORGET = 'X', W_INIT = 'I', W_TASK = 'T', W_RESULT = 'R', W_FAILED = 'F',
       W_QPUT = 'P', W_QGET = 'G', W_QINFO = 'L', W_QCLOSE = 'C', W_QDROP = 'Z', W_QREPLY = 'Y' };
#define WIRE_MAXFRAME ((size_t)1 << 31)

/* Building: wire_begin returns the frame's start, wire_end patches its length. */
size_t wire_begin(tr_msg *b, int type);
void wire_end(tr_msg *b, size_t start);
int wire_bytes(tr_msg *b, const void *p, size_t n);       /* 0 on OOM */
int wire_str(tr_msg *b, const void *p, size_t n);         /* varint length + bytes */

/* The length a frame's 4-byte header announces (of what follows it). */
size_t wire_announced(const unsigned char *head);

/* Parsing: a complete frame at buf?  1 yes (type, payload, whole length),
 * 0 needs more bytes, -1 malformed (a bad length, or an unknown type byte
 * as soon as it is there). */
int wire_frame(const unsigned char *buf, size_t len, int *type,
               const unsigned char **payload, size_t *plen, size_t *whole);

/* A cursor over a payload; every read is bounds-checked. */
typedef struct wire_rd { const unsigned char *p, *end; } wire_rd;
int wire_varint(wire_rd *r, uint64_t *v);
int wire_getstr(wire_rd *r, const unsigned char **s, size_t *len);

/* Whether a message fits in one frame with room for its header; bigger
 * ones fail their own future instead of corrupting the stream. */
int wire_fits(const tr_msg *m, int inline_blobs);

/* Appends a message with its blobs by wire id: nblobs, ids, bytes. */
int wire_msg_by_id(tr_msg *b, const tr_msg *m);
/* The same with ids tagged (code id * 2, queue id * 2 + 1), to workers. */
int wire_msg_tagged(tr_msg *b, const tr_msg *m);
/* Appends a message with its blobs inline: nblobs, (len, code)..., bytes. */
int wire_msg_inline(tr_msg *b, const tr_msg *m);
/* Reads a message with inline blobs (new local blobs) from the rest of r. */
int wire_read_inline(wire_rd *r, tr_msg *m);
/* The same where a queue or an array in the ring may be named: each
 * function gives its blob a new reference (NULL, or no function: the
 * message cannot be read). */
typedef struct wire_resolver {
  tr_blob *(*queue)(void *ctx, uint64_t id);
  tr_blob *(*array)(void *ctx, uint64_t pos, uint64_t slots);
  void *ctx;
} wire_resolver;
int wire_read_inline_q(wire_rd *r, tr_msg *m, const wire_resolver *res);
/* A double, 8 bytes host order (both ends are one host). */
int wire_double(wire_rd *r, double *v);
#endif
