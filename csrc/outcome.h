/* How a finished call's message is to be read: what a worker reports
 * (task.c, procworker.c) and a future keeps (fut.c). */
#ifndef FUTURES_OUTCOME_H
#define FUTURES_OUTCOME_H

enum {
  OUT_VALUES,     /* msg: the returned values */
  OUT_ERROR,      /* msg: the error value; traceback set */
  OUT_TRANSFER,   /* msg: one string, why a value could not cross */
  OUT_BROKEN,     /* msg: one string, why the executor broke */
  OUT_LOCAL,      /* outcome already stored in the Lua object */
  OUT_TIMEOUT     /* the call ran past call_timeout; msg is still the worker's */
};
#endif
