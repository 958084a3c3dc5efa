/* The code blobs a worker process holds, as its proxy decides them. */
#ifndef FUTURES_PROCDEFS_H
#define FUTURES_PROCDEFS_H
#include <stdint.h>
#include "idmap.h"
#include "msg.h"

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
#endif
