/* A process worker's handles to the parent's queues (wire.h's Q frames). */
#ifndef FUTURES_QREMOTE_H
#define FUTURES_QREMOTE_H
#include <stdint.h>
#include "msg.h"

/* The worker's pipes, as the handles use them. */
typedef struct qr_chan {
  void *io;
  /* Appends whole frames to the output; written now if `now`, else soon.
   * 0 if the pipe broke. */
  int (*send)(void *io, const tr_msg *frames, int now);
  /* Reads until the next QREPLY, leaving every other frame for later, in
   * order; its payload goes to out.  0 at the end of input or an error. */
  int (*reply)(void *io, tr_msg *out);
} qr_chan;

void qr_open(const qr_chan *c);   /* one per worker process */
void qr_close(void);              /* the pipes are going: handles send nothing more */
void qr_end(void);                /* after the worker's state closed: frees the map */
/* The handle for queue id (made on first sight), counted as received in
 * one more message; a new reference, NULL if out of memory. */
tr_blob *qr_blob(uint64_t id);
/* Whether m can go to the parent: not if it holds a queue made here. */
int qr_msg_ok(const tr_msg *m);
#endif
