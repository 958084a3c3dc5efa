/* futures.mpi: what its files share.  The module drives the core through
 * the core's backend table (backend.h), never a copy of it; `fb` is that
 * table, found once when the module is first opened.
 *
 * MPI state is per process, so this is too: one private communicator
 * (a duplicate of MPI_COMM_WORLD, so a script's own messages never match
 * ours), this rank and the size, and the session lock.
 *
 * Threads: MPI is initialised at MPI_THREAD_SERIALIZED.  On rank 0 the
 * main thread calls MPI at init and finalize (and to stop the ranks of an
 * executor that never started its driver); an executor's driver thread
 * makes every other call.  Whoever calls MPI holds the session (mpis_acquire
 * .. mpis_release), so no two threads ever call MPI at once, and one
 * executor's messages never interleave with the next one's.  Worker ranks
 * call MPI from their main thread only.
 */
#ifndef FUTURES_MPISESSION_H
#define FUTURES_MPISESSION_H
#include <mpi.h>
#include "backend.h"
#include "fut.h"

FUTURES_API int luaopen_futures_mpi(lua_State *L);

extern const futures_backend *fb;

typedef struct mpis_state {
  MPI_Comm comm;
  int rank, size;
} mpis_state;
extern mpis_state mpis;

/* Message tags on the private communicator.  Rank 0 to a worker rank:
 * CALLS carries the bytes of the process pool's frames (wire.h: HELLO,
 * DEF, INIT, TASK), a stream cut into messages of at most MPIS_CHUNK bytes
 * (a frame may span messages); STOP (empty) ends the session.  A worker
 * rank to rank 0: RESULTS, the same kind of stream of RESULT and FAILED
 * frames; READY (empty) once the initializer ran; BYE (empty) after STOP,
 * its last message of the session.  Each side receives with MPI_ANY_TAG,
 * so one peer's messages are taken in the order they were sent. */
enum { TAG_CALLS = 1, TAG_STOP, TAG_RESULTS, TAG_READY, TAG_BYE };
#define MPIS_CHUNK (1 << 26)

double mpis_now(void);     /* seconds, CLOCK_MONOTONIC */
void mpis_acquire(void);   /* waits until no other thread holds the session */
void mpis_release(void);
/* An executor's session: begun when rank 0 makes it, ended by its driver
 * as it leaves (or by whoever stopped the ranks for it).  MPI is finalized
 * only once every session has ended: a driver pool.c just started may not
 * have taken the session yet when the state closes. */
void mpis_session_begin(void);
void mpis_session_end(void);

/* Polls between MPI probes: spins for the first `spin` seconds since *since
 * went idle, then sleeps a little longer each time, up to `cap`. */
typedef struct mpis_backoff { double since, delay; } mpis_backoff;
void mpis_idle(mpis_backoff *b, double spin, double cap);
static inline void mpis_busy(mpis_backoff *b) { b->since = 0; b->delay = 0; }

/* MPI_Improbe from source (or MPI_ANY_SOURCE) with any tag; 1 if a message
 * was matched.  A miss probes once more: Open MPI matches before it makes
 * progress, so what one probe's progress brings in only the next one sees,
 * and a poller that naps between probes would see each message a nap late. */
int mpis_probe(int source, MPI_Message *m, MPI_Status *st);

/* Receives the probed message m (count bytes) onto the end of buf; 0 on OOM. */
int mpis_recv_append(MPI_Message *m, int count, tr_msg *buf);

/* Rank 0: the backend of MPIPoolExecutor (mpidrive.c). */
/* The backend, its class parented to the core's executor class (known
 * only once the core's table is found): made once, then read-only. */
const pool_backend *mpid_backend(const luax_class *executor_class);
typedef struct mpid_data mpid_data;
mpid_data *mpid_new(int nranks, int number);
void mpid_poke(mpid_data *d);                /* new work: wake the driver */
int mpid_nranks(mpid_data *d);              /* the worker ranks it uses */
int mpid_claim_stop(mpid_data *d);          /* 1: the caller must stop the ranks */
/* Stops every worker rank of a session no driver ever started: from the
 * main thread, with the session held. */
void mpid_stop_ranks(void);

/* The other ranks: serves rank 0's calls until STOP (mpiserve.c).  Returns
 * 0, or -1 with a message in err for a malformed stream. */
int mpiw_serve(char *err, size_t errlen);
#endif
