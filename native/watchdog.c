/*
 * libsqlctl's statement watchdog (docs/LIMITS.md, "Runaway statements").
 *
 * One shared library, loaded twice into the server process through the same path, so both loads
 * share this file's static data (the dynamic loader hands back the one copy already mapped):
 *
 *  - as a SQLite loadable extension (better-sqlite3's Database#loadExtension), once into every
 *    client connection: it takes a slot in the table below for that connection and registers the
 *    SQL function libsqlctl_watchdog_slot(), which tells the JavaScript side the slot's number.
 *    The function's destructor, run by SQLite when the connection closes, gives the slot back.
 *  - as a Node-API addon: it exposes the table's cells as an ArrayBuffer and starts a thread that
 *    interrupts (sqlite3_interrupt, safe to call from another thread) the connections whose
 *    statement has been running longer than its limit.
 *
 * Cells, two int32 per slot, written by JavaScript without calling into this library:
 *   [2*i]   state: 0 idle; > 0 a statement is running, tagged with a token that differs from the
 *           previous statement's; FIRED once this thread interrupted that statement.
 *   [2*i+1] the slot's limit in ms (written once when the connection is attached).
 * The thread notes when it first sees a token and interrupts once the same token is still there
 * `limit` ms later, so a statement is stopped between limit and limit + poll interval after it
 * started; JavaScript never reads a clock for it. The thread takes a token away only with a
 * compare-and-swap to FIRED, under the table mutex: JavaScript ends a statement with a
 * compare-and-swap from its token to 0, and when that fails it calls sync(), which returns once
 * the interrupt has been delivered (so a late interrupt cannot fall on the next statement).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <node_api.h>

#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1

#define WATCHDOG_SLOTS 8192
#define STATE_FIRED (-1)
#define EXPORTED __attribute__((visibility("default")))

struct slot {
  sqlite3 *db; /* NULL: the slot is free */
  int32_t seen; /* the token the thread saw last */
  int64_t since_ms; /* when it first saw it */
};

static int32_t cells[2 * WATCHDOG_SLOTS];
static struct slot slots[WATCHDOG_SLOTS];
static int high_water; /* slots [0, high_water) have been used */
static int in_use;
static int64_t fired_total;

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static int wake_ready;
static pthread_t thread;
static int thread_running;
static int stopping;
static int starts; /* start() calls not yet matched by stop() */
static int poll_ms = 50;

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the thread ---- */

static void check_slots(int64_t now) {
  for (int i = 0; i < high_water; i++) {
    struct slot *s = &slots[i];
    if (s->db == NULL) continue;
    int32_t token = __atomic_load_n(&cells[2 * i], __ATOMIC_SEQ_CST);
    if (token <= 0) {
      s->seen = 0;
      continue;
    }
    if (token != s->seen) {
      s->seen = token;
      s->since_ms = now;
      continue;
    }
    int32_t limit = __atomic_load_n(&cells[2 * i + 1], __ATOMIC_RELAXED);
    if (limit <= 0 || now - s->since_ms < limit) continue;
    int32_t expected = token;
    if (__atomic_compare_exchange_n(&cells[2 * i], &expected, STATE_FIRED, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
      sqlite3_interrupt(s->db);
      fired_total++;
    }
  }
}

static void *watch(void *arg) {
  (void)arg;
  pthread_mutex_lock(&table_mu);
  while (!stopping) {
    check_slots(monotonic_ms());
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += poll_ms / 1000;
    until.tv_nsec += (long)(poll_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec += 1;
      until.tv_nsec -= 1000000000L;
    }
    while (!stopping && pthread_cond_timedwait(&wake, &table_mu, &until) != ETIMEDOUT) {
    }
  }
  pthread_mutex_unlock(&table_mu);
  return NULL;
}

/* ---- the SQLite extension ---- */

static void slot_function(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_int(ctx, (int)(intptr_t)sqlite3_user_data(ctx) - 1);
}

/* Called by SQLite when the connection closes (or the function is replaced): frees the slot. */
static void release_slot(void *data) {
  int i = (int)(intptr_t)data - 1;
  pthread_mutex_lock(&table_mu);
  slots[i].db = NULL;
  slots[i].seen = 0;
  __atomic_store_n(&cells[2 * i], 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&cells[2 * i + 1], 0, __ATOMIC_SEQ_CST);
  in_use--;
  pthread_mutex_unlock(&table_mu);
}

EXPORTED int sqlite3_extension_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  int i;
  pthread_mutex_lock(&table_mu);
  for (i = 0; i < WATCHDOG_SLOTS && slots[i].db != NULL; i++) {
  }
  if (i == WATCHDOG_SLOTS) {
    pthread_mutex_unlock(&table_mu);
    *err = sqlite3_mprintf("libsqlctl watchdog: all %d slots are taken", WATCHDOG_SLOTS);
    return SQLITE_FULL;
  }
  slots[i].db = db;
  slots[i].seen = 0;
  __atomic_store_n(&cells[2 * i], 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&cells[2 * i + 1], 0, __ATOMIC_SEQ_CST);
  if (i >= high_water) high_water = i + 1;
  in_use++;
  pthread_mutex_unlock(&table_mu);
  /* On failure SQLite calls the destructor itself, which frees the slot again. */
  int rc = sqlite3_create_function_v2(db, "libsqlctl_watchdog_slot", 0, SQLITE_UTF8 | SQLITE_DIRECTONLY, (void *)(intptr_t)(i + 1), slot_function, NULL, NULL,
                                      release_slot);
  if (rc != SQLITE_OK) *err = sqlite3_mprintf("libsqlctl watchdog: cannot register its SQL function (%d)", rc);
  return rc;
}

/* ---- the Node-API addon ---- */

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t ms = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_int32(env, argv[0], &ms) != napi_ok || ms < 1 || ms > 60000) {
    napi_throw_range_error(env, NULL, "start(pollMs): pollMs must be an integer from 1 to 60000");
    return NULL;
  }
  pthread_mutex_lock(&table_mu);
  if (!wake_ready) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    wake_ready = 1;
  }
  poll_ms = ms;
  starts++;
  int rc = 0;
  if (!thread_running) {
    stopping = 0;
    rc = pthread_create(&thread, NULL, watch, NULL);
    if (rc == 0) thread_running = 1;
    else starts--;
  }
  pthread_mutex_unlock(&table_mu);
  if (rc != 0) napi_throw_error(env, NULL, strerror(rc));
  return NULL;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  pthread_mutex_lock(&table_mu);
  int join = 0;
  if (starts > 0 && --starts == 0 && thread_running) {
    stopping = 1;
    pthread_cond_signal(&wake);
    join = 1;
  }
  pthread_mutex_unlock(&table_mu);
  if (join) {
    pthread_join(thread, NULL);
    pthread_mutex_lock(&table_mu);
    thread_running = 0;
    /* A start() (another worker thread's) came in while this one was stopping the thread. */
    if (starts > 0) {
      stopping = 0;
      if (pthread_create(&thread, NULL, watch, NULL) == 0) thread_running = 1;
    }
    pthread_mutex_unlock(&table_mu);
  }
  return NULL;
}

/* Returns once an interrupt the thread decided on has been delivered (it holds the mutex meanwhile). */
static napi_value js_sync(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  pthread_mutex_lock(&table_mu);
  pthread_mutex_unlock(&table_mu);
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&table_mu);
  int used = in_use;
  double fired = (double)fired_total;
  int running = thread_running;
  pthread_mutex_unlock(&table_mu);
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, used, &v);
  napi_set_named_property(env, out, "slotsInUse", v);
  napi_create_double(env, fired, &v);
  napi_set_named_property(env, out, "interrupts", v);
  napi_get_boolean(env, running != 0, &v);
  napi_set_named_property(env, out, "running", v);
  return out;
}

static void set_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  napi_value buffer, v;
  if (napi_create_external_arraybuffer(env, cells, sizeof cells, NULL, NULL, &buffer) != napi_ok) {
    napi_throw_error(env, NULL, "libsqlctl watchdog: cannot share its table with JavaScript");
    return NULL;
  }
  napi_set_named_property(env, exports, "cells", buffer);
  napi_create_int32(env, WATCHDOG_SLOTS, &v);
  napi_set_named_property(env, exports, "capacity", v);
  napi_create_int32(env, STATE_FIRED, &v);
  napi_set_named_property(env, exports, "fired", v);
  set_function(env, exports, "start", js_start);
  set_function(env, exports, "stop", js_stop);
  set_function(env, exports, "sync", js_sync);
  set_function(env, exports, "stats", js_stats);
  return exports;
}
