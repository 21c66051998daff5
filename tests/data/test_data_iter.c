/* Iteration: mode names (an unknown one lists them all), coverage (every row exactly once per
 * epoch in the sequential modes, the n mod batch_size rows Pylearn2 drops in the even_* modes),
 * the number of batches per epoch as Pylearn2 computes it, the exact batches of small cases,
 * determinism in (mode, seed, epoch, batch) whatever was asked before (a resumed iterator sees
 * the same batches), different orders for different epochs and seeds, wrap-around with
 * num_batches, the random modes' ranges, and argument errors. */
#include <math.h>
#include <string.h>

#include "test_data_util.h"

static mt_dataset *rows_dataset(int64_t n)
{
    float *X = mt_malloc((size_t)n * 2 * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        X[2 * i] = (float)i;
        X[2 * i + 1] = -(float)i;
    }
    mt_dataset *d;
    MT_CHECK_OK(mt_dataset_from_memory(&d, "rows", n, 2, X, NULL, NULL, 0, NULL, 0));
    mt_free(X);
    return d;
}

MT_TEST(iter_mode_names)
{
    for (int m = 0; m < MT_ITER_MODE_COUNT; m++) {
        mt_iter_mode back;
        MT_CHECK_OK(mt_iter_mode_from_name(&back, mt_iter_mode_name((mt_iter_mode)m)));
        MT_CHECK_EQ_INT(back, m);
    }
    MT_CHECK_STR_EQ(mt_iter_mode_name(MT_ITER_SHUFFLED_SEQUENTIAL), "shuffled_sequential");
    static const char *const names[] = {"sequential",
                                        "shuffled_sequential",
                                        "random_slice",
                                        "random_uniform",
                                        "batchwise_shuffled_sequential",
                                        "even_sequential",
                                        "even_shuffled_sequential",
                                        "even_batchwise_shuffled_sequential"};
    MT_CHECK_EQ_INT(MT_ITER_MODE_COUNT, 8);
    for (int i = 0; i < 8; i++) {
        mt_iter_mode back;
        MT_CHECK_OK(mt_iter_mode_from_name(&back, names[i]));
        MT_CHECK_STR_EQ(mt_iter_mode_name(back), names[i]);
    }
    MT_CHECK_STR_EQ(mt_iter_mode_name(MT_ITER_MODE_COUNT), "invalid");
    mt_iter_mode m;
    /* an unknown name: the error names it and lists every mode */
    const char *bad[] = {"shuffled", "even", "Even_Sequential", "even_random_slice", ""};
    for (int k = 0; k < 5; k++) {
        MT_CHECK_ERR(mt_iter_mode_from_name(&m, bad[k]), MT_ERR_INVALID, "unknown iteration mode");
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[k]);
        MT_CHECK(strstr(mt_last_error(), quoted) != NULL);
        for (int i = 0; i < 8; i++)
            MT_CHECK(strstr(mt_last_error(), names[i]) != NULL);
    }
    MT_CHECK_ERR(mt_iter_mode_from_name(&m, NULL), MT_ERR_INVALID, "NULL");
}

/* The whole epoch's order, batch by batch. */
static int64_t epoch_order(mt_data_iter *it, int64_t epoch, int64_t *order, int64_t *sizes)
{
    int64_t at = 0, rows[64], k;
    for (int64_t b = 0; b < it->n_batches; b++) {
        MT_CHECK_OK(mt_data_iter_rows(it, epoch, b, rows, &k));
        if (sizes) sizes[b] = k;
        memcpy(order + at, rows, (size_t)k * sizeof(int64_t));
        at += k;
    }
    return at;
}

MT_TEST(iter_sequential_in_order)
{
    mt_dataset *d = rows_dataset(103);
    mt_data_iter it;
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_SEQUENTIAL, 10, 0, 1));
    MT_CHECK_EQ_INT(it.n_batches, 11);
    int64_t order[200], sizes[11];
    MT_CHECK_EQ_INT(epoch_order(&it, 0, order, sizes), 103);
    for (int64_t i = 0; i < 103; i++)
        MT_CHECK_EQ_INT(order[i], i);
    MT_CHECK_EQ_INT(sizes[10], 3);
    mt_data_iter_clear(&it);
    /* num_batches beyond one pass wraps: batch 11 is batch 0 again */
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_SEQUENTIAL, 10, 13, 1));
    int64_t rows[10], k;
    MT_CHECK_OK(mt_data_iter_rows(&it, 0, 12, rows, &k));
    MT_CHECK_EQ_INT(k, 10);
    MT_CHECK_EQ_INT(rows[0], 10);
    MT_CHECK_ERR(mt_data_iter_rows(&it, 0, 13, rows, &k), MT_ERR_RANGE, "batch 13 of epoch 0");
    MT_CHECK_ERR(mt_data_iter_rows(&it, -1, 0, rows, &k), MT_ERR_RANGE, NULL);
    mt_data_iter_clear(&it);
    mt_dataset_free(d);
}

MT_TEST(iter_shuffled_covers_each_row_once)
{
    const int64_t n = 1001;
    mt_dataset *d = rows_dataset(n);
    mt_data_iter it, it2, other;
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_SHUFFLED_SEQUENTIAL, 64, 0, 42));
    MT_CHECK_OK(mt_data_iter_init(&it2, d, MT_ITER_SHUFFLED_SEQUENTIAL, 64, 0, 42));
    MT_CHECK_OK(mt_data_iter_init(&other, d, MT_ITER_SHUFFLED_SEQUENTIAL, 64, 0, 43));
    MT_CHECK_EQ_INT(it.n_batches, 16);
    int64_t *orders[4], sizes[16];
    for (int e = 0; e < 4; e++) {
        orders[e] = mt_malloc((size_t)n * sizeof(int64_t));
        MT_CHECK_EQ_INT(epoch_order(&it, e, orders[e], sizes), n);
        MT_CHECK_EQ_INT(sizes[15], n - 15 * 64);
        /* each row exactly once */
        int8_t *seen = mt_calloc((size_t)n, 1);
        for (int64_t i = 0; i < n; i++) {
            MT_CHECK(orders[e][i] >= 0 && orders[e][i] < n);
            MT_CHECK(!seen[orders[e][i]]);
            seen[orders[e][i]] = 1;
        }
        mt_free(seen);
        /* not the identity, and not the previous epoch's order */
        int64_t same = 0;
        for (int64_t i = 0; i < n; i++)
            same += orders[e][i] == i;
        MT_CHECK(same < n / 10);
        if (e) MT_CHECK(memcmp(orders[e], orders[e - 1], (size_t)n * 8) != 0);
    }
    /* a fresh iterator asked out of order (epoch 2 batch 7 first) agrees */
    int64_t rows[64], k;
    MT_CHECK_OK(mt_data_iter_rows(&it2, 2, 7, rows, &k));
    MT_CHECK_EQ_INT(k, 64);
    MT_CHECK(memcmp(rows, orders[2] + 7 * 64, 64 * 8) == 0);
    MT_CHECK_OK(mt_data_iter_rows(&it2, 0, 15, rows, &k));
    MT_CHECK(memcmp(rows, orders[0] + 15 * 64, (size_t)k * 8) == 0);
    MT_CHECK_OK(mt_data_iter_rows(&it2, 2, 0, rows, &k));
    MT_CHECK(memcmp(rows, orders[2], 64 * 8) == 0);
    /* another seed, another order */
    int64_t *o2 = mt_malloc((size_t)n * sizeof(int64_t));
    epoch_order(&other, 0, o2, NULL);
    MT_CHECK(memcmp(o2, orders[0], (size_t)n * 8) != 0);
    /* the first position is spread over all rows (a crude check of the draws) */
    int64_t firsts[200], lows = 0;
    for (int e = 0; e < 200; e++) {
        MT_CHECK_OK(mt_data_iter_rows(&other, e, 0, rows, &k));
        firsts[e] = rows[0];
        lows += rows[0] < n / 2;
    }
    MT_CHECK(lows > 70 && lows < 130);
    (void)firsts;
    for (int e = 0; e < 4; e++)
        mt_free(orders[e]);
    mt_free(o2);
    mt_data_iter_clear(&it);
    mt_data_iter_clear(&it2);
    mt_data_iter_clear(&other);
    mt_dataset_free(d);
}

MT_TEST(iter_random_modes)
{
    const int64_t n = 50;
    mt_dataset *d = rows_dataset(n);
    mt_data_iter it;
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_RANDOM_SLICE, 8, 20, 5));
    int64_t rows[64], again[64], k;
    int64_t starts_differ = 0, prev = -1;
    for (int64_t b = 0; b < 20; b++) {
        MT_CHECK_OK(mt_data_iter_rows(&it, 3, b, rows, &k));
        MT_CHECK_EQ_INT(k, 8);
        MT_CHECK(rows[0] >= 0 && rows[0] <= n - 8);
        for (int i = 1; i < 8; i++)
            MT_CHECK_EQ_INT(rows[i], rows[0] + i);
        starts_differ += rows[0] != prev;
        prev = rows[0];
        MT_CHECK_OK(mt_data_iter_rows(&it, 3, b, again, &k));
        MT_CHECK(memcmp(rows, again, 8 * 8) == 0);
    }
    MT_CHECK(starts_differ > 10);
    mt_data_iter_clear(&it);
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_RANDOM_UNIFORM, 64, 0, 5));
    MT_CHECK_EQ_INT(it.n_batches, 1);
    int64_t hist[50] = {0};
    for (int64_t e = 0; e < 100; e++) {
        MT_CHECK_OK(mt_data_iter_rows(&it, e, 0, rows, &k));
        MT_CHECK_EQ_INT(k, 64);
        for (int i = 0; i < 64; i++) {
            MT_CHECK(rows[i] >= 0 && rows[i] < n);
            hist[rows[i]]++;
        }
    }
    /* 6400 draws over 50 rows: every count near 128 */
    for (int i = 0; i < 50; i++)
        MT_CHECK(hist[i] > 70 && hist[i] < 190);
    MT_CHECK_OK(mt_data_iter_rows(&it, 7, 0, rows, &k));
    MT_CHECK_OK(mt_data_iter_rows(&it, 8, 0, again, &k));
    MT_CHECK(memcmp(rows, again, 64 * 8) != 0);
    mt_data_iter_clear(&it);
    MT_CHECK_ERR(mt_data_iter_init(&it, d, MT_ITER_RANDOM_SLICE, 51, 0, 1), MT_ERR_INVALID,
                 "do not fit in 50 examples");
    mt_dataset_free(d);
}

MT_TEST(iter_argument_errors)
{
    mt_dataset *d = rows_dataset(5), *empty;
    mt_data_iter it;
    MT_CHECK_ERR(mt_data_iter_init(&it, d, MT_ITER_SEQUENTIAL, 0, 0, 1), MT_ERR_INVALID,
                 "batch_size must be >= 1");
    MT_CHECK_ERR(mt_data_iter_init(&it, d, MT_ITER_SEQUENTIAL, 2, -1, 1), MT_ERR_INVALID,
                 "num_batches");
    MT_CHECK_ERR(mt_data_iter_init(&it, d, MT_ITER_MODE_COUNT, 2, 0, 1), MT_ERR_INVALID, "mode");
    MT_CHECK_OK(mt_dataset_slice(&empty, d, 0, 0));
    MT_CHECK_ERR(mt_data_iter_init(&it, empty, MT_ITER_SEQUENTIAL, 2, 0, 1), MT_ERR_INVALID,
                 "no examples");
    /* batch larger than the dataset: one short batch */
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_SHUFFLED_SEQUENTIAL, 100, 0, 1));
    int64_t rows[100], k;
    MT_CHECK_OK(mt_data_iter_rows(&it, 0, 0, rows, &k));
    MT_CHECK_EQ_INT(k, 5);
    mt_data_iter_clear(&it);
    mt_data_iter_clear(&it);
    mt_dataset_free(empty);
    mt_dataset_free(d);
}

/* ---------------------------------------------------------------- the Pylearn2 modes added
 * later: batchwise_shuffled_sequential and the even_* modes */

static const mt_iter_mode g_seq_family[] = {
    MT_ITER_SEQUENTIAL,
    MT_ITER_SHUFFLED_SEQUENTIAL,
    MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL,
    MT_ITER_EVEN_SEQUENTIAL,
    MT_ITER_EVEN_SHUFFLED_SEQUENTIAL,
    MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL,
};
#define N_SEQ_FAMILY 6
#define N_NEW_MODES 4 /* the last four of g_seq_family */

static bool even_mode(mt_iter_mode m)
{
    return m == MT_ITER_EVEN_SEQUENTIAL || m == MT_ITER_EVEN_SHUFFLED_SEQUENTIAL ||
           m == MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL;
}

MT_TEST(iter_batches_per_epoch_as_pylearn2)
{
    /* Pylearn2: num_batches = ceil(dataset_size / batch_size); the even_* modes (ForcedEven)
     * int(dataset_size / batch_size). random_* have no default there; here ceil. */
    const int64_t cases[][2] = {{10, 3}, {9, 3},    {10, 4}, {10, 10}, {1, 1},
                                {7, 1},  {103, 10}, {11, 5}, {100, 7}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = cases[c][0], bs = cases[c][1];
        mt_dataset *d = rows_dataset(n);
        for (int m = 0; m < MT_ITER_MODE_COUNT; m++) {
            mt_data_iter it;
            MT_CHECK_OK(mt_data_iter_init(&it, d, (mt_iter_mode)m, bs, 0, 3));
            int64_t want = even_mode((mt_iter_mode)m) ? (int64_t)((double)n / (double)bs)
                                                      : (int64_t)ceil((double)n / (double)bs);
            if (it.n_batches != want)
                mt_test_fail(__FILE__, __LINE__,
                             "%s, n %lld, batch_size %lld: %lld batches, "
                             "want %lld",
                             mt_iter_mode_name((mt_iter_mode)m), (long long)n, (long long)bs,
                             (long long)it.n_batches, (long long)want);
            /* rows per epoch: all of them, or the full batches only */
            int64_t total = 0, rows[16], k;
            for (int64_t b = 0; b < it.n_batches; b++) {
                MT_CHECK_OK(mt_data_iter_rows(&it, 1, b, rows, &k));
                if (even_mode((mt_iter_mode)m) || m == MT_ITER_RANDOM_SLICE ||
                    m == MT_ITER_RANDOM_UNIFORM)
                    MT_CHECK_EQ_INT(k, bs);
                total += k;
            }
            if (m != MT_ITER_RANDOM_SLICE && m != MT_ITER_RANDOM_UNIFORM)
                MT_CHECK_EQ_INT(total, even_mode((mt_iter_mode)m) ? n / bs * bs : n);
            mt_data_iter_clear(&it);
        }
        mt_dataset_free(d);
    }
}

/* Batch b is exactly the block [k*bs, min(n, (k+1)*bs)) for some k: returns k, or -1. */
static int64_t which_block(const int64_t *rows, int64_t k, int64_t n, int64_t bs)
{
    if (k < 1 || rows[0] % bs != 0) return -1;
    int64_t blk = rows[0] / bs, len = n - blk * bs < bs ? n - blk * bs : bs;
    if (k != len) return -1;
    for (int64_t i = 0; i < k; i++)
        if (rows[i] != blk * bs + i) return -1;
    return blk;
}

MT_TEST(iter_small_exact_batches)
{
    mt_dataset *d = rows_dataset(10);
    mt_data_iter it;
    int64_t rows[16], k;
    /* sequential: 0-3, 4-7, 8-9; even_sequential: 0-3, 4-7, rows 8 and 9 never */
    for (int e = 0; e < 2; e++) {
        mt_iter_mode m = e ? MT_ITER_EVEN_SEQUENTIAL : MT_ITER_SEQUENTIAL;
        MT_CHECK_OK(mt_data_iter_init(&it, d, m, 4, 0, 1));
        MT_CHECK_EQ_INT(it.n_batches, e ? 2 : 3);
        for (int64_t b = 0; b < it.n_batches; b++) {
            MT_CHECK_OK(mt_data_iter_rows(&it, 5, b, rows, &k));
            MT_CHECK_EQ_INT(k, b == 2 ? 2 : 4);
            for (int64_t i = 0; i < k; i++)
                MT_CHECK_EQ_INT(rows[i], 4 * b + i);
        }
        mt_data_iter_clear(&it);
    }

    /* batchwise_shuffled_sequential: each batch one block, the 3 blocks once per epoch, the
     * short block at every position over the epochs */
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL, 4, 0, 1));
    MT_CHECK_EQ_INT(it.n_batches, 3);
    int64_t short_at[3] = {0}, orders_seen[6] = {0};
    for (int64_t e = 0; e < 60; e++) {
        int64_t blocks[3], used = 0;
        for (int64_t b = 0; b < 3; b++) {
            MT_CHECK_OK(mt_data_iter_rows(&it, e, b, rows, &k));
            blocks[b] = which_block(rows, k, 10, 4);
            MT_CHECK(blocks[b] >= 0);
            used |= 1 << blocks[b];
            if (k == 2) short_at[b]++;
        }
        MT_CHECK_EQ_INT(used, 7);
        orders_seen[blocks[0] * 2 + (blocks[1] > blocks[2])]++;
    }
    for (int i = 0; i < 3; i++)
        MT_CHECK(short_at[i] > 5);
    for (int i = 0; i < 6; i++)
        MT_CHECK(orders_seen[i] > 0); /* all 3! orders of the blocks occur */
    mt_data_iter_clear(&it);

    /* even_batchwise_shuffled_sequential: blocks 0 and 1 in both orders, never rows 8, 9 */
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL, 4, 0, 1));
    MT_CHECK_EQ_INT(it.n_batches, 2);
    int64_t first_block[2] = {0};
    for (int64_t e = 0; e < 40; e++) {
        int64_t b0, b1;
        MT_CHECK_OK(mt_data_iter_rows(&it, e, 0, rows, &k));
        b0 = which_block(rows, k, 10, 4);
        MT_CHECK_OK(mt_data_iter_rows(&it, e, 1, rows, &k));
        b1 = which_block(rows, k, 10, 4);
        MT_CHECK((b0 == 0 && b1 == 1) || (b0 == 1 && b1 == 0));
        first_block[b0]++;
    }
    MT_CHECK(first_block[0] > 5 && first_block[1] > 5);
    mt_data_iter_clear(&it);

    /* even_shuffled_sequential: 2 batches of 4 distinct rows; the 2 rows left out change with
     * the epoch (every row is left out in some epoch); not shuffled_sequential's order */
    mt_data_iter sh;
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_EVEN_SHUFFLED_SEQUENTIAL, 4, 0, 1));
    MT_CHECK_OK(mt_data_iter_init(&sh, d, MT_ITER_SHUFFLED_SEQUENTIAL, 4, 0, 1));
    MT_CHECK_EQ_INT(it.n_batches, 2);
    int64_t left_out[10] = {0}, same_as_shuffled = 0;
    for (int64_t e = 0; e < 60; e++) {
        int8_t seen[10] = {0};
        int64_t srows[16], sk;
        bool same = true;
        for (int64_t b = 0; b < 2; b++) {
            MT_CHECK_OK(mt_data_iter_rows(&it, e, b, rows, &k));
            MT_CHECK_EQ_INT(k, 4);
            MT_CHECK_OK(mt_data_iter_rows(&sh, e, b, srows, &sk));
            same = same && memcmp(rows, srows, 4 * sizeof(int64_t)) == 0;
            for (int64_t i = 0; i < 4; i++) {
                MT_CHECK(rows[i] >= 0 && rows[i] < 10 && !seen[rows[i]]);
                seen[rows[i]] = 1;
            }
        }
        for (int i = 0; i < 10; i++)
            left_out[i] += !seen[i];
        same_as_shuffled += same;
    }
    for (int i = 0; i < 10; i++)
        MT_CHECK(left_out[i] > 0);
    MT_CHECK(same_as_shuffled < 3);
    mt_data_iter_clear(&it);
    mt_data_iter_clear(&sh);
    mt_dataset_free(d);

    /* batch_size dividing n: the even modes are their plain modes' batches */
    d = rows_dataset(12);
    mt_data_iter a, b;
    MT_CHECK_OK(mt_data_iter_init(&a, d, MT_ITER_SEQUENTIAL, 4, 0, 9));
    MT_CHECK_OK(mt_data_iter_init(&b, d, MT_ITER_EVEN_SEQUENTIAL, 4, 0, 9));
    MT_CHECK_EQ_INT(a.n_batches, 3);
    MT_CHECK_EQ_INT(b.n_batches, 3);
    for (int64_t bb = 0; bb < 3; bb++) {
        int64_t ra[4], rb[4], ka, kb;
        MT_CHECK_OK(mt_data_iter_rows(&a, 2, bb, ra, &ka));
        MT_CHECK_OK(mt_data_iter_rows(&b, 2, bb, rb, &kb));
        MT_CHECK(ka == kb && memcmp(ra, rb, sizeof ra) == 0);
    }
    mt_data_iter_clear(&a);
    mt_data_iter_clear(&b);
    /* batch_size 1: batchwise shuffling is a permutation of the rows */
    MT_CHECK_OK(mt_data_iter_init(&a, d, MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL, 1, 0, 9));
    MT_CHECK_EQ_INT(a.n_batches, 12);
    int8_t seen[12] = {0};
    int64_t moved = 0;
    for (int64_t bb = 0; bb < 12; bb++) {
        MT_CHECK_OK(mt_data_iter_rows(&a, 0, bb, rows, &k));
        MT_CHECK_EQ_INT(k, 1);
        MT_CHECK(!seen[rows[0]]);
        seen[rows[0]] = 1;
        moved += rows[0] != bb;
    }
    MT_CHECK(moved > 0);
    mt_data_iter_clear(&a);
    mt_dataset_free(d);
}

/* Where batch b starts in an epoch's concatenated rows. */
static int64_t batch_offset(const int64_t *sizes, int64_t b)
{
    int64_t off = 0;
    for (int64_t q = 0; q < b; q++)
        off += sizes[q];
    return off;
}

MT_TEST(iter_new_modes_cover_determinism_resume)
{
    const int64_t n = 103, bs = 10;
    mt_dataset *d = rows_dataset(n);
    for (int mi = N_SEQ_FAMILY - N_NEW_MODES; mi < N_SEQ_FAMILY; mi++) {
        mt_iter_mode m = g_seq_family[mi];
        bool even = even_mode(m);
        int64_t per = even ? 10 : 11, visited = even ? 100 : 103;
        mt_data_iter it, fresh, other;
        MT_CHECK_OK(mt_data_iter_init(&it, d, m, bs, 0, 77));
        MT_CHECK_OK(mt_data_iter_init(&fresh, d, m, bs, 0, 77));
        MT_CHECK_OK(mt_data_iter_init(&other, d, m, bs, 0, 78));
        MT_CHECK_EQ_INT(it.n_batches, per);
        int64_t order[4][110], sizes[4][11];
        for (int64_t e = 0; e < 4; e++) {
            MT_CHECK_EQ_INT(epoch_order(&it, e, order[e], sizes[e]), visited);
            int8_t seen[103] = {0};
            for (int64_t i = 0; i < visited; i++) {
                MT_CHECK(order[e][i] >= 0 && order[e][i] < n);
                MT_CHECK(!seen[order[e][i]]); /* at most once per epoch */
                seen[order[e][i]] = 1;
            }
            if (even)
                for (int64_t b = 0; b < per; b++)
                    MT_CHECK_EQ_INT(sizes[e][b], bs);
            /* rows 100..102 never visited, except where the rows are shuffled */
            if (m == MT_ITER_EVEN_SEQUENTIAL || m == MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL)
                MT_CHECK(!seen[100] && !seen[101] && !seen[102]);
            if (e && m != MT_ITER_EVEN_SEQUENTIAL)
                MT_CHECK(memcmp(order[e], order[e - 1], (size_t)visited * 8) != 0);
        }
        /* resumed at (epoch 2, batch 5) by an iterator that never saw anything: the same
         * batches from there on, then an unordered access */
        int64_t rows[16], k, at = batch_offset(sizes[2], 5);
        for (int64_t e = 2; e < 4; e++) {
            for (int64_t b = e == 2 ? 5 : 0; b < per; b++) {
                MT_CHECK_OK(mt_data_iter_rows(&fresh, e, b, rows, &k));
                MT_CHECK(memcmp(rows, order[e] + at, (size_t)k * 8) == 0);
                at += k;
            }
            at = 0;
        }
        MT_CHECK_OK(mt_data_iter_rows(&fresh, 0, 3, rows, &k));
        MT_CHECK(memcmp(rows, order[0] + batch_offset(sizes[0], 3), (size_t)k * 8) == 0);
        MT_CHECK_OK(mt_data_iter_rows(&fresh, 3, 9, rows, &k));
        MT_CHECK(memcmp(rows, order[3] + batch_offset(sizes[3], 9), (size_t)k * 8) == 0);
        /* another seed, another order (even_sequential has none) */
        int64_t o2[110];
        MT_CHECK_EQ_INT(epoch_order(&other, 0, o2, NULL), visited);
        if (m != MT_ITER_EVEN_SEQUENTIAL) MT_CHECK(memcmp(o2, order[0], (size_t)visited * 8) != 0);
        mt_data_iter_clear(&it);
        mt_data_iter_clear(&fresh);
        mt_data_iter_clear(&other);

        /* num_batches beyond a pass: batch per + j is batch j of the same epoch's order */
        MT_CHECK_OK(mt_data_iter_init(&it, d, m, bs, 2 * per + 1, 77));
        for (int64_t b = 0; b < 2 * per + 1; b++) {
            MT_CHECK_OK(mt_data_iter_rows(&it, 1, b, rows, &k));
            int64_t j = b % per;
            MT_CHECK_EQ_INT(k, sizes[1][j]);
            MT_CHECK(memcmp(rows, order[1] + batch_offset(sizes[1], j), (size_t)k * 8) == 0);
        }
        mt_data_iter_clear(&it);
    }
    mt_dataset_free(d);
}

MT_TEST(iter_batchwise_fewer_batches_than_a_pass)
{
    /* Pylearn2 shuffles range(num_batches): with 4 of 11 batches only blocks 0..3 are drawn,
     * each once per epoch, in an order that changes */
    mt_dataset *d = rows_dataset(103);
    for (int w = 0; w < 2; w++) {
        mt_iter_mode m =
            w ? MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL : MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL;
        mt_data_iter it;
        MT_CHECK_OK(mt_data_iter_init(&it, d, m, 10, 4, 5));
        int64_t firsts = 0, prev_first = -1, rows[10], k;
        for (int64_t e = 0; e < 20; e++) {
            int64_t used = 0;
            for (int64_t b = 0; b < 4; b++) {
                MT_CHECK_OK(mt_data_iter_rows(&it, e, b, rows, &k));
                int64_t blk = which_block(rows, k, 103, 10);
                MT_CHECK(blk >= 0 && blk < 4);
                used |= 1 << blk;
                if (b == 0) {
                    firsts += blk != prev_first;
                    prev_first = blk;
                }
            }
            MT_CHECK_EQ_INT(used, 15);
        }
        MT_CHECK(firsts > 5);
        mt_data_iter_clear(&it);
    }
    mt_dataset_free(d);
}

MT_TEST(iter_even_modes_need_a_full_batch)
{
    mt_dataset *d = rows_dataset(5);
    mt_data_iter it;
    for (int mi = N_SEQ_FAMILY - 3; mi < N_SEQ_FAMILY; mi++) {
        mt_iter_mode m = g_seq_family[mi];
        MT_CHECK_ERR(mt_data_iter_init(&it, d, m, 6, 0, 1), MT_ERR_INVALID,
                     "do not fit in 5 examples");
        MT_CHECK(strstr(mt_last_error(), mt_iter_mode_name(m)) != NULL);
        /* batch_size n: one batch of every row */
        MT_CHECK_OK(mt_data_iter_init(&it, d, m, 5, 0, 1));
        MT_CHECK_EQ_INT(it.n_batches, 1);
        int64_t rows[5], k, sum = 0;
        MT_CHECK_OK(mt_data_iter_rows(&it, 0, 0, rows, &k));
        MT_CHECK_EQ_INT(k, 5);
        for (int i = 0; i < 5; i++)
            sum += rows[i];
        MT_CHECK_EQ_INT(sum, 10);
        MT_CHECK_ERR(mt_data_iter_rows(&it, 0, 1, rows, &k), MT_ERR_RANGE, "outside [0, 1)");
        mt_data_iter_clear(&it);
    }
    /* batchwise_shuffled_sequential (not even) takes a batch larger than the dataset */
    MT_CHECK_OK(mt_data_iter_init(&it, d, MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL, 6, 0, 1));
    int64_t rows[6], k;
    MT_CHECK_OK(mt_data_iter_rows(&it, 0, 0, rows, &k));
    MT_CHECK_EQ_INT(k, 5);
    MT_CHECK_EQ_INT(rows[4], 4);
    mt_data_iter_clear(&it);
    mt_dataset_free(d);
}

MT_TEST(iter_new_modes_pinned_orders)
{
    /* Epochs 1 and 2 of n = 10, batch_size 3, seed 12345, written down once: the draws must
     * not change between builds or machines, or a resumed run (and the ranks of a job) would
     * see other batches. -1 ends a batch. */
    static const struct {
        mt_iter_mode mode;
        int64_t rows[2][16];
    } pins[] = {
        {MT_ITER_BATCHWISE_SHUFFLED_SEQUENTIAL,
         {{0, 1, 2, -1, 3, 4, 5, -1, 9, -1, 6, 7, 8, -1},
          {3, 4, 5, -1, 0, 1, 2, -1, 9, -1, 6, 7, 8, -1}}},
        {MT_ITER_EVEN_SHUFFLED_SEQUENTIAL,
         {{8, 0, 1, -1, 4, 7, 9, -1, 2, 5, 3, -1}, {2, 5, 1, -1, 4, 0, 9, -1, 3, 7, 6, -1}}},
        {MT_ITER_EVEN_BATCHWISE_SHUFFLED_SEQUENTIAL,
         {{6, 7, 8, -1, 0, 1, 2, -1, 3, 4, 5, -1}, {6, 7, 8, -1, 3, 4, 5, -1, 0, 1, 2, -1}}},
    };
    mt_dataset *d = rows_dataset(10);
    for (int p = 0; p < 3; p++) {
        mt_data_iter it;
        MT_CHECK_OK(mt_data_iter_init(&it, d, pins[p].mode, 3, 0, 12345));
        for (int e = 0; e < 2; e++) {
            int64_t got[16], at = 0, rows[3], k;
            for (int64_t b = 0; b < it.n_batches; b++) {
                MT_CHECK_OK(mt_data_iter_rows(&it, e + 1, b, rows, &k));
                for (int64_t i = 0; i < k; i++)
                    got[at++] = rows[i];
                got[at++] = -1;
            }
            for (int64_t i = 0; i < at; i++)
                if (got[i] != pins[p].rows[e][i])
                    mt_test_fail(__FILE__, __LINE__,
                                 "%s epoch %d: position %lld is %lld, "
                                 "pinned %lld",
                                 mt_iter_mode_name(pins[p].mode), e + 1, (long long)i,
                                 (long long)got[i], (long long)pins[p].rows[e][i]);
        }
        mt_data_iter_clear(&it);
    }
    mt_dataset_free(d);
}
