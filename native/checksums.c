/*
 * The replication log's rolling checksum in C (src/engine/wal/crc64.ts has the same algorithm in
 * JavaScript and says what it is): CRC-64/GO-ISO, reflected, chained from the previous frame's
 * checksum. The log writer runs it over every captured page, so it is on the commit path. On x86-64
 * processors with carry-less multiplication (PCLMULQDQ, checked at load time) the page is folded 64
 * bytes at a time with it; elsewhere, and for short inputs, slicing-by-8 on 64-bit words runs
 * (about 3.5 µs per 4 KiB page, against 6 µs in JavaScript).
 *
 * SQLite's WAL checksum is here too (the capture verifies every frame it reads back from `-wal`),
 * computed as four independent chains that are combined at the end, and `pread`, the capture's one
 * read per commit without the argument checks of Node's fs.readSync.
 *
 * Node-API functions, updating `state` in place (no allocation per call):
 *   crc64Chain(state: Uint32Array, data: Uint8Array): undefined
 *     state: [high, low] 32-bit halves of the previous checksum; receives the new one.
 *   walChecksum(state: Uint32Array, data: Uint8Array, bigEndian: boolean): undefined
 *   walFrameCheck(state, buf, offset, pageSize, bigEndian, salt1, salt2): boolean
 *   walChainCheck(state, buf, pageSize, bigEndian, count): number   (frames that chain)
 *   pread(fd, buf, offset, length, position): number   (not on Windows)
 *   walCapture(fd, buf, offset, maxFrames, firstRead, position, pageSize, bigEndian, salt1, salt2, io): number
 *     (not on Windows) the capture's read-verify-append of one commit, see below.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#ifndef _WIN32
#include <errno.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#include <node_api.h>

#include "crc.h"

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

/* The data and length of a typed array argument of type `want` with at least `min` elements. */
static bool typed_array(napi_env env, napi_value v, napi_typedarray_type want, size_t min, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  return napi_get_typedarray_info(env, v, &type, length, data, &ab, &offset) == napi_ok && type == want && *length >= min;
}

static napi_value crc64_chain(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) return throw_type_error(env, "crc64Chain(state, data)");

  size_t length;
  void *state_data;
  if (!typed_array(env, argv[0], napi_uint32_array, 2, &state_data, &length)) return throw_type_error(env, "crc64Chain: state must be a Uint32Array of 2");
  void *bytes;
  if (!typed_array(env, argv[1], napi_uint8_array, 0, &bytes, &length)) return throw_type_error(env, "crc64Chain: data must be a Uint8Array");
  uint32_t *state = (uint32_t *)state_data;
  uint64_t prev = ((uint64_t)state[0] << 32) | state[1];
  uint64_t reg = crc_register(reverse64(prev), (const uint8_t *)bytes, length) ^ UINT64_MAX;
  state[0] = (uint32_t)(reg >> 32);
  state[1] = (uint32_t)reg;
  return NULL;
}

/*
 * SQLite's WAL checksum: for each pair of 32-bit words (x0, x1), s0 += x0 + s1; s1 += x1 + s0
 * (mod 2^32). Every step depends on the one before, so a page is cut into four segments whose
 * contributions are computed side by side (four independent chains) and then combined: one step
 * maps the pair v = (s0, s1) to M v + (x0, x0 + x1) with M = [[1, 1], [1, 2]], so a segment of n
 * steps maps v to M^n v + w, w being what the segment gives from (0, 0).
 */
typedef struct {
  uint32_t a, b, c, d; /* [[a, b], [c, d]] */
} mat2;

static mat2 mat2_mul(mat2 x, mat2 y) {
  mat2 r = {x.a * y.a + x.b * y.c, x.a * y.b + x.b * y.d, x.c * y.a + x.d * y.c, x.c * y.b + x.d * y.d};
  return r;
}

/* M^n (mod 2^32). */
static mat2 step_power(size_t n) {
  mat2 r = {1, 0, 0, 1};
  mat2 base = {1, 1, 1, 2};
  for (; n > 0; n >>= 1) {
    if (n & 1) r = mat2_mul(r, base);
    base = mat2_mul(base, base);
  }
  return r;
}

static inline uint32_t load_word(const uint8_t *p, int swap) {
  uint32_t x;
  memcpy(&x, p, 4);
  if (swap) x = (x >> 24) | ((x >> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24);
  return x;
}

static inline __attribute__((always_inline)) void wal_checksum_impl(uint32_t *s, const uint8_t *data, size_t len, int swap) {
  uint32_t s0 = s[0], s1 = s[1];
  size_t steps = len / 8;
  size_t seg = steps / 4;
  size_t done = 0;
  if (seg >= 8) {
    const uint8_t *p0 = data, *p1 = data + seg * 8, *p2 = data + 2 * seg * 8, *p3 = data + 3 * seg * 8;
    uint32_t a0 = 0, b0 = 0, a1 = 0, b1 = 0, a2 = 0, b2 = 0, a3 = 0, b3 = 0;
    for (size_t i = 0; i < seg * 8; i += 8) {
      a0 += load_word(p0 + i, swap) + b0;
      b0 += load_word(p0 + i + 4, swap) + a0;
      a1 += load_word(p1 + i, swap) + b1;
      b1 += load_word(p1 + i + 4, swap) + a1;
      a2 += load_word(p2 + i, swap) + b2;
      b2 += load_word(p2 + i + 4, swap) + a2;
      a3 += load_word(p3 + i, swap) + b3;
      b3 += load_word(p3 + i + 4, swap) + a3;
    }
    mat2 m = step_power(seg);
    uint32_t wa[4] = {a0, a1, a2, a3}, wb[4] = {b0, b1, b2, b3};
    for (int k = 0; k < 4; k++) {
      uint32_t n0 = m.a * s0 + m.b * s1 + wa[k];
      uint32_t n1 = m.c * s0 + m.d * s1 + wb[k];
      s0 = n0;
      s1 = n1;
    }
    done = 4 * seg * 8;
  }
  for (size_t i = done; i + 8 <= len; i += 8) {
    s0 += load_word(data + i, swap) + s1;
    s1 += load_word(data + i + 4, swap) + s0;
  }
  s[0] = s0;
  s[1] = s1;
}

/* The checksum over `len` bytes (a multiple of 8) from the running pair s[0], s[1]; `swap`: the
 * words are in the other byte order than the machine's. */
static void wal_checksum(uint32_t *s, const uint8_t *data, size_t len, int swap) {
  if (swap) wal_checksum_impl(s, data, len, 1);
  else wal_checksum_impl(s, data, len, 0);
}

static int machine_big_endian(void) {
  const uint16_t one = 1;
  uint8_t first;
  memcpy(&first, &one, 1);
  return first == 0;
}

static napi_value wal_checksum_fn(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return throw_type_error(env, "walChecksum(state, data, bigEndian)");
  size_t length;
  void *state_data;
  if (!typed_array(env, argv[0], napi_uint32_array, 2, &state_data, &length)) return throw_type_error(env, "walChecksum: state must be a Uint32Array of 2");
  void *bytes;
  if (!typed_array(env, argv[1], napi_uint8_array, 0, &bytes, &length) || length % 8 != 0) {
    return throw_type_error(env, "walChecksum: data must be a Uint8Array of a multiple of 8 bytes");
  }
  bool big_endian;
  if (napi_get_value_bool(env, argv[2], &big_endian) != napi_ok) return throw_type_error(env, "walChecksum: bigEndian must be a boolean");
  wal_checksum((uint32_t *)state_data, (const uint8_t *)bytes, length, big_endian != machine_big_endian());
  return NULL;
}

static uint32_t load_be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/*
 * The arguments every frame check starts with: `n` arguments into `argv`, the first the running
 * checksum (a Uint32Array of 2), the second the frames (a Uint8Array). False with a TypeError thrown
 * otherwise (`fn` names the function, `usage` its arguments).
 */
static bool frame_check_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *fn, const char *usage, uint32_t **state, const uint8_t **bytes, size_t *length) {
  char message[128];
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    snprintf(message, sizeof message, "%s(%s)", fn, usage);
    throw_type_error(env, message);
    return false;
  }
  void *state_data, *data;
  size_t state_length;
  if (!typed_array(env, argv[0], napi_uint32_array, 2, &state_data, &state_length)) {
    snprintf(message, sizeof message, "%s: state must be a Uint32Array of 2", fn);
    throw_type_error(env, message);
    return false;
  }
  if (!typed_array(env, argv[1], napi_uint8_array, 0, &data, length)) {
    snprintf(message, sizeof message, "%s: buf must be a Uint8Array", fn);
    throw_type_error(env, message);
    return false;
  }
  *state = state_data;
  *bytes = data;
  return true;
}

/* Whether the frame at `frame` chains from `sum` (its first eight header bytes and its page); if so, `sum` becomes its checksum. */
static bool frame_chains(uint32_t *sum, const uint8_t *frame, uint32_t page_size, int swap) {
  uint32_t next[2] = {sum[0], sum[1]};
  wal_checksum(next, frame, 8, swap);
  wal_checksum(next, frame + 24, page_size, swap);
  if (next[0] != load_be32(frame + 16) || next[1] != load_be32(frame + 20)) return false;
  sum[0] = next[0];
  sum[1] = next[1];
  return true;
}

/*
 * walFrameCheck(state, buf, offset, pageSize, bigEndian, salt1, salt2): boolean
 * Verifies the WAL frame at `offset` of `buf` (24-byte header, then the page) against the running
 * checksum in `state` as SQLite does: page number not 0, the salts, and the checksum over the first
 * eight header bytes and the page. When it verifies, `state` receives its checksum.
 */
static napi_value wal_frame_check_fn(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  uint32_t *state;
  const uint8_t *bytes;
  size_t length;
  if (!frame_check_args(env, info, 7, argv, "walFrameCheck", "state, buf, offset, pageSize, bigEndian, salt1, salt2", &state, &bytes, &length)) return NULL;
  double offset_d;
  uint32_t page_size, salt1, salt2;
  bool big_endian;
  if (napi_get_value_double(env, argv[2], &offset_d) != napi_ok || napi_get_value_uint32(env, argv[3], &page_size) != napi_ok ||
      napi_get_value_bool(env, argv[4], &big_endian) != napi_ok || napi_get_value_uint32(env, argv[5], &salt1) != napi_ok ||
      napi_get_value_uint32(env, argv[6], &salt2) != napi_ok) {
    return throw_type_error(env, "walFrameCheck: offset, pageSize, salt1 and salt2 must be numbers, bigEndian a boolean");
  }
  bool ok = false;
  if (offset_d >= 0 && page_size % 8 == 0 && offset_d + 24.0 + (double)page_size <= (double)length) {
    const uint8_t *frame = bytes + (size_t)offset_d;
    if (load_be32(frame) != 0 && load_be32(frame + 8) == salt1 && load_be32(frame + 12) == salt2) {
      ok = frame_chains(state, frame, page_size, big_endian != machine_big_endian());
    }
  }
  napi_value result;
  if (napi_get_boolean(env, ok, &result) != napi_ok) return NULL;
  return result;
}

/*
 * walChainCheck(state, buf, pageSize, bigEndian, count): number
 * The checksum chain of `count` consecutive frames at the start of `buf` (24-byte header, then the
 * page), each chained from the one before as SQLite does, starting from `state`: only the
 * checksums (a restore checks page numbers and salts itself). Returns how many frames chained
 * before the first that does not; `state` receives the checksum of the last one that did.
 */
static napi_value wal_chain_check_fn(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint32_t *state;
  const uint8_t *bytes;
  size_t length;
  if (!frame_check_args(env, info, 5, argv, "walChainCheck", "state, buf, pageSize, bigEndian, count", &state, &bytes, &length)) return NULL;
  uint32_t page_size, count;
  bool big_endian;
  if (napi_get_value_uint32(env, argv[2], &page_size) != napi_ok || napi_get_value_bool(env, argv[3], &big_endian) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &count) != napi_ok) {
    return throw_type_error(env, "walChainCheck: pageSize and count must be numbers, bigEndian a boolean");
  }
  size_t frame_size = (size_t)page_size + 24;
  if (page_size == 0 || page_size % 8 != 0 || (size_t)count > length / frame_size) {
    return throw_type_error(env, "walChainCheck: pageSize must be a multiple of 8, and buf must hold count frames");
  }
  int swap = big_endian != machine_big_endian();
  uint32_t done = 0;
  for (const uint8_t *frame = bytes; done < count && frame_chains(state, frame, page_size, swap); done++) frame += frame_size;
  napi_value result;
  if (napi_create_uint32(env, done, &result) != napi_ok) return NULL;
  return result;
}

#ifndef _WIN32
static const char *errno_code(int err) {
  switch (err) {
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EISDIR: return "EISDIR";
    case EFAULT: return "EFAULT";
    case ENXIO: return "ENXIO";
    case EOVERFLOW: return "EOVERFLOW";
    case ENOMEM: return "ENOMEM";
    default: return "EUNKNOWN";
  }
}

/*
 * pread(fd, buf, offset, length, position): number — reads up to `length` bytes at `position` of
 * the file into buf[offset…], as fs.readSync does (one read, retried when interrupted); throws an
 * Error whose `code` names the errno.
 */
static napi_value pread_fn(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return throw_type_error(env, "pread(fd, buf, offset, length, position)");
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type_error(env, "pread: fd must be a descriptor");
  size_t length;
  void *bytes;
  if (!typed_array(env, argv[1], napi_uint8_array, 0, &bytes, &length)) return throw_type_error(env, "pread: buf must be a Uint8Array");
  double offset, want, position;
  if (napi_get_value_double(env, argv[2], &offset) != napi_ok || napi_get_value_double(env, argv[3], &want) != napi_ok ||
      napi_get_value_double(env, argv[4], &position) != napi_ok) {
    return throw_type_error(env, "pread: offset, length and position must be numbers");
  }
  if (!(offset >= 0 && want >= 0 && position >= 0 && offset + want <= (double)length && position <= 9007199254740991.0)) {
    napi_throw_range_error(env, NULL, "pread: offset, length or position out of range");
    return NULL;
  }
  ssize_t n;
  do {
    n = pread(fd, (uint8_t *)bytes + (size_t)offset, (size_t)want, (off_t)position);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    napi_throw_error(env, errno_code(err), strerror(err));
    return NULL;
  }
  napi_value result;
  if (napi_create_double(env, (double)n, &result) != napi_ok) return NULL;
  return result;
}

static void store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Frames one read asks for at most after the first (as the JavaScript reader). */
#define CAPTURE_CHUNK_FRAMES 64

/*
 * walCapture(fd, buf, offset, maxFrames, firstRead, position, pageSize, bigEndian, salt1, salt2, io): number
 *
 * The capture's read-verify-append in one call: reads WAL frames from `position` of the `-wal`
 * descriptor straight into buf[offset…] (the replication log's write-behind buffer: a WAL frame and a
 * `wallog` frame both are a 24-byte header and the page), verifies each one exactly as the JavaScript
 * reader does (page number not 0, the generation's salts, SQLite's checksum chained from io[0..1]),
 * stopping at the first that fails, and rewrites each verified header in place into the `wallog`
 * layout (frame_no, the CRC-64 chained from io[2..3], page number, size after; little-endian).
 * Only whole transactions count (up to the last frame whose size-after is not 0).
 *
 * Reads are sized as the JavaScript reader's: `firstRead` frames and the header of the next frame,
 * then four times as many, up to 64; a short read is the end of the file, and a next header with
 * page 0 or other salts ends the scan without reading its page. buf must hold maxFrames frames and
 * 24 bytes more (the last read's look at the next header).
 *
 * io (Uint32Array of 8): [0, 1] the WAL checksum before the first frame, [2, 3] the CRC-64 (high,
 * low) of the log's last frame, [4, 5] the first frame_no (low, high). Receives: [0..3] the values
 * after the last frame taken (unchanged when none), [6] 1 when maxFrames frames were read and the
 * next one may be valid (call again with more room), 0 otherwise, [7] the frames of the last
 * transaction taken. Returns the number of frames taken. Throws an Error whose `code` names the
 * errno when the read fails; frames of buf past those taken are garbage then as always.
 */
static napi_value wal_capture_fn(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 11) {
    return throw_type_error(env, "walCapture(fd, buf, offset, maxFrames, firstRead, position, pageSize, bigEndian, salt1, salt2, io)");
  }
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type_error(env, "walCapture: fd must be a descriptor");
  size_t length, io_length;
  void *bytes;
  if (!typed_array(env, argv[1], napi_uint8_array, 0, &bytes, &length)) return throw_type_error(env, "walCapture: buf must be a Uint8Array");
  void *io_data;
  if (!typed_array(env, argv[10], napi_uint32_array, 8, &io_data, &io_length)) return throw_type_error(env, "walCapture: io must be a Uint32Array of 8");
  double offset_d, position_d;
  uint32_t max_frames, first_read, page_size, salt1, salt2;
  bool big_endian;
  if (napi_get_value_double(env, argv[2], &offset_d) != napi_ok || napi_get_value_uint32(env, argv[3], &max_frames) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &first_read) != napi_ok || napi_get_value_double(env, argv[5], &position_d) != napi_ok ||
      napi_get_value_uint32(env, argv[6], &page_size) != napi_ok || napi_get_value_bool(env, argv[7], &big_endian) != napi_ok ||
      napi_get_value_uint32(env, argv[8], &salt1) != napi_ok || napi_get_value_uint32(env, argv[9], &salt2) != napi_ok) {
    return throw_type_error(env, "walCapture: offset, maxFrames, firstRead, position, pageSize, salt1 and salt2 must be numbers, bigEndian a boolean");
  }
  const double frame_size_d = 24.0 + (double)page_size;
  if (!(offset_d >= 0 && position_d >= 0 && position_d <= 9007199254740991.0 && page_size >= 512 && page_size <= 65536 && page_size % 8 == 0 &&
        offset_d + (double)max_frames * frame_size_d + 24.0 <= (double)length)) {
    napi_throw_range_error(env, NULL, "walCapture: offset, maxFrames, position or pageSize out of range");
    return NULL;
  }
  uint32_t *io = (uint32_t *)io_data;
  const size_t frame_size = 24 + (size_t)page_size;
  uint8_t *base = (uint8_t *)bytes + (size_t)offset_d;
  const off_t position = (off_t)position_d;
  const int swap = big_endian != machine_big_endian();

  uint32_t s0 = io[0], s1 = io[1];
  uint64_t crc = ((uint64_t)io[2] << 32) | io[3];
  const uint64_t first_no = ((uint64_t)io[5] << 32) | io[4];
  size_t done = 0, taken = 0, last_txn = 0;
  uint32_t taken_s0 = s0, taken_s1 = s1;
  uint64_t taken_crc = crc;
  int more = 0;
  size_t batch = first_read < 1 ? 1 : first_read > CAPTURE_CHUNK_FRAMES ? CAPTURE_CHUNK_FRAMES : first_read;
  for (;;) {
    if (done == max_frames) {
      more = done > 0; /* the last look at the next header found it possibly valid */
      break;
    }
    size_t frames = max_frames - done < batch ? max_frames - done : batch;
    batch = batch * 4 > CAPTURE_CHUNK_FRAMES ? CAPTURE_CHUNK_FRAMES : batch * 4;
    size_t want = frames * frame_size + 24;
    ssize_t got;
    do {
      got = pread(fd, base + done * frame_size, want, position + (off_t)(done * frame_size));
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      int err = errno;
      napi_throw_error(env, errno_code(err), strerror(err));
      return NULL;
    }
    size_t whole = (size_t)got / frame_size;
    if (whole > frames) whole = frames;
    if (whole == 0) break;
    int failed = 0;
    for (size_t i = 0; i < whole; i++) {
      uint8_t *frame = base + done * frame_size;
      uint32_t page_no = load_be32(frame), size_after = load_be32(frame + 4);
      if (page_no == 0 || load_be32(frame + 8) != salt1 || load_be32(frame + 12) != salt2) {
        failed = 1;
        break;
      }
      uint32_t sum[2] = {s0, s1};
      if (!frame_chains(sum, frame, page_size, swap)) {
        failed = 1;
        break;
      }
      s0 = sum[0];
      s1 = sum[1];
      crc = crc_register(reverse64(crc), frame + 24, page_size) ^ UINT64_MAX;
      const uint64_t frame_no = first_no + done;
      store_le32(frame, (uint32_t)frame_no);
      store_le32(frame + 4, (uint32_t)(frame_no >> 32));
      store_le32(frame + 8, (uint32_t)crc);
      store_le32(frame + 12, (uint32_t)(crc >> 32));
      store_le32(frame + 16, page_no);
      store_le32(frame + 20, size_after);
      done++;
      if (size_after != 0) {
        last_txn = done - taken;
        taken = done;
        taken_s0 = s0;
        taken_s1 = s1;
        taken_crc = crc;
      }
    }
    if (failed || (size_t)got < want) break;
    /* The next frame's header: page 0 or other salts end the scan without reading its page. */
    const uint8_t *peek = base + done * frame_size;
    if (load_be32(peek) == 0 || load_be32(peek + 8) != salt1 || load_be32(peek + 12) != salt2) break;
  }
  if (taken > 0) {
    io[0] = taken_s0;
    io[1] = taken_s1;
    io[2] = (uint32_t)(taken_crc >> 32);
    io[3] = (uint32_t)taken_crc;
  }
  io[6] = (uint32_t)more;
  io[7] = (uint32_t)last_txn;
  napi_value result;
  if (napi_create_double(env, (double)taken, &result) != napi_ok) return NULL;
  return result;
}
#endif

static int export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) != napi_ok) return 0;
  return napi_set_named_property(env, exports, name, fn) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
  crc_init();
  if (!export_function(env, exports, "crc64Chain", crc64_chain)) return NULL;
  if (!export_function(env, exports, "walChecksum", wal_checksum_fn)) return NULL;
  if (!export_function(env, exports, "walFrameCheck", wal_frame_check_fn)) return NULL;
  if (!export_function(env, exports, "walChainCheck", wal_chain_check_fn)) return NULL;
#ifndef _WIN32
  if (!export_function(env, exports, "pread", pread_fn)) return NULL;
  if (!export_function(env, exports, "walCapture", wal_capture_fn)) return NULL;
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
