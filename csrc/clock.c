/* Monotonic time, and the mutexes that the waits on it use.  All condition variables in the library are created with
 * CLOCK_MONOTONIC, so these timespecs are absolute deadlines on that clock. */
#include <errno.h>
#include <math.h>
#include "clock.h"

double clk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct timespec clk_from(double abs_seconds) {
  struct timespec ts;
  if (!(abs_seconds < 1e12)) abs_seconds = 1e12;   /* "never": 30,000 years, and no overflow */
  double whole = floor(abs_seconds);
  ts.tv_sec = (time_t)whole;
  ts.tv_nsec = (long)((abs_seconds - whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
  return ts;
}

struct timespec clk_deadline(double seconds) {
  return clk_from(clk_now() + seconds);
}

void clk_mutex_init(pthread_mutex_t *mu) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(mu, &a);
  pthread_mutexattr_destroy(&a);
}
