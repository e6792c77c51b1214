/*
 * Philox4x64-10, the counter-based generator behind fastnn's random numbers
 * (fastnn/utils/random.py holds its NumPy twin and the distributions).
 *
 * Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3"
 * (SC 2011). Word i of the stream of key (k0, k1) is element i % 4 of the
 * 10-round Philox bijection of the 256-bit counter (i / 4 + 1, 0, 0, 0). That
 * is the stream of numpy.random.Philox(key=k0 + 2**64 * k1, counter=0), which
 * the tests use as the oracle.
 *
 * Because a word is a pure function of (key, i), any range of the stream can be
 * produced without producing what comes before it, and no state is shared
 * between calls: the Python side only keeps the key and the next index.
 */
#ifndef FNN_PHILOX_H
#define FNN_PHILOX_H

#include <stdint.h>
#include <stddef.h>

#define FNN_PHILOX_M0 0xD2E7470EE14C6C93ULL
#define FNN_PHILOX_M1 0xCA5A826395121157ULL
#define FNN_PHILOX_W0 0x9E3779B97F4A7C15ULL
#define FNN_PHILOX_W1 0xBB67AE8584CAA73BULL

/* High and low halves of the 128-bit product a * b. */
static inline uint64_t fnn_mulhilo64(uint64_t a, uint64_t b, uint64_t *hi) {
#if defined(__SIZEOF_INT128__)
    unsigned __int128 p = (unsigned __int128)a * b;
    *hi = (uint64_t)(p >> 64);
    return (uint64_t)p;
#else
    /* Portable schoolbook product of 32-bit halves (MSVC and others). */
    uint64_t a_lo = (uint32_t)a, a_hi = a >> 32, b_lo = (uint32_t)b, b_hi = b >> 32;
    uint64_t ll = a_lo * b_lo, lh = a_lo * b_hi, hl = a_hi * b_lo, hh = a_hi * b_hi;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return (mid << 32) | (uint32_t)ll;
#endif
}

/* The four words of counter block `block` (the counter is block + 1). */
static inline void fnn_philox4x64_block(uint64_t k0, uint64_t k1, uint64_t block,
                                        uint64_t out[4]) {
    /* Word indices are below 2**64, so block + 1 < 2**62 never carries into c1. */
    uint64_t c0 = block + 1, c1 = 0, c2 = 0, c3 = 0;
    for (int round = 0; round < 10; round++) {
        uint64_t hi0, hi1;
        uint64_t lo0 = fnn_mulhilo64(FNN_PHILOX_M0, c0, &hi0);
        uint64_t lo1 = fnn_mulhilo64(FNN_PHILOX_M1, c2, &hi1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += FNN_PHILOX_W0;
        k1 += FNN_PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Blocks `first` and `first + 1`: two independent chains of multiplies, which
 * the core overlaps (about 10% faster per word than one block at a time). */
static inline void fnn_philox4x64_2blocks(uint64_t k0, uint64_t k1, uint64_t first,
                                          uint64_t out[8]) {
    uint64_t a0 = first + 1, a1 = 0, a2 = 0, a3 = 0, b0 = first + 2, b1 = 0, b2 = 0, b3 = 0;
    for (int round = 0; round < 10; round++) {
        uint64_t ha0, ha1, hb0, hb1;
        uint64_t la0 = fnn_mulhilo64(FNN_PHILOX_M0, a0, &ha0);
        uint64_t la1 = fnn_mulhilo64(FNN_PHILOX_M1, a2, &ha1);
        uint64_t lb0 = fnn_mulhilo64(FNN_PHILOX_M0, b0, &hb0);
        uint64_t lb1 = fnn_mulhilo64(FNN_PHILOX_M1, b2, &hb1);
        a0 = ha1 ^ a1 ^ k0; a1 = la1; a2 = ha0 ^ a3 ^ k1; a3 = la0;
        b0 = hb1 ^ b1 ^ k0; b1 = lb1; b2 = hb0 ^ b3 ^ k1; b3 = lb0;
        k0 += FNN_PHILOX_W0;
        k1 += FNN_PHILOX_W1;
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
    out[4] = b0; out[5] = b1; out[6] = b2; out[7] = b3;
}

/* Words start .. start + n - 1 of the stream of key (k0, k1), each passed through
 * CONVERT into out (the word itself, or a double made from it). */
#define FNN_PHILOX_FILL(OUT_T, CONVERT)                                                   \
    uint64_t block[8];                                                                    \
    size_t done = 0;                                                                      \
    /* up to a block boundary, then two blocks at a time, then the rest */               \
    while (done < n && ((start + done) % 4 != 0 || n - done < 8)) {                       \
        uint64_t i = start + done;                                                        \
        fnn_philox4x64_block(k0, k1, i / 4, block);                                       \
        for (unsigned lane = (unsigned)(i % 4); lane < 4 && done < n; lane++)             \
            out[done++] = (OUT_T)CONVERT(block[lane]);                                    \
    }                                                                                     \
    while (n - done >= 8) {                                                               \
        fnn_philox4x64_2blocks(k0, k1, (start + done) / 4, block);                        \
        for (unsigned lane = 0; lane < 8; lane++) out[done + lane] = (OUT_T)CONVERT(block[lane]); \
        done += 8;                                                                        \
    }                                                                                     \
    while (done < n) {                                                                    \
        fnn_philox4x64_block(k0, k1, (start + done) / 4, block);                          \
        for (unsigned lane = 0; lane < 4 && done < n; lane++)                             \
            out[done++] = (OUT_T)CONVERT(block[lane]);                                    \
    }

#define FNN_PHILOX_WORD(w) (w)
/* (word >> 11) * 2**-53: the top 53 bits as a double in [0, 1), as NumPy's random(). */
#define FNN_PHILOX_DOUBLE(w) ((double)((w) >> 11) * (1.0 / 9007199254740992.0))

/* Words start .. start + n - 1 of the stream of key (k0, k1) into out. */
static inline void fnn_philox_words(uint64_t k0, uint64_t k1, uint64_t start, size_t n,
                                    uint64_t *out) {
    FNN_PHILOX_FILL(uint64_t, FNN_PHILOX_WORD)
}

/* Uniform doubles in [0, 1) from words start .. start + n - 1. */
static inline void fnn_philox_uniform(uint64_t k0, uint64_t k1, uint64_t start, size_t n,
                                      double *out) {
    FNN_PHILOX_FILL(double, FNN_PHILOX_DOUBLE)
}

/*
 * A uniformly shuffled order of 0 .. n-1 into out (Fisher-Yates, last position
 * first), drawing words start, start + 1, ... : step i (from n - 1 down to 1)
 * swaps position i with j = floor(word * (i + 1) / 2**64), the high half of the
 * product. That maps a word to 0..i with a bias below (i + 1) / 2**64, far under
 * anything a shuffle of memory-sized data can show, and uses exactly one word
 * per step, so the NumPy twin can compute every j at once. Uses n - 1 words
 * (none for n < 2).
 */
static inline void fnn_philox_permutation(uint64_t k0, uint64_t k1, uint64_t start,
                                          int64_t n, int64_t *out) {
    uint64_t block[4];
    uint64_t word_index = start;
    for (int64_t i = 0; i < n; i++) out[i] = i;
    fnn_philox4x64_block(k0, k1, word_index / 4, block);
    for (int64_t i = n - 1; i >= 1; i--) {
        if (word_index % 4 == 0 && word_index != start)
            fnn_philox4x64_block(k0, k1, word_index / 4, block);
        uint64_t hi;
        fnn_mulhilo64(block[word_index % 4], (uint64_t)(i + 1), &hi);
        word_index++;
        int64_t tmp = out[i];
        out[i] = out[(int64_t)hi];
        out[(int64_t)hi] = tmp;
    }
}

#endif /* FNN_PHILOX_H */
