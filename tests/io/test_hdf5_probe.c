/* The isolation probe of HDF5 datasets (src/data/hdf5.c): a forked child opens the file and the
 * named datasets and reads their metadata before this process hands the file to libhdf5. It
 * lives beside the checkpoint isolation tests because it shares their hostile inputs
 * (fuzz/crashes/ckpt/: HDF5 files on which libhdf5 crashes or hangs) and their test hook
 * (MLTRAIN_ISOLATE_TEST_CHILD); the files are written here through the checkpoint writer (a
 * checkpoint is an HDF5 file whose params/h0_W is a 2-d float32 dataset). */
#include <errno.h>
#include <sys/wait.h>

#include "../../src/core/isolate.h"
#include "io_test_util.h"
#include "mltrain/data.h"

#ifndef MT_CKPT_HOSTILE_DIR
#error "MT_CKPT_HOSTILE_DIR must name fuzz/crashes/ckpt"
#endif

static char *write_matrix(const char *name)
{
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    float w[6 * 4];
    int64_t labels[6];
    for (int i = 0; i < 24; i++)
        w[i] = (float)xval(i, 0);
    for (int i = 0; i < 6; i++)
        labels[i] = i % 3;
    int64_t dw[2] = {6, 4}, dl[1] = {6};
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/h0_W", MT_FLOAT32, 2, dw, w));
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "labels", MT_INT64, 1, dl, labels));
    char *p = tpath(name);
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    return p;
}

static void check_no_children(void)
{
    errno = 0;
    MT_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* Every hostile input opened as a dataset (X params/h0_W, y params/h0_b), in memory and lazily
 * (want_timeouts: only the timeout-* inputs, in memory only: each costs the 1 s deadline):
 * loaded or an error naming the file, never a crash. */
static void open_hostile(bool want_timeouts)
{
    setenv("MLTRAIN_HDF5_PROBE_TIMEOUT", "1", 0);
    DIR *d = opendir(MT_CKPT_HOSTILE_DIR);
    MT_CHECK(d != NULL);
    struct dirent *e;
    int n = 0, failed = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if ((strncmp(e->d_name, "timeout", 7) == 0) != want_timeouts) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", MT_CKPT_HOSTILE_DIR, e->d_name);
        for (int lazy = 0; lazy < (want_timeouts ? 1 : 2); lazy++) {
            for (int with_y = 0; with_y < 2; with_y++) {
                mt_dataset *ds = NULL;
                mt_status st =
                    mt_dataset_hdf5_mode(&ds, path, "params/h0_W", with_y ? "params/h0_b" : NULL,
                                         lazy ? MT_DATA_LOAD_LAZY : MT_DATA_LOAD_MEMORY);
                printf("%-58s %s%s %s: %.160s\n", e->d_name, lazy ? "lazy" : "memory",
                       with_y ? "+y" : "", mt_status_name(st), st ? mt_last_error() : "");
                if (st == MT_OK) {
                    MT_CHECK(ds != NULL);
                    mt_dataset_free(ds);
                    continue;
                }
                failed++;
                MT_CHECK(ds == NULL);
                if (!strstr(mt_last_error(), path))
                    mt_test_fail(__FILE__, __LINE__, "the message for '%s' does not name it: %s",
                                 path, mt_last_error());
            }
        }
        n++;
    }
    closedir(d);
    check_no_children();
    MT_CHECK(n >= (want_timeouts ? 10 : 30));
    MT_CHECK(failed > 0);
}

MT_TEST(hdf5_probe_hostile_files)
{
    open_hostile(false);
}

MT_TEST(hdf5_probe_hostile_timeouts)
{
    open_hostile(true);
}

/* A good file loads through the probe in both modes; an error the child finds (a missing
 * dataset) comes back with its status and message; a child that hangs ends at the deadline;
 * MLTRAIN_HDF5_PROBE=0 skips the probe. */
MT_TEST(hdf5_probe_results_and_deadline)
{
    char *p = write_matrix("matrix.h5");
    for (int lazy = 0; lazy < 2; lazy++) {
        mt_dataset *ds = NULL;
        MT_CHECK_OK(mt_dataset_hdf5_mode(&ds, p, "params/h0_W", "labels",
                                         lazy ? MT_DATA_LOAD_LAZY : MT_DATA_LOAD_MEMORY));
        mt_dataset_info info;
        mt_dataset_get_info(ds, &info);
        MT_CHECK_EQ_INT(info.n, 6);
        MT_CHECK_EQ_INT(info.dim, 4);
        MT_CHECK(info.y_is_labels);
        mt_dataset_free(ds);
    }
    mt_dataset *ds = NULL;
    MT_CHECK_ERR(mt_dataset_hdf5(&ds, p, "nope", NULL), MT_ERR_NOT_FOUND, "no dataset 'nope'");
    MT_CHECK(strstr(mt_last_error(), "'params'") != NULL); /* the listing of the root group */
    setenv("MLTRAIN_ISOLATE_TEST_CHILD", "hang", 1);
    setenv("MLTRAIN_HDF5_PROBE_TIMEOUT", "0.5", 1);
    MT_CHECK_ERR(mt_dataset_hdf5(&ds, p, "params/h0_W", NULL), MT_ERR_TIMEOUT,
                 "the HDF5 library did not finish probing it within 0.5 s "
                 "(MLTRAIN_HDF5_PROBE_TIMEOUT)");
    MT_CHECK(strstr(mt_last_error(), p) != NULL);
    check_no_children();
    setenv("MLTRAIN_HDF5_PROBE", "0", 1);
    MT_CHECK_OK(mt_dataset_hdf5(&ds, p, "params/h0_W", NULL));
    mt_dataset_free(ds);
    unsetenv("MLTRAIN_HDF5_PROBE");
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    unsetenv("MLTRAIN_HDF5_PROBE_TIMEOUT");
}

/* The probe's child runs under the isolation memory limit: a file whose object header claims
 * 4 GiB fails at once with the limit named, while this process holds far more than the limit
 * (mapped, untouched), and a good file still loads under the same limit. */
MT_TEST(hdf5_probe_memory_limit)
{
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    if (mt__isolate_mem_limit(0) == 0) /* tested in tests/core/test_isolate.c */
        MT_SKIP("a sanitizer build: the child has no memory limit");
    char *ballast = mt_malloc((size_t)512 << 20);
    MT_CHECK(ballast != NULL);
    setenv("MLTRAIN_ISOLATE_MAX_MB", "64", 1);
    setenv("MLTRAIN_HDF5_PROBE_TIMEOUT", "20", 1);
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", MT_CKPT_HOSTILE_DIR,
             "oom-hdf5-H5C_protect-header-magic-and-length-damaged");
    mt_dataset *ds = NULL;
    MT_CHECK_ERR(mt_dataset_hdf5(&ds, path, "params/h0_W", NULL), MT_ERR_NOMEM,
                 "within the limit of 64 MiB");
    MT_CHECK(strstr(mt_last_error(), path) != NULL);
    MT_CHECK(ds == NULL);
    char *p = write_matrix("limited.h5");
    MT_CHECK_OK(mt_dataset_hdf5(&ds, p, "params/h0_W", "labels"));
    mt_dataset_free(ds);
    check_no_children();
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    unsetenv("MLTRAIN_HDF5_PROBE_TIMEOUT");
    mt_free(ballast);
}

/* The probe looks the chunk at the origin up in the chunk index (one lookup, not a count of
 * every chunk): datasets written by h5py whose first chunk, or every chunk, was never written
 * (no storage allocated: the lookup finds nothing, which is not an error), whose other chunks
 * are compressed, or with no rows at all, load in both modes. */
MT_TEST(hdf5_probe_chunk_lookup)
{
    char *p = tpath("chunks.h5");
    char script[2048];
    snprintf(script, sizeof script,
             "import h5py, numpy as np\n"
             "with h5py.File('%s', 'w') as f:\n"
             "    f.create_dataset('unwritten', shape=(10, 4), chunks=(2, 4), dtype='f4')\n"
             "    d = f.create_dataset('partial', shape=(10, 4), chunks=(2, 4), dtype='f4',\n"
             "                         compression='gzip')\n"
             "    d[4:10] = np.arange(24, dtype='f4').reshape(6, 4)\n"
             "    d = f.create_dataset('many', shape=(5000, 3), chunks=(1, 3), dtype='f8')\n"
             "    d[:] = np.arange(15000, dtype='f8').reshape(5000, 3)\n"
             "    f.create_dataset('norows', shape=(0, 4), chunks=(2, 4), dtype='f4',\n"
             "                     maxshape=(None, 4))\n",
             p);
    MT_CHECK_EQ_INT(run_python(script, NULL, "h5py numpy", NULL), 0);
    static const struct {
        const char *name;
        int64_t n;
    } cases[] = {{"unwritten", 10}, {"partial", 10}, {"many", 5000}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int lazy = 0; lazy < 2; lazy++) {
            mt_dataset *ds = NULL;
            MT_CHECK_OK(mt_dataset_hdf5_mode(&ds, p, cases[i].name, NULL,
                                             lazy ? MT_DATA_LOAD_LAZY : MT_DATA_LOAD_MEMORY));
            mt_dataset_info info;
            mt_dataset_get_info(ds, &info);
            MT_CHECK_EQ_INT(info.n, cases[i].n);
            mt_dataset_free(ds);
        }
    /* no rows: whatever the dataset reader says of it, the probe lets it through */
    mt_dataset *ds = NULL;
    mt_status st = mt_dataset_hdf5_mode(&ds, p, "norows", NULL, MT_DATA_LOAD_MEMORY);
    printf("norows: %s %s\n", mt_status_name(st), st ? mt_last_error() : "");
    if (st != MT_OK) MT_CHECK(strstr(mt_last_error(), "probing") == NULL);
    mt_dataset_free(ds);
    check_no_children();
}

/* Two lazy datasets of one file open at once (X_train then X_valid, say), then an in-memory
 * one: each later probe's child must not reuse the open file of the earlier lazy datasets,
 * whose descriptors it does not have. */
MT_TEST(hdf5_probe_with_the_file_already_open)
{
    char *p = write_matrix("twice.h5");
    mt_dataset *a = NULL, *b = NULL, *c = NULL;
    MT_CHECK_OK(mt_dataset_hdf5_mode(&a, p, "params/h0_W", "labels", MT_DATA_LOAD_LAZY));
    MT_CHECK_OK(mt_dataset_hdf5_mode(&b, p, "params/h0_W", NULL, MT_DATA_LOAD_LAZY));
    MT_CHECK_OK(mt_dataset_hdf5_mode(&c, p, "params/h0_W", "labels", MT_DATA_LOAD_MEMORY));
    mt_dataset_info ia, ib, ic;
    mt_dataset_get_info(a, &ia);
    mt_dataset_get_info(b, &ib);
    mt_dataset_get_info(c, &ic);
    MT_CHECK_EQ_INT(ia.n, 6);
    MT_CHECK_EQ_INT(ib.n, 6);
    MT_CHECK_EQ_INT(ic.dim, 4);
    mt_dataset_free(a);
    mt_dataset_free(b);
    mt_dataset_free(c);
    check_no_children();
}
