/* Shared helper of the fuzz targets that also open their input as a dataset (fuzz_idx.c,
 * fuzz_npy.c): gathering the first and last rows reads a lazy dataset by byte offset. */
#ifndef MLTRAIN_FUZZ_DATASET_H
#define MLTRAIN_FUZZ_DATASET_H

#include "mltrain/data.h"
#include "mltrain/gpuarray.h"

/* Gathers rows 0 and n - 1 of d (when it has rows), then frees d. */
static inline void mt_fuzz_gather_ends(mt_dataset *d)
{
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    if (info.n > 0) {
        int64_t rows[2] = {0, info.n - 1};
        mt_array X = {0}, y = {0};
        if (mt_dataset_gather(d, rows, 2, &X, &y) == MT_OK) {
            mt_array_clear(&X);
            mt_array_clear(&y);
        }
    }
    mt_dataset_free(d);
}

#endif /* MLTRAIN_FUZZ_DATASET_H */
