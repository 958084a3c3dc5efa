/* A proxy's side of its worker's queue requests (wire.h's Q frames). */
#ifndef FUTURES_QSERVE_H
#define FUTURES_QSERVE_H
#include "idmap.h"
#include "msg.h"
#include "wire.h"

typedef struct qs_req qs_req;
typedef struct qserve {
  idmap ents;          /* queue id -> what the worker may hold (one ref each) */
  qs_req *head, *tail; /* requests not answered yet, in the order sent */
  int efd;             /* readable once a waited-on queue changed; -1 if none */
} qserve;

/* An empty server; its eventfd comes with qs_open, once its proxy has a
 * worker (a proxy that never starts one holds no descriptor for it). */
void qs_init(qserve *s);
int qs_open(qserve *s);     /* 0 if out of descriptors: waits end by their deadlines only */
void qs_free(qserve *s);    /* as if the worker ended, then the descriptor */
/* Counts the queues of a message about to go to the worker (its TASK, a
 * reply): the proxy holds each until the worker drops it.  0 on OOM. */
int qs_sending(qserve *s, const tr_msg *m);
/* A queue the worker may name, with a new reference; NULL if unknown
 * (for wire_read_inline_q). */
tr_blob *qs_resolve(void *s, uint64_t id);
/* Handles one Q frame, appending any replies to out; 0 if malformed or
 * out of memory. */
int qs_frame(qserve *s, int type, wire_rd *r, tr_msg *out);
/* Serves the requests waiting on queues (after a wake-up or a deadline);
 * replies go to out.  0 on OOM. */
int qs_serve(qserve *s, tr_msg *out);
/* Milliseconds until the earliest deadline of a waiting request; -1: none. */
int qs_timeout_ms(qserve *s);
/* The worker ended: puts it sent ahead still go in; the rest is dropped,
 * with every reference. */
void qs_worker_gone(qserve *s);
#endif
