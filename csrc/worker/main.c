/* The process-pool worker program, installed next to futures/core.so.
 * A host with libraries of its own builds the same around
 * futures_worker_main (see futures.h). */
#include "../futures.h"

int main(int argc, char **argv) {
  return futures_worker_main(argc, argv, NULL);
}
