/* The code blobs a worker process holds, as its proxy decides them.
 *
 * A call names its functions' code by blob id; the worker must have been
 * sent each blob (a DEF frame) before the call.  Both sides would grow
 * without bound with a program that makes a new function per call, so the
 * proxy keeps the set bounded and alone decides: it sends a DEF for a blob
 * the worker lacks, and when the set outgrows PDEFS_MAX it drops the least
 * recently used blobs and tells the worker with a FORGET frame, queued
 * before the call.  Frames are read in order, so at every call the
 * worker's set is the proxy's: they cannot disagree.  Blobs the call being
 * sent uses are never dropped (their stamp is the current call), so one
 * call with many functions may exceed the bound until the next call.
 */
#include <stdlib.h>
#include "procdefs.h"
#include "transfer.h"
#include "wire.h"

struct pdefs_ent {
  uint64_t id, stamp;
  pdefs_ent *prev, *next;
};

static void unlink_ent(pdefs *d, pdefs_ent *e) {
  if (e->prev) e->prev->next = e->next; else d->head = e->next;
  if (e->next) e->next->prev = e->prev; else d->tail = e->prev;
}

static void push_front(pdefs *d, pdefs_ent *e) {
  e->prev = NULL;
  e->next = d->head;
  if (d->head) d->head->prev = e; else d->tail = e;
  d->head = e;
}

void pdefs_clear(pdefs *d) {
  for (pdefs_ent *e = d->head, *next; e; e = next) {
    next = e->next;
    free(e);
  }
  idmap_free(&d->map);
  d->head = d->tail = NULL;
}

int pdefs_send(pdefs *d, tr_msg *out, const tr_msg *m) {
  uint64_t seq = ++d->seq;
  for (int i = 0; i < m->nblobs; i++) {
    tr_blob *b = m->blobs[i];
    if (b->kind) continue;   /* a queue: by id, qserve.c */
    pdefs_ent *e = idmap_get(&d->map, b->id);
    if (e) {
      unlink_ent(d, e);
    } else {
      size_t s = wire_begin(out, W_DEF);
      if (s == (size_t)-1 || !tr_put_varint(out, b->id) || !wire_bytes(out, b->code, b->len)) return 0;
      wire_end(out, s);
      if (!(e = malloc(sizeof *e))) return 0;
      e->id = b->id;
      if (!idmap_put(&d->map, b->id, e)) { free(e); return 0; }
    }
    e->stamp = seq;
    push_front(d, e);
  }
  if (d->map.n <= PDEFS_MAX || d->tail->stamp == seq) return 1;
  size_t s = wire_begin(out, W_FORGET);
  if (s == (size_t)-1) return 0;
  while (d->map.n > PDEFS_MAX && d->tail->stamp != seq) {
    pdefs_ent *e = d->tail;
    if (!tr_put_varint(out, e->id)) return 0;
    unlink_ent(d, e);
    idmap_del(&d->map, e->id);
    free(e);
  }
  wire_end(out, s);
  return 1;
}

/* ------------------------------------------------------ the worker's side */

tr_blob *wdefs_find(idmap *d, uint64_t id) { return idmap_get(d, id); }

int wdefs_add(idmap *d, uint64_t id, const unsigned char *code, size_t len) {
  tr_blob *b = tr_blob_new((const char *)code, len);
  if (!b) return 0;
  tr_blob *old = idmap_get(d, id);
  if (!idmap_put(d, id, b)) { tr_blob_unref(b); return 0; }
  if (old) tr_blob_unref(old);
  return 1;
}

int wdefs_forget(idmap *d, wire_rd *r) {
  while (r->p < r->end) {
    uint64_t id;
    if (!wire_varint(r, &id)) return 0;
    tr_blob *b = idmap_del(d, id);
    if (b) tr_blob_unref(b);
  }
  return 1;
}

void wdefs_free(idmap *d) {
  for (size_t i = 0; i < d->cap; i++)
    if (d->e[i].val) tr_blob_unref(d->e[i].val);
  idmap_free(d);
}
