/* A proxy's side of its worker's queue requests.  See qserve.h, wire.h.
 *
 * The proxy thread never blocks on a queue.  A request that can be
 * answered now is answered (its reply appended to the proxy's output, so
 * that the replies of a round go out in one write); one that must wait
 * stays in a FIFO with a watch node on its queue, whose notify (under the
 * queue's lock) makes the proxy's eventfd readable; the proxy polls it
 * beside the pipes, with the earliest deadline as its timeout.  The
 * worker runs one call at a time and sends requests in program order, so
 * only the oldest request is ever tried: a sync get waits behind the puts
 * the worker sent ahead before it.
 *
 * Puts sent ahead: a reply to a put says how many more puts the worker may
 * send without waiting for a reply (the room the queue had, at most
 * CREDIT_MAX), so a stream of puts costs a round trip per CREDIT_MAX
 * values.  Such a put was accepted when the worker sent it: if the worker
 * then dies, it still goes in (even past maxsize); one that meets a
 * closed queue is dropped.
 *
 * References: the worker may hold a queue from the first message that
 * carried it until its QDROP says it received as many as were sent; the
 * proxy holds one reference per queue meanwhile, and drops them all when
 * the worker ends.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "clock.h"
#include "qserve.h"
#include "queue.h"

#define CREDIT_MAX 256

typedef struct qs_ent { tr_blob *b; uint64_t sent; } qs_ent;

struct qs_req {
  queue_watch w;       /* first: the notify finds the request */
  qs_req *next;
  qserve *s;
  int type, sync;
  uint64_t reqid;
  tr_blob *b;          /* holds a reference */
  double deadline;     /* absolute; < 0: none */
  tr_msg msg;          /* a put's value */
};

void qs_init(qserve *s) {
  memset(s, 0, sizeof *s);
  s->efd = -1;
}

int qs_open(qserve *s) {
  if (s->efd < 0) s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  return s->efd >= 0;
}

int qs_sending(qserve *s, const tr_msg *m) {
  for (int i = 0; i < m->nblobs; i++) {
    tr_blob *b = m->blobs[i];
    if (!b->kind) continue;
    qs_ent *e = idmap_get(&s->ents, b->id);
    if (!e) {
      if (!(e = malloc(sizeof *e))) return 0;
      e->b = b;
      e->sent = 0;
      if (!idmap_put(&s->ents, b->id, e)) { free(e); return 0; }
      tr_blob_ref(b);
    }
    e->sent++;
  }
  return 1;
}

tr_blob *qs_resolve(void *ctx, uint64_t id) {
  qs_ent *e = idmap_get(&((qserve *)ctx)->ents, id);
  if (!e) return NULL;
  tr_blob_ref(e->b);
  return e->b;
}

static void notify(queue_watch *w) {   /* the queue's lock held: no more than a write */
  uint64_t one = 1;
  if (write(((qs_req *)w)->s->efd, &one, sizeof one) < 0) { /* full: readable anyway */ }
}

static void req_free(qs_req *q) {
  queue_unwatch(queue_of(q->b), &q->w);
  tr_blob_unref(q->b);
  msg_free(&q->msg);
  free(q);
}

/* Appends a QREPLY head; the caller adds the rest and calls wire_end. */
static size_t reply_begin(tr_msg *out, uint64_t reqid, int status) {
  size_t st = wire_begin(out, W_QREPLY);
  unsigned char c = (unsigned char)status;
  if (st == (size_t)-1 || !tr_put_varint(out, reqid) || !wire_bytes(out, &c, 1)) return (size_t)-1;
  return st;
}

static uint64_t credit(queue_t *q) {
  if (!q->maxsize) return CREDIT_MAX;
  size_t n = queue_len(q), room = n < q->maxsize ? q->maxsize - n : 0;
  return room < CREDIT_MAX ? room : CREDIT_MAX;
}

/* Tries the oldest request: 1 answered (or dropped), 0 it waits, -1 OOM. */
static int try_req(qserve *s, qs_req *r, tr_msg *out) {
  queue_t *q = queue_of(r->b);
  int expired = r->deadline >= 0 && clk_now() >= r->deadline;
  size_t st;
  if (r->type == W_QINFO) {
    if ((st = reply_begin(out, r->reqid, QUEUE_OK)) == (size_t)-1 ||
        !tr_put_varint(out, queue_len(q)) || !tr_put_varint(out, q->maxsize) ||
        !tr_put_varint(out, (uint64_t)queue_is_closed(q)))
      return -1;
  } else if (r->type == W_QPUT) {
    int rc = queue_put(q, &r->msg, &r->w, 0);
    if (rc == QUEUE_NOMEM) return -1;
    if (rc == QUEUE_WAIT && !expired) return 0;
    if (!r->sync) return 1;
    if ((st = reply_begin(out, r->reqid, rc)) == (size_t)-1 || !tr_put_varint(out, credit(q))) return -1;
  } else {
    tr_msg v;
    msg_init(&v);
    int rc = queue_get(q, &v, &r->w);
    if (rc == QUEUE_WAIT && !expired) return 0;
    int ok = (st = reply_begin(out, r->reqid, rc)) != (size_t)-1 &&
             (rc != QUEUE_OK || (qs_sending(s, &v) && wire_msg_inline(out, &v)));
    msg_free(&v);
    if (!ok) return -1;
  }
  wire_end(out, st);
  return 1;
}

int qs_serve(qserve *s, tr_msg *out) {
  uint64_t v;
  if (read(s->efd, &v, sizeof v) < 0) { /* nothing was signalled */ }
  while (s->head) {
    qs_req *r = s->head;
    int rc = try_req(s, r, out);
    if (rc < 0) return 0;
    if (rc == 0) break;
    s->head = r->next;
    if (!s->head) s->tail = NULL;
    req_free(r);
  }
  return 1;
}

int qs_timeout_ms(qserve *s) {
  if (!s->head || s->head->deadline < 0) return -1;
  double left = s->head->deadline - clk_now();
  return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

int qs_frame(qserve *s, int type, wire_rd *r, tr_msg *out) {
  uint64_t reqid = 0, qid;
  if (type == W_QDROP) {
    uint64_t n;
    if (!wire_varint(r, &qid) || !wire_varint(r, &n)) return 0;
    qs_ent *e = idmap_get(&s->ents, qid);
    if (!e || n > e->sent) return 0;
    if ((e->sent -= n) == 0) {
      idmap_del(&s->ents, qid);
      tr_blob_unref(e->b);
      free(e);
    }
    return 1;
  }
  if (!wire_varint(r, &reqid) || !wire_varint(r, &qid)) return 0;
  tr_blob *b = qs_resolve(s, qid);
  if (!b) return 0;
  if (type == W_QCLOSE) {
    queue_close(queue_of(b));
    tr_blob_unref(b);
    return qs_serve(s, out);
  }
  qs_req *q = calloc(1, sizeof *q);
  if (!q) { tr_blob_unref(b); return 0; }
  q->w.notify = notify;
  q->s = s;
  q->type = type;
  q->sync = 1;
  q->reqid = reqid;
  q->b = b;
  q->deadline = -1;
  msg_init(&q->msg);
  int ok = 1;
  double t = -1;
  if (type == W_QPUT) {
    unsigned char sync = r->p < r->end ? *r->p++ : 2;
    q->sync = sync;
    ok = sync < 2 && wire_double(r, &t) && wire_read_inline_q(r, &q->msg, &(wire_resolver){qs_resolve, NULL, s});
  } else if (type == W_QGET) {
    ok = wire_double(r, &t);
  } else {
    ok = type == W_QINFO;
  }
  if (!ok || t != t) { req_free(q); return 0; }
  if (t >= 0) q->deadline = clk_now() + t;
  if (s->tail) s->tail->next = q; else s->head = q;
  s->tail = q;
  return qs_serve(s, out);
}

void qs_worker_gone(qserve *s) {
  while (s->head) {
    qs_req *r = s->head;
    s->head = r->next;
    if (r->type == W_QPUT && !r->sync) {
      queue_unwatch(queue_of(r->b), &r->w);
      queue_put(queue_of(r->b), &r->msg, NULL, 1);   /* accepted when sent */
    }
    req_free(r);
  }
  s->tail = NULL;
  for (size_t i = 0; i < s->ents.cap; i++) {
    qs_ent *e = s->ents.e[i].val;
    if (!e) continue;
    tr_blob_unref(e->b);
    free(e);
  }
  idmap_free(&s->ents);
  memset(&s->ents, 0, sizeof s->ents);
}

void qs_free(qserve *s) {
  qs_worker_gone(s);
  if (s->efd >= 0) close(s->efd);
  s->efd = -1;
}
