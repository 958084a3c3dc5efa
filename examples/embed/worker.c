/* The host's process-pool worker: the futures worker with the host's
 * library in every worker state.  Named by ProcessPoolExecutor{worker = ...}. */
#include "futures.h"
#include "hostlib.h"

static void init(lua_State *worker) { open_host(worker); }

int main(int argc, char **argv) {
  return futures_worker_main(argc, argv, init);
}
