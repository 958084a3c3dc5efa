/* An intrusive FIFO: the item carries the node, the queue edits it.  One
 * queue per node: an item that sits in two queues has a node for each. */
#ifndef FUTURES_FIFO_H
#define FUTURES_FIFO_H
#include <stddef.h>

typedef struct fifo_node { struct fifo_node *next; } fifo_node;
typedef struct fifo { fifo_node *head, *tail; } fifo;

#define FIFO_ITEM(node, type, field) ((type *)((char *)(node) - offsetof(type, field)))

static inline void fifo_push(fifo *q, fifo_node *n) {
  n->next = NULL;
  if (q->tail) q->tail->next = n; else q->head = n;
  q->tail = n;
}

static inline fifo_node *fifo_pop(fifo *q) {
  fifo_node *n = q->head;
  if (n) {
    q->head = n->next;
    if (!q->head) q->tail = NULL;
    n->next = NULL;
  }
  return n;
}

/* Empties q, returning its nodes as a NULL-terminated chain. */
static inline fifo_node *fifo_take_all(fifo *q) {
  fifo_node *n = q->head;
  q->head = q->tail = NULL;
  return n;
}
#endif
