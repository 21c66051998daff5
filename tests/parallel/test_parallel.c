/* parallel tests without a launcher (label unit): shard rows, options, argument errors, and
 * the single-process behaviour of every call: no collectives for one process and one shard,
 * the deterministic reference with N shards summing in shard order, no-op broadcast and
 * checksum, the thread count's overrides. */
#include <stdlib.h>
#include <string.h>

#include "dp_model.h"

/* A single-process deterministic context with the given number of shards. */
static mt_dp *new_deterministic(int32_t shards)
{
    mt_dp_options o;
    mt_dp_options_init(&o);
    o.deterministic = true;
    o.shards = shards;
    mt_dp *dp = NULL;
    MT_CHECK_OK(mt_dp_new(&dp, NULL, &o));
    return dp;
}

MT_TEST(shard_rows_even_and_uneven)
{
    mt_dp *dp = new_deterministic(4);
    MT_CHECK_EQ_INT(mt_dp_n_shards(dp), 4);
    MT_CHECK_EQ_INT(mt_dp_size(dp), 1);
    int64_t want[4][2] = {{0, 3}, {3, 6}, {6, 8}, {8, 10}}; /* 10 rows: 3, 3, 2, 2 */
    for (int s = 0; s < 4; s++) {
        int64_t b, e;
        mt_dp_shard_rows(dp, 10, s, &b, &e);
        MT_CHECK_EQ_INT(b, want[s][0]);
        MT_CHECK_EQ_INT(e, want[s][1]);
    }
    int64_t b, e, total = 0;
    for (int s = 0; s < 4; s++) { /* fewer rows than shards: empty shards at the end */
        mt_dp_shard_rows(dp, 3, s, &b, &e);
        total += e - b;
        MT_CHECK(e - b == (s < 3 ? 1 : 0));
    }
    MT_CHECK_EQ_INT(total, 3);
    mt_dp_free(dp);
}

MT_TEST(options_and_errors)
{
    setenv("MLTRAIN_BUCKET_MB", "2", 1);
    mt_dp_options o;
    mt_dp_options_init(&o);
    unsetenv("MLTRAIN_BUCKET_MB");
    MT_CHECK_EQ_INT(o.bucket_bytes, 2 << 20);
    MT_CHECK_EQ_INT(o.first_bucket_bytes, 1 << 20);
    MT_CHECK_EQ_INT(o.checksum_every, 100);
    MT_CHECK(!o.deterministic);
    MT_CHECK_EQ_INT(o.shards, 0);
    mt_dp *dp = NULL;
    o.shards = 3; /* fast mode: shards must equal the process count */
    MT_CHECK_ERR(mt_dp_new(&dp, NULL, &o), MT_ERR_INVALID, "single-process deterministic");
    o.shards = 0;
    o.bucket_bytes = 0;
    MT_CHECK_ERR(mt_dp_new(&dp, NULL, &o), MT_ERR_INVALID, "positive");
    mt_dp_options_init(&o);
    MT_CHECK_OK(mt_dp_new(&dp, NULL, &o));
    MT_CHECK_EQ_INT(mt_dp_rank(dp), 0);
    MT_CHECK(mt_dp_comm(dp) == NULL);
    MT_CHECK_ERR(mt_dp_ordered_begin(dp, 1), MT_ERR_INVALID, "deterministic");
    mt_dp_free(dp);
    mt_dp_free(NULL);
}

/* One process, one shard: the gradients are used as they are (no all-reduce nodes), and the
 * fast step equals plain SGD computed by hand. */
MT_TEST(single_process_fast_is_plain_sgd)
{
    mt_dp *dp = NULL;
    MT_CHECK_OK(mt_dp_new(&dp, NULL, NULL));
    dpm m;
    dpm_build(&m, dp, 5);
    for (int i = 0; i < 2; i++) MT_CHECK_EQ_INT(m.red[i], m.gr[i]);
    mt_function_stats st;
    mt_function_get_stats(m.fast, &st);
    MT_CHECK_EQ_INT(st.n_buckets, 0);
    /* one step by hand: softmax regression gradient of the mean cross-entropy */
    float w0[DPM_D * DPM_C], b0[DPM_C], w1[DPM_D * DPM_C], b1[DPM_C];
    dpm_get(&m, w0, b0);
    int n = 40;
    dpm_step_fast(&m, dp, 0, n);
    dpm_get(&m, w1, b1);
    double gw[DPM_D * DPM_C] = {0}, gb[DPM_C] = {0};
    for (int r = 0; r < n; r++) {
        double z[DPM_C], mx = -1e300, sum = 0;
        for (int c = 0; c < DPM_C; c++) {
            z[c] = b0[c];
            for (int j = 0; j < DPM_D; j++) z[c] += (double)m.X[r * DPM_D + j] * w0[j * DPM_C + c];
            if (z[c] > mx) mx = z[c];
        }
        for (int c = 0; c < DPM_C; c++) sum += exp(z[c] - mx);
        for (int c = 0; c < DPM_C; c++) {
            double d = (exp(z[c] - mx) / sum - (m.Y[r] == c)) / n;
            gb[c] += d;
            for (int j = 0; j < DPM_D; j++) gw[j * DPM_C + c] += d * m.X[r * DPM_D + j];
        }
    }
    for (int i = 0; i < DPM_D * DPM_C; i++) MT_CHECK_CLOSE(w1[i], w0[i] - DPM_LR * gw[i], 1e-5, 1e-4);
    for (int i = 0; i < DPM_C; i++) MT_CHECK_CLOSE(b1[i], b0[i] - DPM_LR * gb[i], 1e-5, 1e-4);
    dpm_free(&m);
    mt_dp_free(dp);
}

/* The single-process deterministic reference: shard gradients summed in shard order, equal
 * bit for bit to ((g0 + g1) + g2) in float32. */
MT_TEST(single_process_ordered_sum)
{
    mt_dp *dp = new_deterministic(3);
    mt_device *host = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    float a[3][7];
    uint64_t s = 99;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 7; i++) a[k][i] = (float)(dpm_unif(&s) * 1e3 + dpm_unif(&s) * 1e-3);
    int64_t d1[1] = {3}, d2[2] = {2, 2};
    MT_CHECK_OK(mt_dp_ordered_begin(dp, 2));
    for (int k = 0; k < 3; k++) {
        mt_array x, y;
        MT_CHECK_OK(mt_array_from_host(&x, host, MT_FLOAT32, 1, d1, a[k]));
        MT_CHECK_OK(mt_array_from_host(&y, host, MT_FLOAT32, 2, d2, a[k] + 3));
        const mt_array *gs[2] = {&x, &y};
        MT_CHECK_OK(mt_dp_ordered_add(dp, k, 2, gs));
        if (k == 0) MT_CHECK_ERR(mt_dp_ordered_add(dp, 0, 2, gs), MT_ERR_INVALID, "already");
        mt_array_clear(&x);
        mt_array_clear(&y);
    }
    mt_array out[2] = {{0}};
    MT_CHECK_OK(mt_dp_ordered_finish(dp, 2, out));
    MT_CHECK_EQ_INT(out[1].ndim, 2);
    float r[7];
    MT_CHECK_OK(mt_array_to_host(r, 12, &out[0]));
    MT_CHECK_OK(mt_array_to_host(r + 3, 16, &out[1]));
    for (int i = 0; i < 7; i++) {
        volatile float want = a[0][i] + a[1][i];
        want = want + a[2][i];
        MT_CHECK(memcmp(&r[i], (const void *)&want, 4) == 0);
    }
    /* a missing shard is an error */
    MT_CHECK_OK(mt_dp_ordered_begin(dp, 2));
    MT_CHECK_ERR(mt_dp_ordered_finish(dp, 2, out), MT_ERR_INVALID, "shard 0 was not added");
    mt_array_clear(&out[0]);
    mt_array_clear(&out[1]);
    mt_device_release(host);
    mt_dp_free(dp);
}

MT_TEST(single_process_broadcast_checksum_noops)
{
    mt_dp_options o;
    mt_dp_options_init(&o);
    o.checksum_every = 1;
    mt_dp *dp = NULL;
    MT_CHECK_OK(mt_dp_new(&dp, NULL, &o));
    mt_device *host = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    float v[2] = {1, 2};
    int64_t d[1] = {2};
    mt_array a;
    MT_CHECK_OK(mt_array_from_host(&a, host, MT_FLOAT32, 1, d, v));
    mt_array *arr[1] = {&a};
    MT_CHECK_OK(mt_dp_broadcast(dp, 1, arr));
    const mt_array *carr[1] = {&a};
    MT_CHECK_OK(mt_dp_check_consistent(dp, 1, 1, carr));
    float r[2];
    MT_CHECK_OK(mt_array_to_host(r, sizeof r, &a));
    MT_CHECK(r[0] == 1 && r[1] == 2);
    mt_array_clear(&a);
    mt_device_release(host);
    mt_dp_free(dp);
}

MT_TEST(default_threads)
{
    setenv("MLTRAIN_NUM_THREADS", "3", 1);
    MT_CHECK_EQ_INT(mt_dp_default_threads(), 3);
    unsetenv("MLTRAIN_NUM_THREADS");
    setenv("OMP_NUM_THREADS", "2", 1);
    MT_CHECK_EQ_INT(mt_dp_default_threads(), 2);
    unsetenv("OMP_NUM_THREADS");
    /* four ranks on this node, unbound: the CPUs split four ways (at least one each) */
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4", 1);
    int32_t t4 = mt_dp_default_threads();
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "1", 1);
    int32_t t1 = mt_dp_default_threads();
    MT_CHECK(t4 >= 1);
    MT_CHECK(t1 >= t4);
    MT_CHECK(t4 == (t1 / 4 > 0 ? t1 / 4 : 1) || t4 == t1); /* t1: a bound (narrow) mask */
    unsetenv("OMPI_COMM_WORLD_RANK");
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
}
