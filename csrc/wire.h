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
 * Messages are the codec's encodings (codec.h); their code blobs travel by id one way
 * (the parent keeps a bounded set of blobs in each worker: procdefs.c) and inline the other.
 */
#ifndef FUTURES_WIRE_H
#define FUTURES_WIRE_H
#include <stddef.h>
#include <stdint.h>
#include "msg.h"

enum { W_HELLO = 'H', W_DEF = 'D', W_FORGET = 'X', W_INIT = 'I', W_TASK = 'T', W_RESULT = 'R', W_FAILED = 'F' };
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
/* Appends a message with its blobs inline: nblobs, (len, code)..., bytes. */
int wire_msg_inline(tr_msg *b, const tr_msg *m);
/* Reads a message with inline blobs (new local blobs) from the rest of r. */
int wire_read_inline(wire_rd *r, tr_msg *m);
#endif
