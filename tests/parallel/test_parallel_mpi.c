/* parallel tests under mpiexec with 1, 2 and 4 ranks (label mpi). Each rank also trains the
 * single-process reference itself (same data, same seed, no communicator) and compares:
 *   - deterministic mode on N ranks is bit-identical to one process running N shards;
 *   - fast mode (all-reduce buckets in the graph) stays within 2e-5 of one process on the
 *     full global batch (float32, 25 steps of softmax regression);
 *   - broadcast makes different initial parameters equal to rank 0's;
 *   - a rank whose parameters were changed is named by the checksum on every rank. */
#include <stdio.h>
#include <string.h>

#include "dp_model.h"
#include "mltrain/comm.h"

#define STEPS 25
#define BATCH 22 /* not a multiple of 4: uneven shards */

static mt_comm *open_world(void)
{
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.timeout_s = 120;
    mt_comm *c = NULL;
    MT_CHECK_OK(mt_comm_world(&c, &o));
    return c;
}

static mt_dp *new_dp(mt_comm *comm, bool det, int32_t shards, int64_t bucket_bytes)
{
    mt_dp_options o;
    mt_dp_options_init(&o);
    o.deterministic = det;
    o.shards = shards;
    o.checksum_every = 1;
    if (bucket_bytes > 0) o.bucket_bytes = o.first_bucket_bytes = bucket_bytes;
    mt_dp *dp = NULL;
    MT_CHECK_OK(mt_dp_new(&dp, comm, &o));
    return dp;
}

MT_TEST(deterministic_equals_single_process_shards)
{
    mt_comm *comm = open_world();
    int32_t n = mt_comm_size(comm);
    float w[2][DPM_D * DPM_C], b[2][DPM_C];
    for (int run = 0; run < 2; run++) { /* 0: N ranks; 1: this process alone, N shards */
        mt_dp *dp = new_dp(run == 0 ? comm : NULL, true, run == 0 ? 0 : n, 0);
        MT_CHECK_EQ_INT(mt_dp_n_shards(dp), n);
        dpm m;
        dpm_build(&m, dp, 42);
        for (int k = 0; k < STEPS; k++) dpm_step_ordered(&m, dp, (int64_t)k * BATCH, BATCH);
        dpm_get(&m, w[run], b[run]);
        if (run == 0) {
            const mt_array *ps[2] = {&m.param[0], &m.param[1]};
            MT_CHECK_OK(mt_dp_check_consistent(dp, STEPS, 2, ps));
        }
        dpm_free(&m);
        mt_dp_free(dp);
    }
    int diff = 0;
    for (int i = 0; i < DPM_D * DPM_C; i++) diff += memcmp(&w[0][i], &w[1][i], 4) != 0;
    for (int i = 0; i < DPM_C; i++) diff += memcmp(&b[0][i], &b[1][i], 4) != 0;
    MT_CHECK_EQ_INT(diff, 0);
    /* and the parameters moved (the comparison is not of two untouched copies) */
    dpm fresh;
    mt_dp *dp1 = new_dp(NULL, true, 1, 0);
    dpm_build(&fresh, dp1, 42);
    float w0[DPM_D * DPM_C], b0[DPM_C];
    dpm_get(&fresh, w0, b0);
    MT_CHECK(memcmp(w0, w[0], sizeof w0) != 0);
    dpm_free(&fresh);
    mt_dp_free(dp1);
    mt_comm_free(comm);
}

MT_TEST(fast_mode_close_to_full_batch)
{
    mt_comm *comm = open_world();
    int32_t n = mt_comm_size(comm);
    float w[2][DPM_D * DPM_C], b[2][DPM_C];
    double hidden = -1;
    for (int run = 0; run < 2; run++) { /* 0: N ranks, buckets of one tensor each; 1: alone */
        mt_dp *dp = new_dp(run == 0 ? comm : NULL, false, 0, 64);
        dpm m;
        dpm_build(&m, dp, 7);
        if (run == 0 && n > 1) { /* W and b in separate buckets (64-byte buckets) */
            mt_function_stats st;
            mt_function_get_stats(m.fast, &st);
            MT_CHECK_EQ_INT(st.n_buckets, 2);
        }
        for (int k = 0; k < STEPS; k++) dpm_step_fast(&m, dp, (int64_t)k * BATCH, BATCH);
        dpm_get(&m, w[run], b[run]);
        if (run == 0) {
            mt_function_stats st;
            mt_function_get_stats(m.fast, &st);
            MT_CHECK_EQ_INT((int)st.collective_calls, n > 1 ? 2 * STEPS : 0);
            if (st.collective_seconds > 0)
                hidden = 1.0 - st.collective_wait_seconds / st.collective_seconds;
            const mt_array *ps[2] = {&m.param[0], &m.param[1]};
            MT_CHECK_OK(mt_dp_check_consistent(dp, STEPS, 2, ps)); /* ranks agree */
        }
        dpm_free(&m);
        mt_dp_free(dp);
    }
    double maxd = 0;
    for (int i = 0; i < DPM_D * DPM_C; i++) {
        double d = fabs((double)w[0][i] - w[1][i]);
        if (d > maxd) maxd = d;
    }
    for (int i = 0; i < DPM_C; i++) {
        double d = fabs((double)b[0][i] - b[1][i]);
        if (d > maxd) maxd = d;
    }
    if (mt_comm_rank(comm) == 0)
        printf("fast mode on %d ranks: max |param - full batch| = %.3g after %d steps; "
               "all-reduce time hidden: %.2f\n", (int)n, maxd, STEPS, hidden);
    MT_CHECK(maxd <= 2e-5);
    mt_comm_free(comm);
}

MT_TEST(broadcast_equalizes_parameters)
{
    mt_comm *comm = open_world();
    int32_t r = mt_comm_rank(comm);
    mt_dp *dp = new_dp(comm, true, 0, 0);
    dpm m;
    dpm_build(&m, dp, 3);
    dpm_init_params(&m, 100 + (uint64_t)r); /* every rank starts elsewhere */
    float w[DPM_D * DPM_C], b[DPM_C], w0[DPM_D * DPM_C], b0[DPM_C];
    mt_array *ps[2] = {&m.param[0], &m.param[1]};
    MT_CHECK_OK(mt_dp_broadcast(dp, 2, ps));
    dpm_get(&m, w, b);
    dpm_init_params(&m, 100); /* rank 0's values, drawn locally */
    dpm_get(&m, w0, b0);
    MT_CHECK(memcmp(w, w0, sizeof w) == 0);
    MT_CHECK(memcmp(b, b0, sizeof b) == 0);
    dpm_free(&m);
    mt_dp_free(dp);
    mt_comm_free(comm);
}

MT_TEST(checksum_names_diverged_rank)
{
    mt_comm *comm = open_world();
    int32_t n = mt_comm_size(comm), r = mt_comm_rank(comm);
    if (n < 2) {
        mt_comm_free(comm);
        MT_SKIP("a diverged rank needs at least 2 ranks");
    }
    mt_dp *dp = new_dp(comm, false, 0, 0);
    dpm m;
    dpm_build(&m, dp, 11);
    const mt_array *ps[2] = {&m.param[0], &m.param[1]};
    for (int k = 1; k <= 4; k++) {
        dpm_step_fast(&m, dp, (int64_t)k * BATCH, BATCH);
        if (k == 3 && r == n - 1) { /* the last rank's bias drifts by one float step */
            float bias[DPM_C];
            MT_CHECK_OK(mt_array_to_host(bias, sizeof bias, &m.param[1]));
            bias[2] = nextafterf(bias[2], 1e30f);
            mt_array_clear(&m.param[1]);
            int64_t bs[1] = {DPM_C};
            MT_CHECK_OK(mt_array_from_host(&m.param[1], m.host, MT_FLOAT32, 1, bs, bias));
            MT_CHECK_OK(mt_function_set_shared(m.fast, m.p[1], &m.param[1]));
            ps[1] = &m.param[1];
        }
        mt_status st = mt_dp_check_consistent(dp, k, 2, ps);
        if (k < 3) {
            MT_CHECK_OK(st);
            continue;
        }
        char want[64];
        snprintf(want, sizeof want, "the parameters of rank %d differ", (int)(n - 1));
        MT_CHECK_EQ_INT(st, MT_ERR_COMM);
        MT_CHECK(strstr(mt_last_error(), want) != NULL);
        MT_CHECK(strstr(mt_last_error(), "step 3") != NULL);
        break;
    }
    dpm_free(&m);
    mt_dp_free(dp);
    mt_comm_free(comm);
}
