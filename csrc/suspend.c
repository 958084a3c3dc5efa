/* Suspending spawned coroutines at library waits.  See suspend.h.
 *
 * A record lives inside its spawner's userdata (the Future), which a
 * registry reference anchors from the record's birth until the coroutine
 * ended and no wake-up of it is queued, so that the job and timer inside
 * it stay valid while the owner may still run them; a user value of that
 * userdata holds the coroutine.  The state's thread alone touches a
 * record; other threads only post its job (owner_post), under the
 * owner's lock.
 */
#include "lauxlib.h"
#include "luax.h"
#include "suspend.h"

enum { S_RUNNING, S_WAITING, S_DONE };

struct susp {
  owner_job job;         /* resumes the coroutine */
  fut_watch watch;       /* susp_watch's node, on `watched` */
  fut_t *watched;
  owner_timer timer;     /* the wait's deadline */
  owner_t *owner;        /* holds a reference */
  lua_State *co;
  int ref;               /* the anchor, in the registry; LUA_NOREF once released */
  int state;             /* S_* */
  int cancelled;         /* raise CancelledError at the wait */
  susp_ended_fn ended;
};

static const char k_mark;

/* The record whose coroutine susp_resume is running on this OS thread
 * (the innermost one): susp_current's answer in O(1), no table lookup.
 * Only susp_resume sets it and puts the previous one back.  Initial-exec:
 * see task.c. */
static _Thread_local susp_t *resumed __attribute__((tls_model("initial-exec")));

static susp_t *of_job(owner_job *j) { return (susp_t *)((char *)j - offsetof(susp_t, job)); }

/* Drops the record's anchor once nothing can reach it any more. */
static void release(lua_State *L, susp_t *s) {
  pthread_mutex_lock(&s->owner->mu);
  int queued = s->job.queued;
  pthread_mutex_unlock(&s->owner->mu);
  if (s->state != S_DONE || queued || s->ref == LUA_NOREF) return;
  luaL_unref(L, LUA_REGISTRYINDEX, s->ref);
  s->ref = LUA_NOREF;
}

void susp_resume(lua_State *L, susp_t *s, int nargs) {
  owner_timer_clear(s->owner, &s->timer);
  if (s->watched) {
    fut_watch_remove(s->watched, &s->watch);
    s->watched = NULL;
  }
  s->state = S_RUNNING;
  lua_State *co = s->co;
  lua_xmove(L, co, nargs);
  susp_t *outer = resumed;
  resumed = s;
  int nres, st = lua_resume(co, L, nargs, &nres);
  resumed = outer;
  if (st == LUA_YIELD && s->state == S_WAITING) {
    lua_pop(co, nres);   /* the mark: it waits for its wake-up */
    return;
  }
  s->state = S_DONE;
  if (st == LUA_YIELD) {   /* coroutine.yield: nobody would resume it */
    lua_settop(co, 0);
    lua_pushliteral(co, "futures.spawn: the coroutine yielded on its own (coroutine.yield); "
                        "inside futures.spawn only the library's waits may suspend it: "
                        "use a coroutine of your own for generators");
    st = LUA_ERRRUN;
  }
  s->ended(L, s, co, st);
  lua_settop(co, 0);
  release(L, s);
}

static int wake_run(lua_State *L, owner_job *j, int *interrupted) {
  (void)interrupted;
  susp_t *s = of_job(j);
  if (s->state != S_WAITING) {   /* ended, or woken twice */
    release(L, s);
    return 0;
  }
  susp_resume(L, s, 0);
  return 1;
}

static void wake_drop(owner_job *j) { (void)j; }   /* the state is closing: so is the record */

static const owner_job_ops wake_ops = {wake_run, wake_drop};

size_t susp_size(void) { return sizeof(susp_t); }

void susp_free(void *mem) {
  susp_t *s = mem;
  owner_unref(s->owner);
  s->owner = NULL;
}

susp_t *susp_new(lua_State *L, owner_t *o, int ud_idx, int uv, void *mem, susp_ended_fn ended) {
  ud_idx = lua_absindex(L, ud_idx);
  lua_State *co = lua_newthread(L);          /* fn, co */
  lua_insert(L, -2);
  lua_xmove(L, co, 1);                       /* the function, into the coroutine */
  lua_setiuservalue(L, ud_idx, uv);
  susp_t *s = mem;
  s->job.ops = &wake_ops;
  s->timer.job = &s->job;
  s->owner = o;
  owner_ref(o);
  s->co = co;
  s->ended = ended;
  lua_pushvalue(L, ud_idx);
  s->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return s;
}

void susp_push_ud(lua_State *L, susp_t *s) { lua_rawgeti(L, LUA_REGISTRYINDEX, s->ref); }

susp_t *susp_current(lua_State *L) {
  susp_t *s = resumed;
  if (!s || s->co != L || !lua_isyieldable(L)) return NULL;
  if (s->cancelled) {
    s->cancelled = 0;   /* once: a coroutine that catches it may go on */
    luax_error(L, LUAX_CANCELLED, "the future was cancelled");
  }
  return s;
}

int susp_wait(lua_State *L, susp_t *s, double deadline, lua_KContext ctx, lua_KFunction k) {
  if (deadline >= 0 && !owner_timer_set(s->owner, &s->timer, deadline))
    return luaL_error(L, "not enough memory");
  s->state = S_WAITING;
  lua_pushlightuserdata(L, (void *)&k_mark);
  return lua_yieldk(L, 1, ctx, k);
}

owner_job *susp_wake_job(susp_t *s) { return &s->job; }

static susp_t *of_watch(fut_watch *w) { return (susp_t *)((char *)w - offsetof(susp_t, watch)); }

/* With the future locked (then the owner's lock: the lock order). */
static void watch_notify(fut_watch *w) { owner_post(of_watch(w)->owner, &of_watch(w)->job); }

int susp_watch(susp_t *s, fut_t *f) {
  s->watch.notify = watch_notify;
  if (!fut_watch_add(f, &s->watch)) return 0;
  s->watched = f;
  return 1;
}

void susp_cancel(susp_t *s) {
  if (s->state == S_DONE) return;
  s->cancelled = 1;
  owner_post(s->owner, &s->job);
}
