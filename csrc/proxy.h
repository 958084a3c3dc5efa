/* The proxy thread: one per worker process, a pool.c worker thread. */
#ifndef FUTURES_PROXY_H
#define FUTURES_PROXY_H
#include "pool.h"
#include "procmon.h"

/* What a process pool's backend keeps (pool_data): shared by its proxies. */
typedef struct procdata {
  char *worker_path;
  pmon mon;
} procdata;

/* The body of a proxy thread; arg is a pool_worker. */
void *proxy_main(void *arg);
#endif
