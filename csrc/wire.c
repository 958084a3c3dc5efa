/* Frames on the process-pool pipes; see wire.h for the layout. */
#include <string.h>
#include "msg.h"
#include "wire.h"

size_t wire_begin(tr_msg *b, int type) {
  size_t start = b->len;
  static const unsigned char head[5] = {0, 0, 0, 0, 0};
  if (!msg_reserve(b, 5)) return (size_t)-1;
  msg_put(b, head, 5);
  b->data[start + 4] = (unsigned char)type;
  return start;
}

void wire_end(tr_msg *b, size_t start) {
  size_t n = b->len - start - 4;
  for (int i = 0; i < 4; i++) b->data[start + i] = (unsigned char)(n >> (8 * i));
}

int wire_bytes(tr_msg *b, const void *p, size_t n) {
  if (!msg_reserve(b, n)) return 0;
  msg_put(b, p, n);
  return 1;
}

int wire_str(tr_msg *b, const void *p, size_t n) {
  return tr_put_varint(b, n) && wire_bytes(b, p, n);
}

static int known_type(int t) {
  return t == W_HELLO || t == W_DEF || t == W_FORGET || t == W_INIT || t == W_TASK || t == W_RESULT ||
         t == W_FAILED || t == W_QPUT || t == W_QGET || t == W_QINFO || t == W_QCLOSE || t == W_QDROP ||
         t == W_QREPLY;
}

size_t wire_announced(const unsigned char *h) {
  return (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
}

int wire_frame(const unsigned char *buf, size_t len, int *type,
               const unsigned char **payload, size_t *plen, size_t *whole) {
  if (len < 4) return 0;
  size_t n = wire_announced(buf);
  if (n < 1 || n > WIRE_MAXFRAME) return -1;
  /* Garbage is refused by its type byte as soon as that arrives, not after
   * waiting for the gigabyte its first bytes happen to announce. */
  if (len > 4 && !known_type(buf[4])) return -1;
  if (len - 4 < n) return 0;
  *type = buf[4];
  *payload = buf + 5;
  *plen = n - 1;
  *whole = n + 4;
  return 1;
}

int wire_varint(wire_rd *r, uint64_t *v) { return tr_get_varint(&r->p, r->end, v); }

int wire_getstr(wire_rd *r, const unsigned char **s, size_t *len) {
  uint64_t n;
  if (!wire_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return 0;
  *s = r->p;
  *len = (size_t)n;
  r->p += n;
  return 1;
}

int wire_fits(const tr_msg *m, int inline_blobs) {
  size_t room = WIRE_MAXFRAME - 4096, n = m->len;
  for (int i = 0; i < m->nblobs && n <= room; i++)
    n += 10 + (inline_blobs ? m->blobs[i]->len : 0);
  return n <= room;
}

int wire_msg_by_id(tr_msg *b, const tr_msg *m) {
  if (!tr_put_varint(b, (uint64_t)m->nblobs)) return 0;
  for (int i = 0; i < m->nblobs; i++)
    if (!tr_put_varint(b, m->blobs[i]->id)) return 0;
  return wire_bytes(b, m->data, m->len);
}

int wire_msg_tagged(tr_msg *b, const tr_msg *m) {
  if (!tr_put_varint(b, (uint64_t)m->nblobs)) return 0;
  for (int i = 0; i < m->nblobs; i++) {
    tr_blob *x = m->blobs[i];
    if (!tr_put_varint(b, x->kind ? x->kind->wire_id(x) * 2 + 1 : x->id * 2)) return 0;
  }
  return wire_bytes(b, m->data, m->len);
}

/* A blob that is not code: a zero length, then a queue as its id * 2, an
 * array in the ring as its position * 2 + 1 and its slots. */
static int put_kind(tr_msg *b, tr_blob *x) {
  if (!tr_put_varint(b, 0)) return 0;
  if (!x->kind->wire_slots) return tr_put_varint(b, x->kind->wire_id(x) * 2);
  return tr_put_varint(b, x->kind->wire_id(x) * 2 + 1) && tr_put_varint(b, x->kind->wire_slots(x));
}

int wire_msg_inline(tr_msg *b, const tr_msg *m) {
  if (!tr_put_varint(b, (uint64_t)m->nblobs)) return 0;
  for (int i = 0; i < m->nblobs; i++) {
    tr_blob *x = m->blobs[i];
    if (x->kind ? !put_kind(b, x) : !wire_str(b, x->code, x->len)) return 0;
  }
  return wire_bytes(b, m->data, m->len);
}

int wire_double(wire_rd *r, double *v) {
  if (r->end - r->p < 8) return 0;
  memcpy(v, r->p, 8);
  r->p += 8;
  return 1;
}

int wire_read_inline(wire_rd *r, tr_msg *m) { return wire_read_inline_q(r, m, NULL); }

/* The blob a zero length names (see put_kind); NULL if none can be had. */
static tr_blob *get_kind(wire_rd *r, const wire_resolver *res) {
  uint64_t v, n;
  if (!res || !wire_varint(r, &v)) return NULL;
  if (!(v & 1)) return res->queue ? res->queue(res->ctx, v >> 1) : NULL;
  return res->array && wire_varint(r, &n) ? res->array(res->ctx, v >> 1, n) : NULL;
}

int wire_read_inline_q(wire_rd *r, tr_msg *m, const wire_resolver *res) {
  uint64_t nb;
  if (!wire_varint(r, &nb) || nb > (uint64_t)(r->end - r->p)) return 0;
  for (uint64_t i = 0; i < nb; i++) {
    const unsigned char *code;
    size_t len;
    if (!wire_getstr(r, &code, &len)) return 0;
    tr_blob *blob = len ? tr_blob_new((const char *)code, len) : get_kind(r, res);
    if (!blob) return 0;
    int ok = msg_add_blob(m, blob) >= 0;
    tr_blob_unref(blob);
    if (!ok) return 0;
  }
  size_t rest = (size_t)(r->end - r->p);
  if (!msg_reserve(m, rest)) return 0;
  msg_put(m, r->p, rest);
  r->p = r->end;
  return 1;
}
