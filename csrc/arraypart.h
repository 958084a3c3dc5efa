/* Direct access to the array part of a Lua 5.4 table, for the codec's
 * arrays of numbers and booleans.  Usable only once ap_check has verified,
 * in a live state, that this Lua lays tables out as these declarations
 * say; until then, or if it does not, ap_array says "not available" and
 * the caller takes the public API. */
#ifndef FUTURES_ARRAYPART_H
#define FUTURES_ARRAYPART_H
#include <stddef.h>
#include "lua.h"

/* One slot of an array part: Lua 5.4's TValue. */
typedef struct ap_slot {
  union { void *gc; lua_Integer i; lua_Number n; } v;
  unsigned char tt;
} ap_slot;

#define AP_INT 0x03     /* LUA_VNUMINT */
#define AP_FLT 0x13     /* LUA_VNUMFLT */
#define AP_FALSE 0x01   /* LUA_VFALSE */
#define AP_TRUE 0x11    /* LUA_VTRUE */
#define AP_ISNIL(tt) (((tt) & 0x0f) == 0)   /* nil, empty or absent key */

/* Verifies the layout once per process (later calls return at once). */
void ap_check(lua_State *L);

/* Turns direct access off or back on (tests compare the two paths); on
 * only if ap_check passed.  ap_enabled: whether it is on. */
void ap_enable(int on);
int ap_enabled(void);

/* The array part of the table at idx and, in *len, how many slots it
 * surely has; NULL when direct access is off.  The pointer is good until
 * the table next grows, so refetch it after anything that may run Lua
 * code or insert into the table. */
ap_slot *ap_array(lua_State *L, int idx, size_t *len);

/* Handing a whole array part over, for the big arrays that cross between
 * this process's threads as one block (slab.c).  ap_adopts(L): whether a
 * block from malloc may become an array part in L: adoption is on, L
 * allocates with lauxlib's allocator (malloc's family), and ap_check found
 * the collector's allocation counter.  ap_adopt: the table at idx, new and
 * with no array part, takes the n slots (from malloc) as its array part,
 * counted as memory L allocated.  ap_adopt_enable: tests turn it off. */
int ap_adopts(lua_State *L);
void ap_adopt(lua_State *L, int idx, ap_slot *slots, size_t n);
void ap_adopt_enable(int on);
int ap_adopt_enabled(void);

#endif
