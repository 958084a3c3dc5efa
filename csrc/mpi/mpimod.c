/* futures.mpi: the module entry.  Finds the loaded core's backend table,
 * starts MPI, and makes the MPIPoolExecutor constructor and methods; the
 * Lua half (mpi.lua, compiled in) adds options, map and rank()/size().
 *
 * MPI is started at MPI_THREAD_SERIALIZED (see mpisession.h for who calls
 * it when) by the first state that opens the module, unless the host
 * started it already (then at least that level is required); that state's
 * close finalizes it, once every executor's driver is done.  A script that
 * leaves with os.exit(code) without closing the state is finalized at
 * process exit instead, if no driver is still running.
 */
#include <dlfcn.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lauxlib.h"
#include "mpisession.h"

const futures_backend *fb;
mpis_state mpis;

static pthread_mutex_t session_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t session_free = PTHREAD_COND_INITIALIZER;
static int session_busy;       /* under session_mu */
static int sessions;           /* begun and not ended; under session_mu */
static int started;            /* MPI is ours to finalize; under session_mu */
static int finalized;          /* under session_mu */
static atomic_int numbers;     /* executors made, for worker names */

double mpis_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void mpis_acquire(void) {
  pthread_mutex_lock(&session_mu);
  while (session_busy) pthread_cond_wait(&session_free, &session_mu);
  session_busy = 1;
  pthread_mutex_unlock(&session_mu);
}

void mpis_release(void) {
  pthread_mutex_lock(&session_mu);
  session_busy = 0;
  pthread_cond_broadcast(&session_free);
  pthread_mutex_unlock(&session_mu);
}

void mpis_session_begin(void) {
  pthread_mutex_lock(&session_mu);
  sessions++;
  pthread_mutex_unlock(&session_mu);
}

void mpis_session_end(void) {
  pthread_mutex_lock(&session_mu);
  sessions--;
  pthread_cond_broadcast(&session_free);
  pthread_mutex_unlock(&session_mu);
}

void mpis_idle(mpis_backoff *b, double spin, double cap) {
  double now = mpis_now();
  if (b->since == 0) b->since = now;
  if (now - b->since < spin) { sched_yield(); return; }   /* oversubscribed: let the others run */
  b->delay = b->delay == 0 ? 10e-6 : b->delay * 2 > cap ? cap : b->delay * 2;
  struct timespec ts = {0, (long)(b->delay * 1e9)};
  nanosleep(&ts, NULL);
}

int mpis_probe(int source, MPI_Message *m, MPI_Status *st) {
  int flag;
  MPI_Improbe(source, MPI_ANY_TAG, mpis.comm, &flag, m, st);
  if (!flag) MPI_Improbe(source, MPI_ANY_TAG, mpis.comm, &flag, m, st);
  return flag;
}

int mpis_recv_append(MPI_Message *m, int count, tr_msg *buf) {
  if (count > 0 && !fb->msg_reserve(buf, (size_t)count)) return 0;
  MPI_Mrecv(count > 0 ? buf->data + buf->len : NULL, count, MPI_BYTE, m, MPI_STATUS_IGNORE);
  if (count > 0) buf->len += (size_t)count;
  return 1;
}

/* ------------------------------------------------------------- the core */

/* The backend table of the core that holds futures.core's functions: the
 * object that dlopen loaded (or the host program, which must export it). */
static const futures_backend *find_core(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "futures.core");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "poll");
  lua_CFunction fn = lua_tocfunction(L, -1);
  lua_pop(L, 2);
  Dl_info info;
  if (!fn || !dladdr((void *)fn, &info)) return NULL;
  void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  if (!h) h = dlopen(NULL, RTLD_LAZY);
  if (!h) return NULL;
  const futures_backend *(*api)(int) = (const futures_backend *(*)(int))dlsym(h, "futures_backend_api");
  const futures_backend *b = api ? api(FUTURES_BACKEND_VERSION) : NULL;
  dlclose(h);   /* the core stays loaded: Lua holds it */
  return b && b->size >= sizeof *b ? b : NULL;
}

/* ------------------------------------------------------------------ MPI */

static void at_exit(void) {
  pthread_mutex_lock(&session_mu);
  int fin = 0;
  if (started && !finalized && !session_busy && sessions == 0) { finalized = 1; fin = 1; }
  pthread_mutex_unlock(&session_mu);
  if (fin) MPI_Finalize();
}

/* Starts MPI once per process; returns 1 if this call started it. */
static int start_mpi(lua_State *L) {
  static int done;
  if (done) return 0;
  int inited, provided, ours = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    ours = 1;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED)
    luaL_error(L, "futures.mpi needs MPI_THREAD_SERIALIZED; this MPI gives level %d", provided);
  MPI_Comm_dup(MPI_COMM_WORLD, &mpis.comm);
  MPI_Comm_rank(mpis.comm, &mpis.rank);
  MPI_Comm_size(mpis.comm, &mpis.size);
  done = 1;
  if (ours) {
    pthread_mutex_lock(&session_mu);
    started = 1;
    pthread_mutex_unlock(&session_mu);
    atexit(at_exit);
  }
  return ours;
}

/* The sentinel's __gc: at the close of the state that started MPI, after
 * its executors' finalizers (they were made later, so they run first). */
static int sentinel_gc(lua_State *L) {
  (void)L;
  pthread_mutex_lock(&session_mu);   /* every executor's session is over */
  while (session_busy || sessions > 0) pthread_cond_wait(&session_free, &session_mu);
  session_busy = 1;
  int fin = started && !finalized;
  finalized = 1;
  pthread_mutex_unlock(&session_mu);
  if (fin) MPI_Finalize();
  /* The session stays taken: no MPI call after this one. */
  return 0;
}

/* ------------------------------------------------------------- executor */

/* upvalues of the wrappers: 1 the core's method, 2 the core's _stats */
static mpid_data *data_of(lua_State *L) { return fb->pool_data(fb->pool_check(L, 1)); }

/* After shutdown: if no driver ever started, nobody told the ranks. */
static void stop_unstarted(lua_State *L, mpid_data *d) {
  int top = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 4, 0) == LUA_OK && lua_tointeger(L, -1) == 0 && lua_tointeger(L, -4) == 0 &&
      d && mpid_claim_stop(d)) {
    mpid_stop_ranks();
    mpis_session_end();
  }
  lua_settop(L, top);
}

/* Calls the core's method (upvalue 1) with this call's arguments, as a
 * closure of its own (it keeps its upvalues); k continues after it. */
static int call_core(lua_State *L, lua_KFunction k) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
  lua_callk(L, n, LUA_MULTRET, (lua_KContext)n, k);
  return k(L, LUA_OK, (lua_KContext)n);
}

static int submit_k(lua_State *L, int status, lua_KContext n) {
  (void)status;
  mpid_data *d = data_of(L);
  if (d) mpid_poke(d);
  return lua_gettop(L) - (int)n;
}

static int l_submit(lua_State *L) { return call_core(L, submit_k); }

static int shutdown_k(lua_State *L, int status, lua_KContext n) {
  (void)status;
  stop_unstarted(L, data_of(L));
  return lua_gettop(L) - (int)n;
}

static int l_shutdown(lua_State *L) {   /* also __close; its wait may suspend a coroutine */
  data_of(L);   /* checks the executor before anything runs */
  return call_core(L, shutdown_k);
}

static int l_gc(lua_State *L) {
  /* _stats raises on an executor closed already: then nothing to do. */
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 4, 0) == LUA_OK) {
    int never = lua_tointeger(L, -1) == 0 && lua_tointeger(L, -4) == 0;
    lua_pop(L, 4);
    mpid_data *d = data_of(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);   /* the core's __gc: shuts down without waiting */
    if (never && d && mpid_claim_stop(d)) {
      mpid_stop_ranks();
      mpis_session_end();
    }
    return 0;
  }
  lua_pop(L, 1);   /* closed already */
  return 0;
}

static int l_tostring(lua_State *L) {
  mpid_data *d = data_of(L);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  const char *s = lua_tostring(L, -1), *rest = s ? strstr(s, "pending=") : NULL;
  lua_pushfstring(L, "<MPIPoolExecutor max_workers=%d %s", d ? mpid_nranks(d) : 0, rest ? rest : ">");
  return 1;
}

/* Replaces t[name] (a core C function) by fn with it and _stats as upvalues. */
static void wrap(lua_State *L, int t, int stats, const char *name, lua_CFunction fn) {
  lua_getfield(L, t, name);
  lua_pushvalue(L, stats);
  lua_pushcclosure(L, fn, 2);
  lua_setfield(L, t, name);
}

/* C.MPIPoolExecutor(max_workers, initializer, initargs): an executor on
 * rank 0; on the other ranks, serves until rank 0 stops it, returns nil. */
static int l_executor(lua_State *L) {
  if (mpis.rank != 0) {
    char err[256];
    if (mpiw_serve(err, sizeof err) != 0) return luaL_error(L, "futures.mpi: %s", err);
    return 0;
  }
  if (mpis.size < 2)
    return luaL_error(L, "MPIPoolExecutor needs worker ranks: run the script under "
                         "mpiexec -n 2 (or more); this job has 1 rank");
  lua_Integer max = luaL_optinteger(L, 1, mpis.size - 1);
  if (max < 1 || max > mpis.size - 1)
    return luaL_argerror(L, 1, lua_pushfstring(L, "max_workers must be between 1 and %d (the other ranks of the job)",
                                              mpis.size - 1));
  lua_settop(L, 3);
  lua_pushinteger(L, 1);   /* to pool.c: one worker thread, the driver */
  lua_replace(L, 1);
  pool_t *p = fb->pool_push_new(L, mpid_backend(fb->pool_executor_class));
  mpid_data *d = mpid_new((int)max, atomic_fetch_add(&numbers, 1));
  if (!d) {   /* broken from birth: submit raises, no driver ever starts */
    fb->pool_break(p, "not enough memory");
    return 1;
  }
  fb->pool_set_data(p, d);
  mpis_session_begin();   /* the wrappers' __gc ends it, or the driver */
  return 1;
}

extern const unsigned char futures_mpi_front[];
extern const size_t futures_mpi_front_len;

FUTURES_API int luaopen_futures_mpi(lua_State *L) {
  if (!fb && !(fb = find_core(L)))
    return luaL_error(L, "futures.mpi: cannot find the backend table of the loaded futures.core");
  int ours = start_mpi(L);
  lua_newtable(L);   /* the C half, handed to mpi.lua */
  int t = lua_gettop(L);
  if (ours) {
    lua_newuserdatauv(L, 0, 0);
    lua_newtable(L);
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "futures.mpi.session");
  }
  const pool_backend *be = mpid_backend(fb->pool_executor_class);
  fb->pool_open(L, be);
  lua_getfield(L, t, "MPIPoolExecutor_methods");
  int methods = lua_gettop(L);
  lua_getfield(L, methods, "_stats");
  int stats = lua_gettop(L);
  wrap(L, methods, stats, "submit", l_submit);
  wrap(L, methods, stats, "shutdown", l_shutdown);
  luaL_getmetatable(L, be->cls.name);
  int mt = lua_gettop(L);
  wrap(L, mt, stats, "__close", l_shutdown);
  wrap(L, mt, stats, "__gc", l_gc);
  wrap(L, mt, stats, "__tostring", l_tostring);
  lua_settop(L, t);
  lua_pushcfunction(L, l_executor);
  lua_setfield(L, t, "MPIPoolExecutor");
  lua_pushinteger(L, mpis.rank);
  lua_setfield(L, t, "_rank");
  lua_pushinteger(L, mpis.size);
  lua_setfield(L, t, "_size");
  if (luaL_loadbufferx(L, (const char *)futures_mpi_front, futures_mpi_front_len, "=futures.mpi", "t") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, t);
  lua_call(L, 1, 1);
  return 1;
}
