/* Monotonic time and absolute deadlines for every wait in the library. */
#ifndef FUTURES_CLOCK_H
#define FUTURES_CLOCK_H
#include <pthread.h>
#include <time.h>

double clk_now(void);                          /* seconds, CLOCK_MONOTONIC */
struct timespec clk_deadline(double seconds);  /* now + seconds, as a timespec */
struct timespec clk_from(double abs_seconds);  /* absolute monotonic seconds */
void clk_mutex_init(pthread_mutex_t *mu);      /* adaptive: short sections */
#endif
