/* Fused CPU kernels of float32 encoding: the activation in one pass, and the sparse rows' keys.
 *
 * Plain C, called through ctypes (encoding/native.py), which releases the GIL: Python threads
 * split the rows. Exact by construction (comparisons, a multiply by 1.0f or 0.0f, integer
 * keys): the results are the bits of the torch path in compute.py, on any x86-64 or other CPU.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* In place on rows x d pre-activations: pre * (pre > threshold[j]), and active[i, j] = 1 where
 * kept (0 elsewhere). A ReLU passes a threshold of zeros. The loop vectorizes (no branch). */
void mio_threshold_activate(float *restrict pre, int64_t rows, int64_t d,
                            const float *restrict threshold, uint8_t *restrict active) {
    for (int64_t i = 0; i < rows; i++) {
        float *restrict row = pre + i * d;
        uint8_t *restrict mask = active + i * d;
        for (int64_t j = 0; j < d; j++) {
            const int32_t kept = row[j] > threshold[j];
            row[j] *= (float)kept;
            mask[j] = (uint8_t)kept;
        }
    }
}

/* Calls visit(j) for each nonzero byte mask[j], j ascending (sixteen bytes a test on SSE2). */
#ifdef __SSE2__
#define FOR_EACH_ACTIVE(mask, d, j, visit)                                                        \
    do {                                                                                          \
        int64_t j_ = 0;                                                                           \
        for (; j_ + 16 <= (d); j_ += 16) {                                                        \
            const __m128i bytes_ = _mm_loadu_si128((const __m128i *)((mask) + j_));               \
            uint32_t bits_ =                                                                      \
                ~(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(bytes_, _mm_setzero_si128())) & 0xFFFFu; \
            while (bits_) {                                                                       \
                const int64_t j = j_ + __builtin_ctz(bits_);                                      \
                visit;                                                                            \
                bits_ &= bits_ - 1;                                                               \
            }                                                                                     \
        }                                                                                         \
        for (; j_ < (d); j_++)                                                                    \
            if ((mask)[j_]) {                                                                     \
                const int64_t j = j_;                                                             \
                visit;                                                                            \
            }                                                                                     \
    } while (0)
#else
#define FOR_EACH_ACTIVE(mask, d, j, visit)                                                        \
    do {                                                                                          \
        for (int64_t j = 0; j < (d); j++)                                                         \
            if ((mask)[j]) {                                                                      \
                visit;                                                                            \
            }                                                                                     \
    } while (0)
#endif

/* counts[i] = the nonzero bytes of row i of the rows x d mask. */
void mio_row_counts(const uint8_t *active, int64_t rows, int64_t d, int64_t *counts) {
    for (int64_t i = 0; i < rows; i++) {
        const uint8_t *mask = active + i * d;
        int64_t count = 0;
        FOR_EACH_ACTIVE(mask, d, j, count++);
        counts[i] = count;
    }
}

/* 32 bits that order as the float does, descending, as unsigned; -0.0 ties with 0.0. */
static inline uint64_t descending_order(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if (bits == 0x80000000u) bits = 0;
    return (bits >> 31) ? bits : bits ^ 0x7FFFFFFFu;
}

/* One key per active value, row-major: (row << row_shift) | (order << index_bits) | index, so
 * that an ascending sort orders by row, then value descending, then index. */
void mio_sort_keys(const float *acts, const uint8_t *active, int64_t rows, int64_t d,
                   int64_t index_bits, int64_t row_shift, int64_t *keys) {
    int64_t n = 0;
    for (int64_t i = 0; i < rows; i++) {
        const float *row = acts + i * d;
        const uint8_t *mask = active + i * d;
        const uint64_t high = (uint64_t)i << row_shift;
        FOR_EACH_ACTIVE(mask, d, j,
                        keys[n++] = (int64_t)(high | (descending_order(row[j]) << index_bits) |
                                              (uint64_t)j));
    }
}

/* The sorted keys of rows x d activations back to feature ids and their values (read from the
 * activations: a zero's sign is not in its key). Row i's keys are at offsets[i] - offsets[0]. */
void mio_decode_keys(const int64_t *keys, const float *acts, int64_t rows, int64_t d,
                     int64_t index_bits, const int64_t *offsets, int32_t *ids, float *values) {
    const uint64_t index_mask = ((uint64_t)1 << index_bits) - 1;
    for (int64_t i = 0; i < rows; i++) {
        const float *row = acts + i * d;
        for (int64_t k = offsets[i] - offsets[0]; k < offsets[i + 1] - offsets[0]; k++) {
            const int64_t index = (int64_t)((uint64_t)keys[k] & index_mask);
            ids[k] = (int32_t)index;
            values[k] = row[index];
        }
    }
}

/* The module exists so that setuptools builds and installs the library with the package. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sparse_kernels",
                                    "Fused float32 encoding kernels, called through ctypes.", -1,
                                    NULL};

PyMODINIT_FUNC PyInit__sparse_kernels(void) { return PyModule_Create(&module); }
