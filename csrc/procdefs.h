/* The code blobs a worker process holds, as its proxy decides them, and
 * the worker's own record of them. */
#ifndef FUTURES_PROCDEFS_H
#define FUTURES_PROCDEFS_H
#include <stdint.h>
#include "idmap.h"
#include "msg.h"
#include "wire.h"

/* How many blobs a worker keeps (more only while one call needs them). */
#define PDEFS_MAX 512

typedef struct pdefs_ent pdefs_ent;
typedef struct pdefs {
  idmap map;                   /* blob id -> entry */
  pdefs_ent *head, *tail;      /* most recently used first */
  uint64_t seq;                /* calls sent: an entry's stamp is its last */
} pdefs;

/* A new process holds nothing (also frees everything). */
void pdefs_clear(pdefs *d);

/* Appends to out a DEF frame for each of m's blobs the worker lacks and
 * one FORGET frame for the least recently used beyond PDEFS_MAX that m does
 * not use; the worker, reading them in order, holds what d says.  0 if out
 * of memory. */
int pdefs_send(pdefs *d, tr_msg *out, const tr_msg *m);

/* The worker's side (procworker.c, and MPI's worker ranks): the blobs it
 * holds, by the parent's id, as the DEF and FORGET frames read in order
 * say.  wdefs_add: 0 if out of memory; wdefs_forget reads a FORGET's ids,
 * 0 if malformed; wdefs_free drops them all. */
tr_blob *wdefs_find(idmap *d, uint64_t id);
int wdefs_add(idmap *d, uint64_t id, const unsigned char *code, size_t len);
int wdefs_forget(idmap *d, wire_rd *r);
void wdefs_free(idmap *d);
#endif
