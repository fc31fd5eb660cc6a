/*
 * CRC-64/GO-ISO (polynomial 0x1B, reflected), shared by the two libraries that compute it:
 * checksums.c (the replication log's rolling checksum) and restore.c (the snapshot digest). Every
 * function is static: each library has its own copy. crc64_init() must run once before use (it
 * builds the tables and looks for carry-less multiplication).
 *
 *   crc_register(reg, data, len): the register after `data`, from `reg` (no final xor).
 */
#ifndef LIBSQLCTL_CRC64_H
#define LIBSQLCTL_CRC64_H

#include <stddef.h>
#include <stdint.h>

/* The reflected form of polynomial 0x1B (bit 0 of the polynomial becomes bit 63). */
#define REFLECTED_POLY UINT64_C(0xD800000000000000)

/* slice[k][n]: the register after byte n followed by k zero bytes. */
static uint64_t slice[8][256];

static void build_tables(void) {
  for (int n = 0; n < 256; n++) {
    uint64_t reg = (uint64_t)n;
    for (int bit = 0; bit < 8; bit++) reg = (reg & 1) ? (reg >> 1) ^ REFLECTED_POLY : reg >> 1;
    slice[0][n] = reg;
  }
  for (int k = 1; k < 8; k++) {
    for (int n = 0; n < 256; n++) {
      uint64_t prev = slice[k - 1][n];
      slice[k][n] = (prev >> 8) ^ slice[0][prev & 0xff];
    }
  }
}

static uint64_t reverse64(uint64_t v) {
  v = ((v >> 1) & UINT64_C(0x5555555555555555)) | ((v & UINT64_C(0x5555555555555555)) << 1);
  v = ((v >> 2) & UINT64_C(0x3333333333333333)) | ((v & UINT64_C(0x3333333333333333)) << 2);
  v = ((v >> 4) & UINT64_C(0x0F0F0F0F0F0F0F0F)) | ((v & UINT64_C(0x0F0F0F0F0F0F0F0F)) << 4);
  v = ((v >> 8) & UINT64_C(0x00FF00FF00FF00FF)) | ((v & UINT64_C(0x00FF00FF00FF00FF)) << 8);
  v = ((v >> 16) & UINT64_C(0x0000FFFF0000FFFF)) | ((v & UINT64_C(0x0000FFFF0000FFFF)) << 16);
  return (v >> 32) | (v << 32);
}

/* Reads 8 bytes as a little-endian word, whatever the machine's byte order. */
static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint64_t crc_update(uint64_t reg, const uint8_t *data, size_t len) {
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t x = reg ^ load_le64(data + i);
    reg = slice[7][x & 0xff] ^ slice[6][(x >> 8) & 0xff] ^ slice[5][(x >> 16) & 0xff] ^ slice[4][(x >> 24) & 0xff] ^
          slice[3][(x >> 32) & 0xff] ^ slice[2][(x >> 40) & 0xff] ^ slice[1][(x >> 48) & 0xff] ^ slice[0][x >> 56];
  }
  for (; i < len; i++) reg = slice[0][(reg ^ data[i]) & 0xff] ^ (reg >> 8);
  return reg;
}

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_CLMUL 1
#include <cpuid.h>
#include <immintrin.h>

/*
 * Folding with carry-less multiplication. In the reflected representation bit i of a 64-bit word
 * stands for x^(63 - i), and a 16-byte block loaded little-endian holds x^127 (bit 0 of its first
 * byte) down to x^0: its low half L is the higher-degree half. Moving a block d bits further along
 * the message multiplies it by x^d, so L * x^(64 + d) + H * x^d is what must be added into the block
 * d bits later; both products are taken modulo P with constants x^n mod P. A carry-less product of
 * two reflected 64-bit words comes out one bit short of the 128-bit reflected layout (its bit k
 * stands for x^(126 - k)), so the constants are x^(63 + d) and x^(d - 1).
 */
static __m128i fold_by_512; /* lanes: [x^(63+512) mod P, x^(512-1) mod P] */
static __m128i fold_by_128; /* lanes: [x^(63+128) mod P, x^(128-1) mod P] */
static int have_clmul = 0;

/* x^n mod P (P = x^64 + x^4 + x^3 + x + 1), bit i standing for x^i. */
static uint64_t xpow_mod(unsigned n) {
  uint64_t r = 1;
  for (unsigned i = 0; i < n; i++) r = (r << 1) ^ ((r >> 63) ? UINT64_C(0x1B) : 0);
  return r;
}

static void init_clmul(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_PCLMUL) || !(d & bit_SSE2)) return;
  fold_by_512 = _mm_set_epi64x((long long)reverse64(xpow_mod(512 - 1)), (long long)reverse64(xpow_mod(63 + 512)));
  fold_by_128 = _mm_set_epi64x((long long)reverse64(xpow_mod(128 - 1)), (long long)reverse64(xpow_mod(63 + 128)));
  have_clmul = 1;
}

__attribute__((target("pclmul,sse2"))) static inline __m128i fold(__m128i acc, __m128i k, __m128i next) {
  __m128i lo = _mm_clmulepi64_si128(acc, k, 0x00);
  __m128i hi = _mm_clmulepi64_si128(acc, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

/* The same register as crc_update(reg, data, len); len >= 64. */
__attribute__((target("pclmul,sse2"))) static uint64_t crc_update_clmul(uint64_t reg, const uint8_t *data, size_t len) {
  const __m128i *p = (const __m128i *)data;
  /* The register enters as an xor into the first eight bytes (as in the table loop). */
  __m128i a0 = _mm_xor_si128(_mm_loadu_si128(p), _mm_cvtsi64_si128((long long)reg));
  __m128i a1 = _mm_loadu_si128(p + 1);
  __m128i a2 = _mm_loadu_si128(p + 2);
  __m128i a3 = _mm_loadu_si128(p + 3);
  size_t i = 64;
  for (; i + 64 <= len; i += 64) {
    p = (const __m128i *)(data + i);
    a0 = fold(a0, fold_by_512, _mm_loadu_si128(p));
    a1 = fold(a1, fold_by_512, _mm_loadu_si128(p + 1));
    a2 = fold(a2, fold_by_512, _mm_loadu_si128(p + 2));
    a3 = fold(a3, fold_by_512, _mm_loadu_si128(p + 3));
  }
  __m128i acc = fold(a0, fold_by_128, a1);
  acc = fold(acc, fold_by_128, a2);
  acc = fold(acc, fold_by_128, a3);
  for (; i + 16 <= len; i += 16) acc = fold(acc, fold_by_128, _mm_loadu_si128((const __m128i *)(data + i)));
  /* What is left is congruent to the message so far: its 16 bytes and the tail through the table. */
  uint8_t rest[16];
  _mm_storeu_si128((__m128i *)rest, acc);
  return crc_update(crc_update(0, rest, 16), data + i, len - i);
}
#endif

/* The register after `data`, starting from `reg` (before the final xor). */
static uint64_t crc_register(uint64_t reg, const uint8_t *data, size_t len) {
#ifdef HAVE_CLMUL
  if (have_clmul && len >= 64) return crc_update_clmul(reg, data, len);
#endif
  return crc_update(reg, data, len);
}

static void crc64_init(void) {
  build_tables();
#ifdef HAVE_CLMUL
  init_clmul();
#endif
}

#endif
