/* The core's internals for executors built as modules of their own; see
 * backend.h for why they come as a table and not as a second copy. */
#include "backend.h"
#include "fut.h"
#include "task.h"
#include "transfer.h"

static const futures_backend api = {
  FUTURES_BACKEND_VERSION, sizeof(futures_backend),
  &pool_executor_class, pool_open, pool_push_new, pool_check, pool_config, pool_data, pool_set_data,
  pool_take, pool_break, pool_worker_exit,
  fut_set_running, fut_complete, fut_fail_msg, fut_unref,
  msg_init, msg_free, msg_reserve, msg_add_blob, tr_blob_new, tr_blob_unref,
  tr_put_varint, tr_encode_string,
  wire_begin, wire_end, wire_bytes, wire_str, wire_frame, wire_varint, wire_getstr,
  wire_fits, wire_msg_by_id, wire_msg_inline, wire_read_inline,
  pdefs_send, pdefs_clear, wdefs_find, wdefs_add, wdefs_forget, wdefs_free,
  ws_new, task_run, task_init,
};

FUTURES_API const futures_backend *futures_backend_api(int version) {
  return version <= api.version ? &api : NULL;
}
