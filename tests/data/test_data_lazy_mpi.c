/* Lazy HDF5 datasets over MPI-IO (CTest label mpi, run under mpiexec): every rank opens the
 * same file through the communicator given to mt_data_set_mpi_comm, takes its contiguous shard
 * of each global batch of a shuffled epoch (as data-parallel training does) and reads it with a
 * collective H5Dread; each rank's rows must equal the serial whole-file read of the same rows.
 * One step gives every row to rank 0, so the other ranks take part with an empty selection. */
#include <mpi.h>

#include "test_data_h5.h"
#include "test_data_util.h"

#if MT_HAVE_HDF5 && defined(H5_HAVE_PARALLEL)

static const void *arr_bytes(const mt_array *a)
{
    return (const char *)mt_buffer_host_ptr(a->buf) + a->offset;
}

/* Gathers rows from the serial and the collective dataset: X and y must be bit-identical. */
static void check_rows(const mt_dataset *ref, const mt_dataset *lz, const int64_t *rows, int64_t n)
{
    mt_array xr = {0}, yr = {0}, xl = {0}, yl = {0};
    MT_CHECK_OK(mt_dataset_gather(lz, rows, n, &xl, &yl)); /* collective: every rank, in step */
    MT_CHECK_OK(mt_dataset_gather(ref, rows, n, &xr, &yr));
    MT_CHECK_EQ_INT(xl.dims[0], n);
    MT_CHECK(mt_array_nbytes(&xl) == mt_array_nbytes(&xr));
    MT_CHECK(memcmp(arr_bytes(&xl), arr_bytes(&xr), mt_array_nbytes(&xr)) == 0);
    MT_CHECK(memcmp(arr_bytes(&yl), arr_bytes(&yr), mt_array_nbytes(&yr)) == 0);
    mt_array_clear(&xr);
    mt_array_clear(&yr);
    mt_array_clear(&xl);
    mt_array_clear(&yl);
}

static void collective_case(void)
{
    MT_CHECK(MPI_Init(NULL, NULL) == MPI_SUCCESS);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char path[1024] = {0};
    const int64_t n = 53;
    if (rank == 0) write_lazy_h5(tmp_file(path, sizeof path, "shared.h5"), n);
    MPI_Bcast(path, sizeof path, MPI_CHAR, 0, MPI_COMM_WORLD);
    const char *names[2] = {"X", "Xc"};
    for (int k = 0; k < 2; k++) {
        mt_dataset *ref, *lz;
        mt_data_set_mpi_comm(NULL);
        MT_CHECK_OK(mt_dataset_hdf5_mode(&ref, path, names[k], "y", MT_DATA_LOAD_MEMORY));
        MPI_Comm comm = MPI_COMM_WORLD;
        mt_data_set_mpi_comm(&comm);
        MT_CHECK_OK(mt_dataset_hdf5_mode(&lz, path, names[k], "y", MT_DATA_LOAD_LAZY));
        MT_CHECK(mt_dataset_is_lazy(lz) && mt_dataset_is_collective(lz));
        /* one shuffled epoch of global batches of 16; rank r takes its contiguous part */
        mt_data_iter it;
        MT_CHECK_OK(mt_data_iter_init(&it, lz, MT_ITER_SHUFFLED_SEQUENTIAL, 16, 0, 9));
        int64_t rows[16], nr, mine = 0;
        for (int64_t b = 0; b < it.n_batches; b++) {
            MT_CHECK_OK(mt_data_iter_rows(&it, 0, b, rows, &nr));
            int64_t per = (nr + size - 1) / size;
            int64_t lo = rank * per < nr ? rank * per : nr;
            int64_t hi = lo + per < nr ? lo + per : nr;
            check_rows(ref, lz, rows + lo, hi - lo);
            mine += hi - lo;
        }
        /* the ranks read different rows: together exactly the epoch */
        int64_t all = 0;
        MPI_Allreduce(&mine, &all, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
        MT_CHECK_EQ_INT(all, n);
        /* every row to rank 0 (with a repeat); the others select nothing */
        const int64_t some[5] = {52, 0, 7, 7, 1};
        check_rows(ref, lz, some, rank == 0 ? 5 : 0);
        /* independent transfers: only rank 0 gathers, nobody waits for the others */
        MT_CHECK_OK(mt_dataset_set_collective(lz, false));
        MT_CHECK(!mt_dataset_is_collective(lz));
        if (rank == 0) check_rows(ref, lz, some + 1, 3);
        MT_CHECK_OK(mt_dataset_set_collective(lz, true));
        check_rows(ref, lz, some + 2, rank == 1 ? 2 : 1);
        mt_data_iter_clear(&it);
        mt_dataset_free(lz); /* collective close */
        mt_dataset_free(ref);
    }
    mt_data_set_mpi_comm(NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
}

#endif

MT_TEST(collective_hdf5_shards_equal_serial_read)
{
#if MT_HAVE_HDF5 && defined(H5_HAVE_PARALLEL)
    collective_case();
#else
    MT_SKIP("needs a parallel HDF5 (libhdf5-openmpi-dev) and MT_WITH_HDF5=ON");
#endif
}
