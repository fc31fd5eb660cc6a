/*
 * The reflected CRCs our native libraries compute, on one implementation: CRC-64/GO-ISO
 * (polynomial 0x1B; checksums.c for the replication log's rolling checksum, restore.c for the
 * snapshot digest) and the CRC-32 of gzip (polynomial 0x04C11DB7; restore.c checks each gzip
 * member with it). Every function is static: each library has its own copy. crc_init() must run
 * once before use (it builds the tables and looks for carry-less multiplication).
 *
 *   crc_register(reg, data, len): the CRC-64 register after `data`, from `reg` (no final xor).
 *   crc32_register(reg, data, len): the same for CRC-32 (a 32-bit register in a uint64_t).
 */
#ifndef LIBSQLCTL_CRC_H
#define LIBSQLCTL_CRC_H

#include <stddef.h>
#include <stdint.h>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_CLMUL 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/*
 * One reflected CRC of width 32 or 64, its register kept in the low `width` bits of a uint64_t.
 * slice[k][n]: the register after byte n followed by k zero bytes.
 */
typedef struct {
  unsigned width;
  /* The polynomial without its x^width term, bit i standing for x^i. */
  uint64_t poly;
  uint64_t slice[8][256];
#ifdef HAVE_CLMUL
  __m128i fold_by_512; /* lanes: [x^(63+512) mod P, x^(512-1) mod P], reflected */
  __m128i fold_by_128; /* lanes: [x^(63+128) mod P, x^(128-1) mod P], reflected */
#endif
} CrcModel;

static CrcModel crc64_model = {.width = 64, .poly = UINT64_C(0x1B)};
static CrcModel crc32_model = {.width = 32, .poly = UINT64_C(0x04C11DB7)};

static uint64_t reverse64(uint64_t v) {
  v = ((v >> 1) & UINT64_C(0x5555555555555555)) | ((v & UINT64_C(0x5555555555555555)) << 1);
  v = ((v >> 2) & UINT64_C(0x3333333333333333)) | ((v & UINT64_C(0x3333333333333333)) << 2);
  v = ((v >> 4) & UINT64_C(0x0F0F0F0F0F0F0F0F)) | ((v & UINT64_C(0x0F0F0F0F0F0F0F0F)) << 4);
  v = ((v >> 8) & UINT64_C(0x00FF00FF00FF00FF)) | ((v & UINT64_C(0x00FF00FF00FF00FF)) << 8);
  v = ((v >> 16) & UINT64_C(0x0000FFFF0000FFFF)) | ((v & UINT64_C(0x0000FFFF0000FFFF)) << 16);
  return (v >> 32) | (v << 32);
}

static void build_tables(CrcModel *m) {
  /* The reflected polynomial: bit i of `poly` (x^i) moves to bit width - 1 - i. */
  uint64_t reflected = reverse64(m->poly) >> (64 - m->width);
  for (int n = 0; n < 256; n++) {
    uint64_t reg = (uint64_t)n;
    for (int bit = 0; bit < 8; bit++) reg = (reg & 1) ? (reg >> 1) ^ reflected : reg >> 1;
    m->slice[0][n] = reg;
  }
  for (int k = 1; k < 8; k++) {
    for (int n = 0; n < 256; n++) {
      uint64_t prev = m->slice[k - 1][n];
      m->slice[k][n] = (prev >> 8) ^ m->slice[0][prev & 0xff];
    }
  }
}

/* Reads 8 bytes as a little-endian word, whatever the machine's byte order. */
static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint64_t crc_update(const CrcModel *m, uint64_t reg, const uint8_t *data, size_t len) {
  const uint64_t(*s)[256] = m->slice;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t x = reg ^ load_le64(data + i);
    reg = s[7][x & 0xff] ^ s[6][(x >> 8) & 0xff] ^ s[5][(x >> 16) & 0xff] ^ s[4][(x >> 24) & 0xff] ^ s[3][(x >> 32) & 0xff] ^
          s[2][(x >> 40) & 0xff] ^ s[1][(x >> 48) & 0xff] ^ s[0][x >> 56];
  }
  for (; i < len; i++) reg = s[0][(reg ^ data[i]) & 0xff] ^ (reg >> 8);
  return reg;
}

#ifdef HAVE_CLMUL
/*
 * Folding with carry-less multiplication. In the reflected representation bit i of a 64-bit word
 * stands for x^(63 - i), and a 16-byte block loaded little-endian holds x^127 (bit 0 of its first
 * byte) down to x^0: its low half L is the higher-degree half. Moving a block d bits further along
 * the message multiplies it by x^d, so L * x^(64 + d) + H * x^d is what must be added into the block
 * d bits later; both products are taken modulo P with constants x^n mod P. A carry-less product of
 * two reflected 64-bit words comes out one bit short of the 128-bit reflected layout (its bit k
 * stands for x^(126 - k)), so the constants are x^(63 + d) and x^(d - 1). Nothing here depends on
 * the width: a 32-bit CRC's constants are simply of lower degree.
 */
static int have_clmul = 0;

/* x^n mod P, bit i standing for x^i. */
static uint64_t xpow_mod(const CrcModel *m, unsigned n) {
  uint64_t top = UINT64_C(1) << (m->width - 1);
  uint64_t mask = m->width == 64 ? UINT64_MAX : (UINT64_C(1) << m->width) - 1;
  uint64_t r = 1;
  for (unsigned i = 0; i < n; i++) r = ((r << 1) ^ ((r & top) ? m->poly : 0)) & mask;
  return r;
}

static void init_folding(CrcModel *m) {
  m->fold_by_512 = _mm_set_epi64x((long long)reverse64(xpow_mod(m, 512 - 1)), (long long)reverse64(xpow_mod(m, 63 + 512)));
  m->fold_by_128 = _mm_set_epi64x((long long)reverse64(xpow_mod(m, 128 - 1)), (long long)reverse64(xpow_mod(m, 63 + 128)));
}

static void init_clmul(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_PCLMUL) || !(d & bit_SSE2)) return;
  init_folding(&crc64_model);
  init_folding(&crc32_model);
  have_clmul = 1;
}

__attribute__((target("pclmul,sse2"))) static inline __m128i fold(__m128i acc, __m128i k, __m128i next) {
  __m128i lo = _mm_clmulepi64_si128(acc, k, 0x00);
  __m128i hi = _mm_clmulepi64_si128(acc, k, 0x11);
  return _mm_xor_si128(_mm_xor_si128(lo, hi), next);
}

/* The same register as crc_update(m, reg, data, len); len >= 64. */
__attribute__((target("pclmul,sse2"))) static uint64_t crc_update_clmul(const CrcModel *m, uint64_t reg, const uint8_t *data, size_t len) {
  const __m128i *p = (const __m128i *)data;
  /* The register enters as an xor into the first bytes (as in the table loop). */
  __m128i a0 = _mm_xor_si128(_mm_loadu_si128(p), _mm_cvtsi64_si128((long long)reg));
  __m128i a1 = _mm_loadu_si128(p + 1);
  __m128i a2 = _mm_loadu_si128(p + 2);
  __m128i a3 = _mm_loadu_si128(p + 3);
  size_t i = 64;
  for (; i + 64 <= len; i += 64) {
    p = (const __m128i *)(data + i);
    a0 = fold(a0, m->fold_by_512, _mm_loadu_si128(p));
    a1 = fold(a1, m->fold_by_512, _mm_loadu_si128(p + 1));
    a2 = fold(a2, m->fold_by_512, _mm_loadu_si128(p + 2));
    a3 = fold(a3, m->fold_by_512, _mm_loadu_si128(p + 3));
  }
  __m128i acc = fold(a0, m->fold_by_128, a1);
  acc = fold(acc, m->fold_by_128, a2);
  acc = fold(acc, m->fold_by_128, a3);
  for (; i + 16 <= len; i += 16) acc = fold(acc, m->fold_by_128, _mm_loadu_si128((const __m128i *)(data + i)));
  /* What is left is congruent to the message so far: its 16 bytes and the tail through the table. */
  uint8_t rest[16];
  _mm_storeu_si128((__m128i *)rest, acc);
  return crc_update(m, crc_update(m, 0, rest, 16), data + i, len - i);
}
#endif

static uint64_t crc_model_register(const CrcModel *m, uint64_t reg, const uint8_t *data, size_t len) {
#ifdef HAVE_CLMUL
  if (have_clmul && len >= 64) return crc_update_clmul(m, reg, data, len);
#endif
  return crc_update(m, reg, data, len);
}

/* The CRC-64 register after `data`, starting from `reg` (before the final xor). */
static inline uint64_t crc_register(uint64_t reg, const uint8_t *data, size_t len) { return crc_model_register(&crc64_model, reg, data, len); }

/* The CRC-32 register after `data`, starting from `reg` (before the final xor). */
static inline uint64_t crc32_register(uint64_t reg, const uint8_t *data, size_t len) { return crc_model_register(&crc32_model, reg, data, len); }

static void crc_init(void) {
  build_tables(&crc64_model);
  build_tables(&crc32_model);
#ifdef HAVE_CLMUL
  init_clmul();
#endif
}

#endif
