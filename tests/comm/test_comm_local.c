/* comm tests that run as one plain process (no mpiexec): the launch environment parser, the
 * options' environment variables, the "local" backend (size 1) behind the same API, backend
 * choice, and an MPI singleton (backend "mpi" without a launcher). */
#include <stdlib.h>
#include <string.h>

#include "mltrain/comm.h"
#include "mltrain/gpuarray.h"
#include "mltrain/mt_config.h"
#include "mt_test.h"

static const char *const launch_vars[] = {
    "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
    "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_JOB_ID", "SLURM_STEP_ID",
    "PMIX_RANK", "PMIX_SIZE", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"};

static void clear_launch_env(void)
{
    for (size_t i = 0; i < sizeof launch_vars / sizeof launch_vars[0]; i++)
        unsetenv(launch_vars[i]);
}

/* One launch environment, applied in order: the variables set on top of the previous case's
 * (or of none, with clear), and the launch info expected; NULL launcher and -2 fields are not
 * checked. */
static const struct launch_case {
    bool clear;
    const char *set[6][2];
    const char *launcher;
    int rank, size, local_rank, local_size, slurm_job_id;
} launch_cases[] = {
    {true, {{NULL}}, "none", 0, 1, -2, -2, -1},
    {false,
     {{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
      {"SLURM_TASKS_PER_NODE", "4(x2)"}, {"SLURM_JOB_ID", "4242"}},
     "slurm", 5, 8, 1, 4, 4242},
    /* Open MPI's variables win over Slurm's (mpirun inside an allocation) */
    {false,
     {{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "3"},
      {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "1"}},
     "openmpi", 2, 3, 0, 1, 4242},
    {true, {{"PMIX_RANK", "3"}, {"PMI_SIZE", "4"}}, "pmix", 3, 4, -2, -2, -2},
    /* nonsense is not trusted */
    {true, {{"OMPI_COMM_WORLD_RANK", "7"}, {"OMPI_COMM_WORLD_SIZE", "2"}}, NULL, 0, 2, -2, -2,
     -2},
    /* MPICH / Intel MPI (Hydra) */
    {true,
     {{"PMI_RANK", "5"}, {"PMI_SIZE", "8"}, {"MPI_LOCALRANKID", "1"}, {"MPI_LOCALNRANKS", "4"}},
     "hydra", 5, 8, 1, 4, -1},
    /* ... inside a Slurm allocation, where Hydra's node proxies are the Slurm tasks */
    {false, {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"}}, "hydra", 5, 8,
     1, 4, -2},
    /* srun --mpi=pmi2 starting the ranks itself: Slurm's local id */
    {true,
     {{"PMI_RANK", "5"}, {"PMI_SIZE", "8"}, {"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"},
      {"SLURM_LOCALID", "1"}, {"SLURM_TASKS_PER_NODE", "4(x2)"}},
     "slurm", 5, 8, 1, 4, -2},
};

MT_TEST(launch_info_from_environment)
{
    for (size_t i = 0; i < sizeof launch_cases / sizeof launch_cases[0]; i++) {
        const struct launch_case *k = &launch_cases[i];
        if (k->clear) clear_launch_env();
        for (int v = 0; v < 6 && k->set[v][0]; v++) setenv(k->set[v][0], k->set[v][1], 1);
        mt_launch_info li;
        mt_launch_info_get(&li);
        if (k->launcher) MT_CHECK_STR_EQ(li.launcher, k->launcher);
        MT_CHECK_EQ_INT(li.rank, k->rank);
        MT_CHECK_EQ_INT(li.size, k->size);
        if (k->local_rank != -2) MT_CHECK_EQ_INT(li.local_rank, k->local_rank);
        if (k->local_size != -2) MT_CHECK_EQ_INT(li.local_size, k->local_size);
        if (k->slurm_job_id != -2) MT_CHECK_EQ_INT(li.slurm_job_id, k->slurm_job_id);
    }
    clear_launch_env();
}

MT_TEST(options_from_environment)
{
    mt_comm_options o;
    unsetenv("MLTRAIN_COMM_TIMEOUT");
    unsetenv("MLTRAIN_COMM_CHECK");
    mt_comm_options_init(&o);
    MT_CHECK_STR_EQ(o.backend, "auto");
    MT_CHECK_CLOSE(o.timeout_s, 600, 0, 0);
    MT_CHECK(!o.check);
    setenv("MLTRAIN_COMM_TIMEOUT", "2.5", 1);
    setenv("MLTRAIN_COMM_CHECK", "1", 1);
    mt_comm_options_init(&o);
    MT_CHECK_CLOSE(o.timeout_s, 2.5, 0, 0);
    MT_CHECK(o.check);
    unsetenv("MLTRAIN_COMM_TIMEOUT");
    unsetenv("MLTRAIN_COMM_CHECK");
}

/* The world communicator of `backend` without a launcher (debug checks on): one rank. */
static mt_comm *single_world(const char *backend)
{
    clear_launch_env();
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = backend;
    o.check = true;
    mt_comm *c = NULL;
    MT_CHECK_OK(mt_comm_world(&c, &o));
    MT_CHECK_STR_EQ(mt_comm_backend(c), backend);
    MT_CHECK_EQ_INT(mt_comm_rank(c), 0);
    MT_CHECK_EQ_INT(mt_comm_size(c), 1);
    return c;
}

MT_TEST(local_backend_collectives)
{
    mt_comm *c = single_world("local");
    MT_CHECK(mt_comm_mpi_handle(c) == NULL);
    mt_device *dev = NULL;
    MT_CHECK_OK(mt_device_open(&dev, "host"));
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t n = 6;
    mt_array a = {0}, b = {0};
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_FLOAT32, 1, &n, x));
    MT_CHECK_OK(mt_array_zeros(&b, dev, MT_FLOAT32, 1, &n));
    MT_CHECK_OK(mt_comm_allreduce(c, &a, &b, MT_REDUCE_SUM));
    float y[6];
    MT_CHECK_OK(mt_array_to_host(y, sizeof y, &b));
    MT_CHECK(memcmp(x, y, sizeof x) == 0);
    MT_CHECK_OK(mt_array_fill(&b, mt_scalar_f64(0)));
    MT_CHECK_OK(mt_comm_allgather(c, &a, &b));
    MT_CHECK_OK(mt_array_to_host(y, sizeof y, &b));
    MT_CHECK(memcmp(x, y, sizeof x) == 0);
    MT_CHECK_OK(mt_array_fill(&b, mt_scalar_f64(0)));
    MT_CHECK_OK(mt_comm_reduce_scatter(c, &a, &b, MT_REDUCE_MAX));
    MT_CHECK_OK(mt_array_to_host(y, sizeof y, &b));
    MT_CHECK(memcmp(x, y, sizeof x) == 0);
    MT_CHECK_OK(mt_comm_broadcast(c, &a, 0));
    MT_CHECK_ERR(mt_comm_broadcast(c, &a, 1), MT_ERR_RANGE, "root 1");
    MT_CHECK_OK(mt_comm_barrier(c));
    mt_comm_req *r = NULL;
    MT_CHECK_OK(mt_comm_iallreduce(c, &a, &a, MT_REDUCE_PROD, &r));
    bool done = false;
    MT_CHECK_OK(mt_comm_test(r, &done));
    MT_CHECK(done);
    MT_CHECK_OK(mt_comm_wait(r));
    double d = 3;
    MT_CHECK_OK(mt_comm_allreduce_host(c, &d, 1, MT_FLOAT64, MT_REDUCE_SUM));
    MT_CHECK_CLOSE(d, 3, 0, 0);
    mt_comm *g = NULL;
    MT_CHECK_OK(mt_comm_split(&g, c, 0, 0));
    MT_CHECK(g != NULL);
    MT_CHECK_EQ_INT(mt_comm_size(g), 1);
    MT_CHECK_STR_EQ(mt_comm_backend(g), "local");
    MT_CHECK_OK(mt_comm_barrier(g));
    mt_comm_free(g);
    MT_CHECK_OK(mt_comm_split(&g, c, -1, 0));
    MT_CHECK(g == NULL);
    MT_CHECK_EQ_INT(mt_comm_seq(c), 9);
    /* abort on the local backend prints and returns */
    mt_comm_abort(c, 3, "local abort returns");
    mt_array_clear(&a);
    mt_array_clear(&b);
    mt_device_release(dev);
    mt_comm_free(c);
}

MT_TEST(auto_backend_without_launcher_is_local)
{
    clear_launch_env();
    mt_comm *c = NULL;
    MT_CHECK_OK(mt_comm_world(&c, NULL));
    MT_CHECK_STR_EQ(mt_comm_backend(c), "local");
    mt_comm_free(c);
    mt_comm_options o;
    mt_comm_options_init(&o);
    o.backend = "nccl-ish";
    MT_CHECK_ERR(mt_comm_world(&c, &o), MT_ERR_INVALID, "unknown backend");
#if !MT_HAVE_MPI
    o.backend = "mpi";
    MT_CHECK_ERR(mt_comm_world(&c, &o), MT_ERR_NOT_BUILT, "MT_WITH_MPI");
#endif
}

MT_TEST(mpi_singleton_without_launcher)
{
#if MT_HAVE_MPI
    mt_comm *c = single_world("mpi");
    int32_t v[3] = {1, 2, 3};
    MT_CHECK_OK(mt_comm_allreduce_host(c, v, 3, MT_INT32, MT_REDUCE_SUM));
    MT_CHECK_EQ_INT(v[2], 3);
    mt_comm *g = NULL;
    MT_CHECK_OK(mt_comm_split(&g, c, 1, 0));
    MT_CHECK_EQ_INT(mt_comm_size(g), 1);
    MT_CHECK_OK(mt_comm_barrier(g));
    mt_comm_free(g);
    MT_CHECK_OK(mt_comm_barrier(c));
    MT_CHECK_EQ_INT(mt_comm_seq(c), 3);
    mt_comm_free(c);
#else
    MT_SKIP("built without MPI");
#endif
}
