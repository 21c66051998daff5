/* comm tests of choosing NCCL under mpiexec (label mpi, 2 ranks): the ranks agree on NCCL or
 * staging and on the reason (every rank reports the first rank that cannot use NCCL), a
 * required NCCL fails on every rank alike, and with two GPUs (SKIP otherwise) each rank binds
 * cuda:<local rank> and NCCL's all-reduce of rank-dependent data equals MPI's on host arrays. */
#include <stdlib.h>
#include <string.h>

#include "mltrain/comm.h"
#include "mltrain/gpuarray.h"
#include "mltrain/mt_config.h"
#include "mt_test.h"

static mt_comm *world(void)
{
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = "mpi";
    o.timeout_s = 60;
    mt_comm *c = NULL;
    MT_CHECK_OK(mt_comm_world(&c, &o));
    return c;
}

MT_TEST(use_device_agrees_on_every_rank)
{
    mt_comm *c = world();
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    /* every rank gets the same status and the same first failing rank */
    MT_CHECK_ERR(mt_comm_use_device(c, dev, "nccl"),
                 MT_HAVE_NCCL ? MT_ERR_UNSUPPORTED : MT_ERR_NOT_BUILT,
                 MT_HAVE_NCCL ? "(rank 0: its device host is not a CUDA device"
                              : "(rank 0: this mltrain was built without NCCL");
    MT_CHECK_OK(mt_comm_use_device(c, dev, "auto"));
    MT_CHECK_STR_EQ(mt_comm_device_path(c), "staged");
    int32_t v = mt_comm_rank(c) + 1;
    MT_CHECK_OK(mt_comm_allreduce_host(c, &v, 1, MT_INT32, MT_REDUCE_SUM));
    MT_CHECK_EQ_INT(v, mt_comm_size(c) * (mt_comm_size(c) + 1) / 2);
    mt_device_release(dev);
    mt_comm_free(c);
}

MT_TEST(nccl_two_gpus_match_mpi)
{
    char name[32];
    if (mt_launch_pick_device(name, sizeof name, "cuda") != MT_OK || !MT_HAVE_NCCL) {
        MT_SKIP("needs NCCL and one CUDA device per rank");
        return;
    }
    mt_comm *c = world();
    mt_device *dev = NULL, *host = NULL;
    MT_CHECK_OK(mt_device_open(&dev, name));
    MT_CHECK_OK(mt_device_open(&host, "host"));
    MT_CHECK_OK(mt_comm_use_device(c, dev, "nccl"));
    int64_t n = 100003;
    float *x = mt_malloc(sizeof *x * (size_t)n), *yh = mt_malloc(sizeof *x * (size_t)n),
          *yd = mt_malloc(sizeof *x * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 7 + mt_comm_rank(c) * 13) % 101) * 0.5f;
    mt_array ah = {0}, ad = {0};
    MT_CHECK_OK(mt_array_from_host(&ah, host, MT_FLOAT32, 1, &n, x));
    MT_CHECK_OK(mt_array_from_host(&ad, dev, MT_FLOAT32, 1, &n, x));
    MT_CHECK_OK(mt_comm_allreduce(c, &ah, &ah, MT_REDUCE_SUM));
    MT_CHECK_OK(mt_comm_allreduce(c, &ad, &ad, MT_REDUCE_SUM));
    MT_CHECK_OK(mt_array_to_host(yh, sizeof *yh * (size_t)n, &ah));
    MT_CHECK_OK(mt_array_to_host(yd, sizeof *yd * (size_t)n, &ad));
    /* sums of halves of small integers are exact in float32 whatever the order */
    MT_CHECK(memcmp(yh, yd, sizeof *yh * (size_t)n) == 0);
    MT_CHECK_OK(mt_comm_broadcast(c, &ad, 1));
    mt_array_clear(&ah);
    mt_array_clear(&ad);
    mt_free(x);
    mt_free(yh);
    mt_free(yd);
    mt_device_release(host);
    mt_device_release(dev);
    mt_comm_free(c);
}
