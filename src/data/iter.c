/* Seeded, resumable iteration over a dataset: which rows make batch b of epoch e.
 *
 * Every answer is a pure function of (mode, seed, epoch, batch) and the sizes, computed from
 * Philox4x32-10 counters, so a run resumed at (epoch, batch) sees the batches it would have
 * seen, and ranks of a data-parallel job agree on every global batch without talking.
 *   sequential          rows in order; batch b takes positions [lb*bs, min(n, (lb+1)*bs)) with
 *                       lb = b mod ceil(n/bs) (more batches than one pass start over)
 *   shuffled_sequential the same positions in a permutation of [0, n) drawn fresh for every
 *                       epoch: Fisher-Yates from n-1 down to 1, position i swapped with
 *                       floor(r_i * (i+1) / 2^64), r_i a 64-bit Philox draw keyed by the seed
 *                       with counter (i/2, ., epoch, tag); cached for the last epoch asked
 *   random_slice        batch_size consecutive rows from a start drawn in [0, n - bs]
 *   random_uniform      batch_size rows drawn uniformly with replacement
 * Counters: word 1 = batch, word 2 = epoch (low 32 bits), word 3 = a per-mode tag mixed with
 * the epoch's high bits, word 0 = draw index, so no two (mode, epoch, batch, draw) share one. */
#include <string.h>

#include "data_impl.h"

static const char *const g_mode_names[MT_ITER_MODE_COUNT] = {
    [MT_ITER_SEQUENTIAL] = "sequential",
    [MT_ITER_SHUFFLED_SEQUENTIAL] = "shuffled_sequential",
    [MT_ITER_RANDOM_SLICE] = "random_slice",
    [MT_ITER_RANDOM_UNIFORM] = "random_uniform",
};

#define TAG_PERM 0x50455231u  /* "PER1" */
#define TAG_SLICE 0x534C4331u /* "SLC1" */
#define TAG_UNIF 0x554E4931u  /* "UNI1" */

const char *mt_iter_mode_name(mt_iter_mode m)
{
    return (unsigned)m < MT_ITER_MODE_COUNT ? g_mode_names[m] : "invalid";
}

mt_status mt_iter_mode_from_name(mt_iter_mode *out, const char *name)
{
    if (!out || !name) return mt_err_set(MT_ERR_INVALID, "iter_mode_from_name: NULL argument");
    for (int i = 0; i < MT_ITER_MODE_COUNT; i++)
        if (strcmp(name, g_mode_names[i]) == 0) {
            *out = (mt_iter_mode)i;
            return MT_OK;
        }
    return mt_err_set(MT_ERR_INVALID,
                      "unknown iteration mode '%s' (one of sequential, "
                      "shuffled_sequential, random_slice, random_uniform)",
                      name);
}

mt_status mt_data_iter_init(mt_data_iter *it, const mt_dataset *d, mt_iter_mode mode,
                            int64_t batch_size, int64_t num_batches, uint64_t seed)
{
    if (!it || !d) return mt_err_set(MT_ERR_INVALID, "data_iter_init: NULL argument");
    memset(it, 0, sizeof *it);
    it->epoch = -1;
    if ((unsigned)mode >= MT_ITER_MODE_COUNT)
        return mt_err_set(MT_ERR_INVALID, "data_iter_init: invalid mode %d", (int)mode);
    if (batch_size < 1)
        return mt_err_set(MT_ERR_INVALID, "data_iter_init '%s': batch_size must be >= 1, got %lld",
                          d->name, (long long)batch_size);
    if (num_batches < 0)
        return mt_err_set(MT_ERR_INVALID,
                          "data_iter_init '%s': num_batches must be >= 0, got "
                          "%lld",
                          d->name, (long long)num_batches);
    if (d->n < 1)
        return mt_err_set(MT_ERR_INVALID, "data_iter_init '%s': the dataset has no examples",
                          d->name);
    if (mode == MT_ITER_RANDOM_SLICE && batch_size > d->n)
        return mt_err_set(MT_ERR_INVALID,
                          "data_iter_init '%s': random_slice batches of %lld "
                          "rows do not fit in %lld examples",
                          d->name, (long long)batch_size, (long long)d->n);
    it->mode = mode;
    it->n = d->n;
    it->batch_size = batch_size;
    it->n_batches = num_batches ? num_batches : (d->n + batch_size - 1) / batch_size;
    it->seed = seed;
    return MT_OK;
}

void mt_data_iter_clear(mt_data_iter *it)
{
    if (!it) return;
    mt_free(it->perm);
    it->perm = NULL;
    it->epoch = -1;
}

static uint64_t draw64(uint64_t seed, uint64_t epoch, int64_t b, uint64_t i, uint32_t tag,
                       uint32_t r[4], uint64_t *have)
{
    uint64_t block = i >> 1;
    if (block != *have) {
        const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
        const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)b, (uint32_t)epoch,
                                 tag ^ (uint32_t)(epoch >> 32) * 0x9E3779B9u ^
                                     (uint32_t)((uint64_t)b >> 32) * 0x85EBCA6Bu ^
                                     (uint32_t)(block >> 32) * 0xC2B2AE35u};
        mt_philox4x32(ctr, key, r);
        *have = block;
    }
    int w = (int)(i & 1) * 2;
    return ((uint64_t)r[w] << 32) | r[w + 1];
}

mt_status mt_data_iter_rows(mt_data_iter *it, int64_t epoch, int64_t b, int64_t *rows,
                            int64_t *n_rows)
{
    if (!it || !rows || !n_rows) return mt_err_set(MT_ERR_INVALID, "data_iter_rows: NULL argument");
    if (it->n < 1 || it->batch_size < 1)
        return mt_err_set(MT_ERR_INVALID, "data_iter_rows: iterator not initialised");
    if (epoch < 0 || b < 0 || b >= it->n_batches)
        return mt_err_set(MT_ERR_RANGE,
                          "data_iter_rows: batch %lld of epoch %lld is outside "
                          "[0, %lld) batches",
                          (long long)b, (long long)epoch, (long long)it->n_batches);
    int64_t n = it->n, bs = it->batch_size;
    uint32_t r[4];
    uint64_t have = UINT64_MAX;
    switch (it->mode) {
    case MT_ITER_SEQUENTIAL:
    case MT_ITER_SHUFFLED_SEQUENTIAL: {
        int64_t per = (n + bs - 1) / bs, start = (b % per) * bs;
        int64_t cnt = n - start < bs ? n - start : bs;
        if (it->mode == MT_ITER_SHUFFLED_SEQUENTIAL) {
            if (!it->perm) {
                it->perm = mt_malloc((size_t)n * sizeof(int64_t));
                if (!it->perm)
                    return mt_err_set(MT_ERR_NOMEM, "data_iter_rows: permutation of %lld",
                                      (long long)n);
                it->epoch = -1;
            }
            if (it->epoch != epoch) {
                mt__data_permutation(it->perm, n, it->seed, (uint64_t)epoch, TAG_PERM);
                it->epoch = epoch;
            }
            memcpy(rows, it->perm + start, (size_t)cnt * sizeof(int64_t));
        } else {
            for (int64_t i = 0; i < cnt; i++)
                rows[i] = start + i;
        }
        *n_rows = cnt;
        return MT_OK;
    }
    case MT_ITER_RANDOM_SLICE: {
        uint64_t x = draw64(it->seed, (uint64_t)epoch, b, 0, TAG_SLICE, r, &have);
        int64_t start = (int64_t)mt__mulhi64(x, (uint64_t)(n - bs + 1));
        for (int64_t i = 0; i < bs; i++)
            rows[i] = start + i;
        *n_rows = bs;
        return MT_OK;
    }
    case MT_ITER_RANDOM_UNIFORM:
        for (int64_t i = 0; i < bs; i++) {
            uint64_t x = draw64(it->seed, (uint64_t)epoch, b, (uint64_t)i, TAG_UNIF, r, &have);
            rows[i] = (int64_t)mt__mulhi64(x, (uint64_t)n);
        }
        *n_rows = bs;
        return MT_OK;
    default:
        return mt_err_set(MT_ERR_INVALID, "data_iter_rows: invalid mode %d", (int)it->mode);
    }
}
