/* kscalar.h compiled as host C: the per-target primitives it needs (bit casts, clz, infinity,
 * function qualifiers) and the expansion of every block. Included by the code that must compute
 * exactly what generated kernels compute on the host: gpuarray's kernel interpreter and the
 * graph's constant folder. Internal to mltrain; not public API. */
#ifndef MT_KSCALAR_HOST_H
#define MT_KSCALAR_HOST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MT_KFN static inline __attribute__((unused))
static inline uint32_t mt_f2u(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static inline float mt_u2f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}
static inline uint64_t mt_d2u(double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    return u;
}
#define mt_clz64(x) __builtin_clzll(x)
#define MT_INFF INFINITY
#define MT_INF ((double)INFINITY)
#define MT_KS_BLOCK(name, ...) __VA_ARGS__
#include "kscalar.h"
#undef MT_KS_BLOCK

#endif /* MT_KSCALAR_HOST_H */
