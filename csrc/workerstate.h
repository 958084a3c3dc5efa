/* Creating a worker's private lua_State. */
#ifndef FUTURES_WORKERSTATE_H
#define FUTURES_WORKERSTATE_H
#include <stdio.h>
#include "lua.h"

#define WS_NAME_KEY "futures.workername"

typedef struct ws_config {
  const char *path, *cpath;   /* the creator's package.path / cpath */
  const char *name;           /* what futures.current_worker() returns */
} ws_config;

/* How a worker state finds the module without a search: the entry
 * points hand over the function that fills package.preload. */
typedef void (*ws_preload_fn)(lua_State *L);
void ws_set_preload(ws_preload_fn fn);

/* package.path or package.cpath of L, malloc'd (NULL if unset or no memory). */
char *ws_package_field(lua_State *L, const char *field);

/* A new state, or NULL with a message in err. */
lua_State *ws_new(const ws_config *c, char *err, size_t errlen);
#endif
