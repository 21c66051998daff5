/* Seeded, resumable iteration over a dataset: which rows make batch b of epoch e.
 *
 * Every answer is a pure function of (mode, seed, epoch, batch) and the sizes, computed from
 * Philox4x32-10 counters, so a run resumed at (epoch, batch) sees the batches it would have
 * seen, and ranks of a data-parallel job agree on every global batch without talking.
 * The sequential family cuts an order of the n rows into blocks of bs positions, block k
 * holding positions [k*bs, min(n, (k+1)*bs)); a pass has P = ceil(n/bs) blocks (P = floor(n/bs)
 * for the even_* modes, which never return the short block) and batch b takes block b mod P
 * (more batches than one pass start over; fewer take the first ones), as Pylearn2 counts them:
 *   sequential          the rows in order
 *   shuffled_sequential the rows in a permutation of [0, n) drawn fresh for every epoch:
 *                       Fisher-Yates from n-1 down to 1, position i swapped with
 *                       floor(r_i * (i+1) / 2^64), r_i a 64-bit Philox draw keyed by the seed
 *                       with counter (i/2, ., epoch, tag); cached for the last epoch asked
 *   batchwise_shuffled_sequential
 *                       the rows in order, batch b taking block q[b mod P] with q the same
 *                       Fisher-Yates permutation (its own tag) of the M = min(P, batches)
 *                       blocks 0..M-1: consecutive rows inside a batch, batches in a fresh
 *                       order every epoch; the short last block lands anywhere in the epoch
 *   even_sequential     sequential without the short block: the last n mod bs rows are
 *                       never visited
 *   even_shuffled_sequential
 *                       shuffled_sequential (its own tag) without the short block: the rows
 *                       at the last n mod bs positions of the epoch's permutation, different
 *                       ones every epoch, are left out
 *   even_batchwise_shuffled_sequential
 *                       batchwise_shuffled_sequential (its own tag) over the floor(n/bs) full
 *                       blocks: the last n mod bs rows are never visited
 * The even_* modes need bs <= n; every batch of theirs has exactly bs rows, so the shards of a
 * data-parallel global batch keep one size. The random modes draw every batch afresh:
 *   random_slice        batch_size consecutive rows from a start drawn in [0, n - bs]
 *   random_uniform      batch_size rows drawn uniformly with replacement
 * Counters: word 1 = batch, word 2 = epoch (low 32 bits), word 3 = a per-mode tag mixed with
 * the epoch's high bits, word 0 = draw index, so no two (mode, epoch, batch, draw) share one. */
#include <stdio.h>
#include <string.h>

#include "data_impl.h"

static const char *const g_mode_names[MT_ITER_MODE_COUNT] = {
    [MT_ITER_SEQUENTIAL] = "sequential",
    [MT_ITER_SHUFFLED_SEQUENTIAL] = "shuffled_sequential",
    [MT_ITER_RANDOM_SLICE] = "random_slice",
    [MT_ITER_RANDOM_UNIFORM] = "random_uniform",
    [MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL] = "batchwise_shuffled_sequential",
    [MT_ITER_EVEN_SEQUENTIAL] = "even_sequential",
    [MT_ITER_EVEN_SHUFFLED_SEQUENTIAL] = "even_shuffled_sequential",
    [MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL] = "even_batchwise_shuffled_sequential",
};

#define TAG_PERM 0x50455231u   /* "PER1": shuffled_sequential's rows */
#define TAG_SLICE 0x534C4331u  /* "SLC1" */
#define TAG_UNIF 0x554E4931u   /* "UNI1" */
#define TAG_BPERM 0x42505231u  /* "BPR1": batchwise_shuffled_sequential's blocks */
#define TAG_EPERM 0x45505231u  /* "EPR1": even_shuffled_sequential's rows */
#define TAG_EBPERM 0x45425031u /* "EBP1": even_batchwise_shuffled_sequential's blocks */

bool mt_iter_mode_is_even(mt_iter_mode m)
{
    return m == MT_ITER_EVEN_SEQUENTIAL || m == MT_ITER_EVEN_SHUFFLED_SEQUENTIAL ||
           m == MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL;
}

static bool mode_shuffles_rows(mt_iter_mode m)
{
    return m == MT_ITER_SHUFFLED_SEQUENTIAL || m == MT_ITER_EVEN_SHUFFLED_SEQUENTIAL;
}

static bool mode_shuffles_batches(mt_iter_mode m)
{
    return m == MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL ||
           m == MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL;
}

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
    char list[320];
    size_t at = 0;
    list[0] = '\0';
    for (int i = 0; i < MT_ITER_MODE_COUNT && at < sizeof list; i++) {
        int k = snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", g_mode_names[i]);
        if (k < 0) break;
        at += (size_t)k;
    }
    return mt_err_set(MT_ERR_INVALID, "unknown iteration mode '%s' (one of %s)", name, list);
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
    if (mt_iter_mode_is_even(mode) && batch_size > d->n)
        return mt_err_set(MT_ERR_INVALID,
                          "data_iter_init '%s': %s gives only full batches, and batches of "
                          "%lld rows do not fit in %lld examples",
                          d->name, g_mode_names[mode], (long long)batch_size, (long long)d->n);
    it->mode = mode;
    it->n = d->n;
    it->batch_size = batch_size;
    int64_t per = mt_iter_mode_is_even(mode) ? d->n / batch_size
                                             : (d->n + batch_size - 1) / batch_size;
    it->n_batches = num_batches ? num_batches : per;
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

/* it->perm holds the permutation of `size` items for `epoch` (drawn when another epoch was
 * held). */
static mt_status cached_permutation(mt_data_iter *it, int64_t size, int64_t epoch, uint32_t tag)
{
    if (!it->perm) {
        it->perm = mt_malloc((size_t)size * sizeof(int64_t));
        if (!it->perm)
            return mt_err_set(MT_ERR_NOMEM, "data_iter_rows: permutation of %lld", (long long)size);
        it->epoch = -1;
    }
    if (it->epoch != epoch) {
        mt__data_permutation(it->perm, size, it->seed, (uint64_t)epoch, tag);
        it->epoch = epoch;
    }
    return MT_OK;
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
    mt_status st;
    switch (it->mode) {
    case MT_ITER_SEQUENTIAL:
    case MT_ITER_SHUFFLED_SEQUENTIAL:
    case MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL:
    case MT_ITER_EVEN_SEQUENTIAL:
    case MT_ITER_EVEN_SHUFFLED_SEQUENTIAL:
    case MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL: {
        /* blocks of one pass (init checked bs <= n for the even modes, so per >= 1) */
        int64_t per = mt_iter_mode_is_even(it->mode) ? n / bs : (n + bs - 1) / bs;
        int64_t block = b % per;
        if (mode_shuffles_batches(it->mode)) {
            int64_t m = it->n_batches < per ? it->n_batches : per;
            uint32_t tag =
                it->mode == MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL ? TAG_BPERM : TAG_EBPERM;
            if ((st = cached_permutation(it, m, epoch, tag))) return st;
            block = it->perm[block];
        }
        int64_t start = block * bs;
        int64_t cnt = n - start < bs ? n - start : bs;
        if (mode_shuffles_rows(it->mode)) {
            uint32_t tag = it->mode == MT_ITER_SHUFFLED_SEQUENTIAL ? TAG_PERM : TAG_EPERM;
            if ((st = cached_permutation(it, n, epoch, tag))) return st;
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
