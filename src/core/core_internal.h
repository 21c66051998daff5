/* Internal declarations shared between the files of src/core (not part of the public API). */
#ifndef MT_CORE_INTERNAL_H
#define MT_CORE_INTERNAL_H

#include "mltrain/core.h"

/* Integer -> float16 / bfloat16 with a single rounding to nearest even (an int64 is not
 * always exact in a double, so going through double could round twice). */
uint16_t mt__i64_to_f16(int64_t v);
uint16_t mt__u64_to_f16(uint64_t v);
uint16_t mt__i64_to_bf16(int64_t v);
uint16_t mt__u64_to_bf16(uint64_t v);

/* In a child process right after fork(), before it logs (log.c): the log's mutex, which another
 * thread of the parent may have held at the fork and which nothing unlocks in the child, made
 * free again (the isolated-child runner, isolate.c). */
void mt__log_reset_after_fork(void);

#endif
