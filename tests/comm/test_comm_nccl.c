/* comm tests of the NCCL backend and the GPU binding that run without a GPU (label unit):
 * every NCCL entry point the backend resolves exists in the library (dlsym), the library
 * loads and makes a unique id on the CPU, choosing NCCL for a device that is not CUDA fails
 * cleanly ("nccl") or stays on MPI staging with a logged reason ("auto"), and the device
 * choice of `--device cuda` from the launch environment (local ranks 0..3 with 2 GPUs: an
 * error naming both counts). */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/comm/comm_impl.h"
#include "mltrain/comm.h"
#include "mltrain/gpuarray.h"
#include "mltrain/mt_config.h"
#include "mt_test.h"

static void clear_launch_env(void)
{
    static const char *const vars[] = {
        "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
        "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_JOB_ID", "SLURM_STEP_ID",
        "PMIX_RANK", "PMIX_SIZE", "PMI_RANK", "PMI_SIZE", "CUDA_VISIBLE_DEVICES"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

/* ---------------------------------------------------------------- the library */

MT_TEST(nccl_symbols_resolve_in_libnccl)
{
#ifndef MT_TEST_NCCL_LIBRARY
    MT_SKIP("no libnccl found at configure time (MT_NCCL_LIBRARY)");
#else
    void *h = dlopen(MT_TEST_NCCL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        mt_test_fail(__FILE__, __LINE__, "dlopen(%s): %s", MT_TEST_NCCL_LIBRARY, e ? e : "?");
        return;
    }
    const char *const *names = mt__comm_nccl_symbols();
    int n = 0;
    for (; names[n]; n++)
        if (!dlsym(h, names[n]))
            mt_test_fail(__FILE__, __LINE__, "%s lacks %s", MT_TEST_NCCL_LIBRARY, names[n]);
    MT_CHECK(n >= 13);
    dlclose(h);
#endif
}

MT_TEST(nccl_loads_and_makes_a_unique_id_without_gpu)
{
#if !MT_HAVE_NCCL
    int v = 0;
    MT_CHECK_ERR(mt__comm_nccl_version(&v), MT_ERR_NOT_BUILT, "MT_WITH_NCCL");
    MT_SKIP("built without NCCL");
#else
    int v = 0;
    if (mt__comm_nccl_version(&v) != MT_OK) {
        MT_SKIP("libnccl.so.2 does not load here");
        return;
    }
    MT_CHECK(v >= 21400);
    uint8_t a[MT__NCCL_ID_BYTES] = {0}, b[MT__NCCL_ID_BYTES] = {0}, zero[MT__NCCL_ID_BYTES] = {0};
    MT_CHECK_OK(mt__comm_nccl_unique_id(a));
    MT_CHECK_OK(mt__comm_nccl_unique_id(b));
    MT_CHECK(memcmp(a, zero, sizeof a) != 0);
    MT_CHECK(memcmp(a, b, sizeof a) != 0); /* a fresh id each time */
    /* a communicator on a device that is not CUDA is refused before NCCL is called */
    mt_device *host = NULL;
    MT_CHECK_OK(mt_device_open(&host, "host"));
    void *impl = NULL;
    MT_CHECK_ERR(mt__comm_nccl_new(&impl, host, a, 0, 1, 5), MT_ERR_UNSUPPORTED,
                 "host is not a CUDA device");
    MT_CHECK(impl == NULL);
    mt_device_release(host);
#endif
}

/* ---------------------------------------------------------------- choosing NCCL */

typedef struct log_capture {
    char text[4096];
} log_capture;

static void capture(mt_log_level level, const char *msg, void *user)
{
    log_capture *c = user;
    (void)level; /* the staging note is a debug line on host devices, a warning on GPUs */
    size_t used = strlen(c->text);
    snprintf(c->text + used, sizeof c->text - used, "%s\n", msg);
}

/* Staged collectives still work on a communicator bound to dev. */
static void check_staged_allreduce(mt_comm *c, mt_device *dev)
{
    float x[4] = {1, 2, 3, 4}, y[4] = {0};
    int64_t n = 4;
    mt_array a = {0};
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_FLOAT32, 1, &n, x));
    MT_CHECK_OK(mt_comm_allreduce(c, &a, &a, MT_REDUCE_SUM));
    MT_CHECK_OK(mt_array_to_host(y, sizeof y, &a));
    for (int i = 0; i < 4; i++) MT_CHECK_CLOSE(y[i], x[i] * (float)mt_comm_size(c), 0, 0);
    mt_array_clear(&a);
}

/* Without a GPU (or driver) no device is CUDA: "nccl" fails on every rank with the reason,
 * "auto" keeps MPI staging and logs why, "host" stages silently. */
static void choose_nccl_without_cuda(const char *backend, const char *devname)
{
    clear_launch_env();
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = backend;
    mt_comm *c = NULL;
    MT_CHECK_OK(mt_comm_world(&c, &o));
    mt_device *dev = NULL;
    if (mt_device_open(&dev, devname) != MT_OK) {
        mt_comm_free(c);
        MT_SKIP("device not available");
        return;
    }
    MT_CHECK_ERR(mt_comm_use_device(c, dev, "nccl"), MT_HAVE_NCCL ? MT_ERR_UNSUPPORTED
                                                                  : MT_ERR_NOT_BUILT,
                 MT_HAVE_NCCL ? "is not a CUDA device" : "without NCCL");
    MT_CHECK_STR_EQ(mt_comm_device_path(c), "staged");
    MT_CHECK_ERR(mt_comm_use_device(c, dev, "gloo"), MT_ERR_INVALID, "unknown choice");

    log_capture cap = {{0}};
    mt_log_level old_level = mt_log_get_level();
    mt_log_set_level(MT_LOG_DEBUG);
    mt_log_set_callback(capture, &cap);
    MT_CHECK_OK(mt_comm_use_device(c, dev, "auto"));
    mt_log_set_callback(NULL, NULL);
    MT_CHECK_STR_EQ(mt_comm_device_path(c), "staged");
    MT_CHECK(strstr(cap.text, "are staged through host memory, not NCCL") != NULL);
    if (strcmp(backend, "mpi") == 0)
        MT_CHECK(strstr(cap.text, MT_HAVE_NCCL ? "(rank 0: its device" : "(rank 0: this mltrain "
                                                                          "was built without NCCL") != NULL);
    else
        MT_CHECK(strstr(cap.text, "backend is \"local\", not \"mpi\"") != NULL);
    check_staged_allreduce(c, dev);

    cap.text[0] = 0;
    mt_log_set_callback(capture, &cap);
    MT_CHECK_OK(mt_comm_use_device(c, dev, "host"));
    mt_log_set_callback(NULL, NULL);
    mt_log_set_level(old_level);
    MT_CHECK(strstr(cap.text, "NCCL") == NULL);
    check_staged_allreduce(c, dev);
    MT_CHECK_OK(mt_comm_use_device(c, NULL, NULL)); /* unbind */
    mt_device_release(dev);
    mt_comm_free(c);
}

MT_TEST(choose_nccl_for_host_device_on_local_comm)
{
    choose_nccl_without_cuda("local", "host");
}

MT_TEST(choose_nccl_for_host_device_on_mpi_singleton)
{
#if !MT_HAVE_MPI
    MT_SKIP("built without MPI");
#else
    choose_nccl_without_cuda("mpi", "host");
#endif
}

MT_TEST(choose_nccl_for_cuda_emulation_device)
{
#if !MT_HAVE_CUDA
    MT_SKIP("built without CUDA (no emulation device)");
#else
    choose_nccl_without_cuda("local", "cudaemu:0");
#endif
}

/* ---------------------------------------------------------------- GPU binding */

static mt_launch_info node_of(int32_t local_rank, int32_t local_size)
{
    mt_launch_info li = {.rank = 10 + local_rank, .size = 16, .local_rank = local_rank,
                         .local_size = local_size, .launcher = "openmpi",
                         .slurm_job_id = -1};
    return li;
}

MT_TEST(pick_device_one_gpu_per_local_rank)
{
    clear_launch_env();
    char name[32];
    for (int32_t lr = 0; lr < 2; lr++) {
        mt_launch_info li = node_of(lr, 2);
        MT_CHECK_OK(mt_launch_pick_device_for(name, sizeof name, "cuda", &li, 2));
        MT_CHECK_STR_EQ(name, lr == 0 ? "cuda:0" : "cuda:1");
        MT_CHECK_OK(mt_launch_pick_device_for(name, sizeof name, "cuda:auto", &li, 4));
        MT_CHECK_STR_EQ(name, lr == 0 ? "cuda:0" : "cuda:1");
    }
    /* explicit names are kept, whatever the counts */
    mt_launch_info li = node_of(3, 4);
    MT_CHECK_OK(mt_launch_pick_device_for(name, sizeof name, "cuda:1", &li, 2));
    MT_CHECK_STR_EQ(name, "cuda:1");
    MT_CHECK_OK(mt_launch_pick_device_for(name, sizeof name, "host", &li, 0));
    MT_CHECK_STR_EQ(name, "host");
    MT_CHECK_ERR(mt_launch_pick_device_for(name, 4, "opencl:0:0", &li, 0), MT_ERR_RANGE,
                 "does not fit");
}

MT_TEST(pick_device_more_ranks_than_gpus_is_an_error)
{
    clear_launch_env();
    char name[32];
    /* every rank of the node fails, also those whose GPU would exist */
    for (int32_t lr = 0; lr < 4; lr++) {
        mt_launch_info li = node_of(lr, 4);
        MT_CHECK_ERR(mt_launch_pick_device_for(name, sizeof name, "cuda", &li, 2), MT_ERR_RANGE,
                     "4 ranks on this node but 2 CUDA devices: start at most 2 ranks per node "
                     "or pass --device explicitly");
        MT_CHECK_STR_EQ(name, "");
    }
    mt_launch_info li = node_of(1, 2);
    MT_CHECK_ERR(mt_launch_pick_device_for(name, sizeof name, "cuda", &li, 1), MT_ERR_RANGE,
                 "2 ranks on this node but 1 CUDA device: start at most 1 rank per node");
    MT_CHECK_ERR(mt_launch_pick_device_for(name, sizeof name, "cuda:auto", &li, 0),
                 MT_ERR_NOT_FOUND, "no CUDA device is visible to rank 11");
    /* the launcher gave each rank its own GPU: that one is cuda:0 */
    setenv("CUDA_VISIBLE_DEVICES", "3", 1);
    li = node_of(3, 4);
    MT_CHECK_OK(mt_launch_pick_device_for(name, sizeof name, "cuda", &li, 1));
    MT_CHECK_STR_EQ(name, "cuda:0");
    /* ... but two visible GPUs for four ranks is still too few, and the message says why */
    setenv("CUDA_VISIBLE_DEVICES", "0,1", 1);
    MT_CHECK_ERR(mt_launch_pick_device_for(name, sizeof name, "cuda", &li, 2), MT_ERR_RANGE,
                 "CUDA_VISIBLE_DEVICES=0,1");
    unsetenv("CUDA_VISIBLE_DEVICES");
}

/* The real lookup from the environment: Open MPI's local rank, the driver's device count. */
MT_TEST(pick_device_from_launch_environment)
{
    clear_launch_env();
    char name[32];
    MT_CHECK_OK(mt_launch_pick_device(name, sizeof name, "host"));
    MT_CHECK_STR_EQ(name, "host");
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
    mt_device_info *infos = NULL;
    int32_t n = 0, ncuda = 0;
    MT_CHECK_OK(mt_device_list(&infos, &n));
    for (int32_t i = 0; i < n; i++) ncuda += strcmp(infos[i].backend, "cuda") == 0;
    mt_free(infos);
    mt_status st = mt_launch_pick_device(name, sizeof name, "cuda");
    if (ncuda == 0) {
        MT_CHECK_EQ_INT(st, MT_ERR_NOT_FOUND);
        MT_CHECK(strstr(mt_last_error(), "no CUDA device is visible to rank 1: ") != NULL);
    } else if (ncuda == 1) {
        MT_CHECK_EQ_INT(st, MT_ERR_RANGE);
    } else {
        MT_CHECK_OK(st);
        MT_CHECK_STR_EQ(name, "cuda:1");
    }
    clear_launch_env();
}
