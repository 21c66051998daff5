/* The HDF5 dataset probe under MPI-IO (CTest label mpi, 2 ranks under mpiexec): when the probe
 * fails on one rank only (here its child is made to hang with MLTRAIN_ISOLATE_TEST_CHILD, and
 * its deadline passes), every rank fails, the others with "failed on another rank", instead of
 * the healthy ranks entering the collective open and waiting forever; then all ranks open the
 * file collectively. */
#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <sys/wait.h>

#include "io_test_util.h"
#include "mltrain/data.h"

MT_TEST(hdf5_probe_agrees_over_ranks)
{
#ifndef H5_HAVE_PARALLEL
    MT_SKIP("this HDF5 is not parallel: no collective open to agree on");
#else
    MT_CHECK(MPI_Init(NULL, NULL) == MPI_SUCCESS);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char path[1024] = {0};
    if (rank == 0) {
        mt_ckpt *c;
        MT_CHECK_OK(mt_ckpt_new(&c));
        float w[8 * 3];
        for (int i = 0; i < 24; i++)
            w[i] = (float)xval(i, 0);
        int64_t dw[2] = {8, 3};
        MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/h0_W", MT_FLOAT32, 2, dw, w));
        snprintf(path, sizeof path, "%s", tpath("shared.h5"));
        MT_CHECK_OK(mt_ckpt_write(c, path));
        mt_ckpt_free(c);
    }
    MPI_Bcast(path, sizeof path, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Comm comm = MPI_COMM_WORLD;
    mt_data_set_mpi_comm(&comm);
    if (rank == 1) {
        setenv("MLTRAIN_ISOLATE_TEST_CHILD", "hang", 1);
        setenv("MLTRAIN_HDF5_PROBE_TIMEOUT", "0.5", 1);
    }
    mt_dataset *d = NULL;
    mt_status st = mt_dataset_hdf5_mode(&d, path, "params/h0_W", NULL, MT_DATA_LOAD_LAZY);
    MT_CHECK(d == NULL);
    if (rank == 1) {
        MT_CHECK_EQ_INT(st, MT_ERR_TIMEOUT);
        MT_CHECK(strstr(mt_last_error(), "did not finish probing it within 0.5 s") != NULL);
    } else {
        MT_CHECK_EQ_INT(st, MT_ERR_FORMAT);
        MT_CHECK(strstr(mt_last_error(), "failed on another rank") != NULL);
    }
    MT_CHECK(strstr(mt_last_error(), path) != NULL);
    errno = 0;
    MT_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    unsetenv("MLTRAIN_HDF5_PROBE_TIMEOUT");
    MT_CHECK_OK(mt_dataset_hdf5_mode(&d, path, "params/h0_W", NULL, MT_DATA_LOAD_LAZY));
    MT_CHECK(mt_dataset_is_collective(d));
    mt_dataset_free(d); /* collective close */
    mt_data_set_mpi_comm(NULL);
    MPI_Finalize();
#endif
}
