/* Iteration: mode names, coverage (every row exactly once per epoch in the sequential modes),
 * determinism in (mode, seed, epoch, batch) whatever was asked before, different orders for
 * different epochs and seeds, wrap-around with num_batches, the random modes' ranges, and
 * argument errors. */
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
    mt_iter_mode m;
    MT_CHECK_ERR(mt_iter_mode_from_name(&m, "shuffled"), MT_ERR_INVALID, "sequential");
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
