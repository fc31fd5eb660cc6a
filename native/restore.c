/*
 * Restore's snapshot decoder (src/backup/restore/native-gunzip.ts loads it; without it the restore
 * uses node:zlib's stream). It is the same zlib Node's own gunzip runs (the one Node links and
 * exports to addons), with the same checks (header, CRC-32 and size of every member), driven
 * differently: the caller hands in its own output buffers and reuses them, where node:zlib's
 * stream allocates a new one per chunk. A 100 MB snapshot then costs no garbage: fresh buffers by
 * the hundred megabytes were most of the restore's garbage collection. The members' CRC-32 is ours
 * (crc.h, carry-less multiplication where the CPU has it): that zlib's own is a table loop, which
 * took more CPU than the inflating itself. zlib is told not to compute it (inflateValidate), and
 * each member's trailer (CRC-32 and size) is checked here, with zlib's words for a mismatch.
 *
 * Several gzip members decode as their concatenation; a zero byte after a member starts padding,
 * which ends the data (the rest is ignored), as node:zlib's gunzip has it. Calls run on the libuv thread pool, one at a time per decoder
 * (the caller waits for each).
 *
 *   createGunzip(digest: 'none' | 'sha256' | 'crc64'): external
 *     digest: also compute that digest of everything decoded, on the thread pool with the
 *       decoding: SHA-256 with OpenSSL's (the one Node links and exports; looked up when the
 *       library loads), CRC-64/GO-ISO with crc.h (carry-less multiplication where the CPU has it).
 *   canHash: boolean — whether that OpenSSL was found (false: createGunzip('sha256') throws).
 *   digest(decoder): Buffer — the digest of everything decoded (once, after the stream ended):
 *     32 bytes of SHA-256, or the CRC-64 as 8 bytes, most significant first.
 *   gunzip(decoder, input: Uint8Array | null, out: Uint8Array, final: boolean,
 *          callback(error: string | null, status: number, produced: number)): undefined
 *     input: the next compressed bytes (null: go on with the previous input); it must stay
 *       untouched until a call answers status 0 (all of it consumed).
 *     status 0: all input consumed, more needed; 1: out is full, call again with null;
 *       2: the stream ended (final).
 *   crc32(data: Uint8Array, value?: number): number — the gzip CRC-32 of data, continuing from
 *     value (as node:zlib's crc32); for tests.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>
#include <node_api.h>
#include <zlib.h>

#include "crc.h"

/*
 * OpenSSL's digest calls, found in the process (Node's own OpenSSL) when the library loads rather
 * than linked: a Node built without them leaves the decoder working, without hashing.
 */
typedef struct {
  void *(*ctx_new)(void);
  void (*ctx_free)(void *);
  const void *(*sha256)(void);
  int (*init)(void *, const void *, void *);
  int (*update)(void *, const void *, size_t);
  int (*final)(void *, unsigned char *, unsigned int *);
} Digests;

static Digests digests;
static int can_hash;

static void find_digests(void) {
  digests.ctx_new = (void *(*)(void))dlsym(RTLD_DEFAULT, "EVP_MD_CTX_new");
  digests.ctx_free = (void (*)(void *))dlsym(RTLD_DEFAULT, "EVP_MD_CTX_free");
  digests.sha256 = (const void *(*)(void))dlsym(RTLD_DEFAULT, "EVP_sha256");
  digests.init = (int (*)(void *, const void *, void *))dlsym(RTLD_DEFAULT, "EVP_DigestInit_ex");
  digests.update = (int (*)(void *, const void *, size_t))dlsym(RTLD_DEFAULT, "EVP_DigestUpdate");
  digests.final = (int (*)(void *, unsigned char *, unsigned int *))dlsym(RTLD_DEFAULT, "EVP_DigestFinal_ex");
  can_hash = digests.ctx_new && digests.ctx_free && digests.sha256 && digests.init && digests.update && digests.final;
}

enum { R_NEED_INPUT = 0, R_OUT_FULL = 1, R_END = 2, R_ERROR = -1 };

typedef struct {
  z_stream zs;
  int ready;
  /* The input being consumed (kept alive by `input_ref` until it is all consumed). */
  const uint8_t *in;
  size_t in_len, in_pos;
  napi_ref input_ref;
  /* A member ended: what follows is padding or the next member. */
  int between;
  /* Padding began (a zero byte after a member): the rest of the input is ignored. */
  int padding;
  int members;
  /* The member being decoded: CRC-32 register and size of its output, and its last input bytes
     (when it ends, they are its trailer: CRC-32 and size, little-endian). */
  uint64_t member_crc;
  uint32_t member_size;
  uint8_t tail[8];
  int busy;
  /* The SHA-256 of everything decoded (NULL: not asked for); hash_failed: a digest call failed. */
  void *md;
  int hash_failed;
  /* The CRC-64 register of everything decoded, while crc_on (cleared when the digest is taken). */
  int crc_on;
  uint64_t crc_reg;
  const char *error;
  char message[160];
} Gunzip;

typedef struct {
  napi_async_work work;
  napi_ref callback;
  napi_ref out_ref;
  napi_ref self_ref;
  Gunzip *g;
  uint8_t *out;
  size_t out_len;
  int final;
  int status;
  size_t produced;
} Call;

static void set_error(Gunzip *g, const char *what) {
  snprintf(g->message, sizeof g->message, "%s", what);
  g->error = g->message;
}

/* A member starts: zlib skips its check values (ours are faster), ours start over. */
static int start_member(Gunzip *g) {
  g->member_crc = UINT32_MAX;
  g->member_size = 0;
  memset(g->tail, 0, sizeof g->tail);
  return inflateValidate(&g->zs, 0) == Z_OK;
}

/* Keeps the last 8 of the input bytes consumed so far. */
static void keep_tail(Gunzip *g, const uint8_t *used, size_t n) {
  if (n >= sizeof g->tail) {
    memcpy(g->tail, used + n - sizeof g->tail, sizeof g->tail);
  } else if (n > 0) {
    memmove(g->tail, g->tail + n, sizeof g->tail - n);
    memcpy(g->tail + sizeof g->tail - n, used, n);
  }
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* The member just ended: its trailer against what was decoded. */
static int member_checks_out(Gunzip *g) {
  if (le32(g->tail) != (uint32_t)(g->member_crc ^ UINT32_MAX)) {
    set_error(g, "incorrect data check");
    return 0;
  }
  if (le32(g->tail + 4) != g->member_size) {
    set_error(g, "incorrect length check");
    return 0;
  }
  return 1;
}

static int run(Gunzip *g, uint8_t *out, size_t out_len, int final, size_t *produced) {
  size_t done = 0;
  for (;;) {
    if (g->between) {
      /* After a member, a zero byte starts padding: it and everything after it are ignored. */
      if (g->padding || (g->in_pos < g->in_len && g->in[g->in_pos] == 0)) {
        g->padding = 1;
        g->in_pos = g->in_len;
      }
      if (g->in_pos >= g->in_len) {
        *produced = done;
        return final ? R_END : R_NEED_INPUT;
      }
      if (inflateReset(&g->zs) != Z_OK || !start_member(g)) {
        set_error(g, "could not reset the decoder");
        return R_ERROR;
      }
      g->between = 0;
    }
    if (g->in_pos >= g->in_len && !final) {
      *produced = done;
      return R_NEED_INPUT;
    }
    if (done >= out_len) {
      *produced = done;
      return R_OUT_FULL;
    }
    size_t avail_in = g->in_len - g->in_pos;
    size_t avail_out = out_len - done;
    /* z_stream counts in uInt: feed at most 1 GiB a round. */
    if (avail_in > (1u << 30)) avail_in = 1u << 30;
    if (avail_out > (1u << 30)) avail_out = 1u << 30;
    g->zs.next_in = (Bytef *)(g->in + g->in_pos);
    g->zs.avail_in = (uInt)avail_in;
    g->zs.next_out = out + done;
    g->zs.avail_out = (uInt)avail_out;
    int rc = inflate(&g->zs, Z_NO_FLUSH);
    size_t used_in = avail_in - g->zs.avail_in;
    size_t used_out = avail_out - g->zs.avail_out;
    keep_tail(g, g->in + g->in_pos, used_in);
    if (used_out > 0) {
      g->member_crc = crc32_register(g->member_crc, out + done, used_out);
      g->member_size += (uint32_t)used_out;
    }
    g->in_pos += used_in;
    done += used_out;
    if (rc == Z_STREAM_END) {
      if (!member_checks_out(g)) return R_ERROR;
      g->members++;
      g->between = 1;
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR) {
      /* No progress possible: out of input (or of output, handled above). */
      if (g->zs.avail_out == 0) continue;
      if (final && g->in_pos >= g->in_len) {
        set_error(g, "unexpected end of file");
        return R_ERROR;
      }
      *produced = done;
      return R_NEED_INPUT;
    }
    set_error(g, g->zs.msg != NULL ? g->zs.msg : rc == Z_DATA_ERROR ? "invalid data" : rc == Z_MEM_ERROR ? "out of memory" : "zlib error");
    return R_ERROR;
  }
}

static void finalize_gunzip(napi_env env, void *data, void *hint) {
  (void)hint;
  Gunzip *g = data;
  if (g->input_ref != NULL) napi_delete_reference(env, g->input_ref);
  if (g->ready) inflateEnd(&g->zs);
  if (g->md != NULL) digests.ctx_free(g->md);
  free(g);
}

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value create_gunzip(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char kind[8] = "";
  size_t kind_len = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], kind, sizeof kind, &kind_len) != napi_ok ||
      (strcmp(kind, "none") != 0 && strcmp(kind, "sha256") != 0 && strcmp(kind, "crc64") != 0)) {
    return throw_type_error(env, "createGunzip(digest: 'none' | 'sha256' | 'crc64')");
  }
  bool hash = strcmp(kind, "sha256") == 0;
  if (hash && !can_hash) return throw_type_error(env, "createGunzip: no SHA-256 in this process (canHash is false)");
  Gunzip *g = calloc(1, sizeof(Gunzip));
  if (g == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (strcmp(kind, "crc64") == 0) {
    g->crc_on = 1;
    g->crc_reg = UINT64_MAX;
  }
  if (hash) {
    g->md = digests.ctx_new();
    if (g->md == NULL || digests.init(g->md, digests.sha256(), NULL) != 1) {
      if (g->md != NULL) digests.ctx_free(g->md);
      free(g);
      napi_throw_error(env, NULL, "could not start a SHA-256 digest");
      return NULL;
    }
  }
  /* 16 + 15: a gzip wrapper (only), the largest window. */
  if (inflateInit2(&g->zs, 16 + 15) != Z_OK) {
    if (g->md != NULL) digests.ctx_free(g->md);
    free(g);
    napi_throw_error(env, NULL, "could not start a zlib decoder");
    return NULL;
  }
  g->ready = 1;
  if (!start_member(g)) {
    inflateEnd(&g->zs);
    if (g->md != NULL) digests.ctx_free(g->md);
    free(g);
    napi_throw_error(env, NULL, "could not start a zlib decoder");
    return NULL;
  }
  napi_value external;
  if (napi_create_external(env, g, finalize_gunzip, NULL, &external) != napi_ok) {
    inflateEnd(&g->zs);
    if (g->md != NULL) digests.ctx_free(g->md);
    free(g);
    return NULL;
  }
  return external;
}

static void execute(napi_env env, void *data) {
  (void)env;
  Call *c = data;
  c->status = run(c->g, c->out, c->out_len, c->final, &c->produced);
  if (c->g->md != NULL && c->produced > 0 && digests.update(c->g->md, c->out, c->produced) != 1) c->g->hash_failed = 1;
  if (c->g->crc_on && c->produced > 0) c->g->crc_reg = crc_register(c->g->crc_reg, c->out, c->produced);
}

static void complete(napi_env env, napi_status status, void *data) {
  Call *c = data;
  Gunzip *g = c->g;
  napi_value cb, undefined, argv[3];
  napi_get_reference_value(env, c->callback, &cb);
  napi_get_undefined(env, &undefined);
  if (status != napi_ok) {
    napi_create_string_utf8(env, "the gunzip call was cancelled", NAPI_AUTO_LENGTH, &argv[0]);
    c->status = R_ERROR;
  } else if (c->status == R_ERROR) {
    napi_create_string_utf8(env, g->error != NULL ? g->error : "invalid data", NAPI_AUTO_LENGTH, &argv[0]);
  } else {
    napi_get_null(env, &argv[0]);
  }
  /* The input is no longer needed once it is all consumed (or the stream failed). */
  if (g->input_ref != NULL && (c->status != R_OUT_FULL)) {
    napi_delete_reference(env, g->input_ref);
    g->input_ref = NULL;
    g->in = NULL;
    g->in_len = g->in_pos = 0;
  }
  g->busy = 0;
  napi_create_int32(env, c->status, &argv[1]);
  napi_create_double(env, (double)c->produced, &argv[2]);
  napi_delete_reference(env, c->callback);
  napi_delete_reference(env, c->out_ref);
  napi_delete_reference(env, c->self_ref);
  napi_delete_async_work(env, c->work);
  free(c);
  napi_value result;
  napi_call_function(env, undefined, cb, 3, argv, &result);
}

static int bytes_of(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &offset) != napi_ok || type != napi_uint8_array) return 0;
  *data = p;
  return 1;
}

/*
 * A call's `n` arguments into `argv`, the first a decoder with no call of it running; NULL with a
 * TypeError thrown otherwise (`fn` names the function, `usage` its arguments).
 */
static Gunzip *decoder_call(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *fn, const char *usage) {
  Gunzip *g;
  char message[96];
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    snprintf(message, sizeof message, "%s(%s)", fn, usage);
    throw_type_error(env, message);
    return NULL;
  }
  if (napi_get_value_external(env, argv[0], (void **)&g) != napi_ok || g == NULL) {
    snprintf(message, sizeof message, "%s: not a decoder", fn);
    throw_type_error(env, message);
    return NULL;
  }
  if (g->busy) {
    snprintf(message, sizeof message, "%s: a gunzip call has not answered yet", fn);
    throw_type_error(env, message);
    return NULL;
  }
  return g;
}

static napi_value gunzip_fn(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  Gunzip *g = decoder_call(env, info, 5, argv, "gunzip", "decoder, input, out, final, callback");
  if (g == NULL) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  uint8_t *input = NULL;
  size_t input_len = 0;
  int has_input = t != napi_null && t != napi_undefined;
  if (has_input && !bytes_of(env, argv[1], &input, &input_len)) return throw_type_error(env, "gunzip: input must be a Uint8Array or null");
  if (has_input && g->in_pos < g->in_len) return throw_type_error(env, "gunzip: the previous input is not consumed yet");
  uint8_t *out;
  size_t out_len;
  if (!bytes_of(env, argv[2], &out, &out_len) || out_len == 0) return throw_type_error(env, "gunzip: out must be a non-empty Uint8Array");
  bool final;
  if (napi_get_value_bool(env, argv[3], &final) != napi_ok) return throw_type_error(env, "gunzip: final must be a boolean");
  napi_typeof(env, argv[4], &t);
  if (t != napi_function) return throw_type_error(env, "gunzip: callback must be a function");
  Call *c = calloc(1, sizeof(Call));
  if (c == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (has_input) {
    if (g->input_ref != NULL) napi_delete_reference(env, g->input_ref);
    napi_create_reference(env, argv[1], 1, &g->input_ref);
    g->in = input;
    g->in_len = input_len;
    g->in_pos = 0;
  }
  c->g = g;
  c->out = out;
  c->out_len = out_len;
  c->final = final;
  napi_create_reference(env, argv[4], 1, &c->callback);
  napi_create_reference(env, argv[2], 1, &c->out_ref);
  napi_create_reference(env, argv[0], 1, &c->self_ref);
  napi_value name;
  napi_create_string_utf8(env, "libsqlctl:gunzip", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, c, &c->work) != napi_ok || napi_queue_async_work(env, c->work) != napi_ok) {
    napi_throw_error(env, NULL, "gunzip: could not queue the work");
    return NULL;
  }
  g->busy = 1;
  return NULL;
}

static napi_value digest_fn(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  Gunzip *g = decoder_call(env, info, 1, argv, "digest", "decoder");
  if (g == NULL) return NULL;
  napi_value result;
  void *data;
  if (g->crc_on) {
    uint64_t crc = g->crc_reg ^ UINT64_MAX;
    unsigned char be[8];
    for (int i = 0; i < 8; i++) be[i] = (unsigned char)(crc >> (56 - 8 * i));
    g->crc_on = 0;
    if (napi_create_buffer_copy(env, sizeof be, be, &data, &result) != napi_ok) return NULL;
    return result;
  }
  if (g->md == NULL) return throw_type_error(env, "digest: the decoder was not created to hash, or its digest was taken");
  unsigned char md[64];
  unsigned int len = 0;
  int ok = !g->hash_failed && digests.final(g->md, md, &len) == 1 && len == 32;
  digests.ctx_free(g->md);
  g->md = NULL;
  if (!ok) {
    napi_throw_error(env, NULL, "digest: the SHA-256 computation failed");
    return NULL;
  }
  if (napi_create_buffer_copy(env, len, md, &data, &result) != napi_ok) return NULL;
  return result;
}

static napi_value crc32_fn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint8_t *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !bytes_of(env, argv[0], &data, &len)) {
    return throw_type_error(env, "crc32(data: Uint8Array, value?: number)");
  }
  uint32_t value = 0;
  napi_valuetype t = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &t);
  if (t != napi_undefined && napi_get_value_uint32(env, argv[1], &value) != napi_ok) return throw_type_error(env, "crc32: value must be a number");
  uint32_t crc = (uint32_t)(crc32_register(value ^ UINT32_MAX, data, len) ^ UINT32_MAX);
  napi_value result;
  napi_create_uint32(env, crc, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  find_digests();
  crc_init();
  napi_value has_hash;
  napi_get_boolean(env, can_hash, &has_hash);
  napi_property_descriptor props[] = {
      {"createGunzip", NULL, create_gunzip, NULL, NULL, NULL, napi_default, NULL},
      {"gunzip", NULL, gunzip_fn, NULL, NULL, NULL, napi_default, NULL},
      {"digest", NULL, digest_fn, NULL, NULL, NULL, napi_default, NULL},
      {"crc32", NULL, crc32_fn, NULL, NULL, NULL, napi_default, NULL},
      {"canHash", NULL, NULL, NULL, NULL, has_hash, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
