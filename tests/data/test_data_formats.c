/* Dataset objects and the other readers: from_memory / slice / gather (host and, where built,
 * an OpenCL batch array), CIFAR-10 binary batches against NumPy's b01c transposition of the
 * same synthetic records, .npy files written by NumPy (several dtypes, Fortran order, 3-d and
 * 4-d images, label and target files), HDF5 files written by h5py, and their errors. */
#include <errno.h>

#include "mltrain/mt_config.h"
#include "test_data_util.h"

static mt_dataset *small_dataset(void)
{
    float X[5 * 4];
    int64_t y[5] = {2, 0, 1, 2, 0};
    for (int i = 0; i < 20; i++)
        X[i] = (float)i * 0.5f;
    const int64_t topo[3] = {2, 2, 1};
    mt_dataset *d;
    MT_CHECK_OK(mt_dataset_from_memory(&d, "small", 5, 4, X, topo, y, 0, NULL, 0));
    return d;
}

MT_TEST(from_memory_info_and_errors)
{
    mt_dataset *d = small_dataset();
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, 5);
    MT_CHECK_EQ_INT(info.dim, 4);
    MT_CHECK_EQ_INT(info.topo_ndim, 3);
    MT_CHECK(info.has_y && info.y_is_labels);
    MT_CHECK_EQ_INT(info.n_classes, 3);
    MT_CHECK_STR_EQ(info.name, "small");
    MT_CHECK(mt_dataset_Y(d) == NULL);
    MT_CHECK(mt_dataset_X(d)[7] == 3.5f);
    mt_dataset_free(d);
    float X[6] = {0}, Y[6] = {1, 2, 3, 4, 5, 6};
    int64_t bad[3] = {0, 5, 1};
    const int64_t topo[3] = {2, 2, 1};
    MT_CHECK_ERR(mt_dataset_from_memory(&d, "m", 3, 2, X, NULL, bad, 3, NULL, 0), MT_ERR_INVALID,
                 "label 5 of example 1");
    MT_CHECK_ERR(mt_dataset_from_memory(&d, "m", 3, 2, X, topo, NULL, 0, NULL, 0), MT_ERR_SHAPE,
                 "topology 2x2x1 does not match dim 2");
    MT_CHECK_OK(mt_dataset_from_memory(&d, "m", 3, 2, X, NULL, NULL, 0, Y, 2));
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.has_y && !info.y_is_labels);
    MT_CHECK_EQ_INT(info.y_dim, 2);
    MT_CHECK(mt_dataset_labels(d) == NULL && mt_dataset_Y(d)[5] == 6.0f);
    mt_dataset_free(d);
    mt_dataset_free(NULL);
}

MT_TEST(slice_copies_rows)
{
    mt_dataset *d = small_dataset(), *s;
    MT_CHECK_OK(mt_dataset_slice(&s, d, 1, 4));
    mt_dataset_info info;
    mt_dataset_get_info(s, &info);
    MT_CHECK_EQ_INT(info.n, 3);
    MT_CHECK_EQ_INT(info.topo_ndim, 3);
    MT_CHECK_EQ_INT(info.n_classes, 3);
    MT_CHECK_STR_EQ(info.name, "small[1:4]");
    MT_CHECK(mt_dataset_X(s)[0] == 2.0f && mt_dataset_labels(s)[2] == 2);
    mt_dataset_free(s);
    MT_CHECK_ERR(mt_dataset_slice(&s, d, 3, 6), MT_ERR_RANGE, "slice [3, 6)");
    MT_CHECK_OK(mt_dataset_slice(&s, d, 5, 5));
    mt_dataset_get_info(s, &info);
    MT_CHECK_EQ_INT(info.n, 0);
    mt_dataset_free(s);
    mt_dataset_free(d);
}

MT_TEST(gather_rows_into_host_arrays)
{
    mt_dataset *d = small_dataset();
    mt_array X = {0}, y = {0};
    const int64_t rows[3] = {4, 0, 4};
    MT_CHECK_OK(mt_dataset_gather(d, rows, 3, &X, &y));
    MT_CHECK_EQ_INT(X.dtype, MT_FLOAT32);
    MT_CHECK_EQ_INT(X.dims[0], 3);
    MT_CHECK_EQ_INT(X.dims[1], 4);
    MT_CHECK_EQ_INT(y.dtype, MT_INT64);
    const float *xp = mt_buffer_host_ptr(X.buf);
    const int64_t *yp = mt_buffer_host_ptr(y.buf);
    for (int r = 0; r < 3; r++) {
        for (int j = 0; j < 4; j++)
            MT_CHECK(xp[r * 4 + j] == mt_dataset_X(d)[rows[r] * 4 + j]);
        MT_CHECK_EQ_INT(yp[r], mt_dataset_labels(d)[rows[r]]);
    }
    /* same shape: overwritten in place (same buffer) */
    mt_buffer *before = X.buf;
    const int64_t rows2[3] = {1, 2, 3};
    MT_CHECK_OK(mt_dataset_gather(d, rows2, 3, &X, &y));
    MT_CHECK(X.buf == before);
    MT_CHECK(((const float *)mt_buffer_host_ptr(X.buf))[0] == 2.0f);
    /* another shape: reallocated */
    MT_CHECK_OK(mt_dataset_gather(d, rows2, 2, &X, NULL));
    MT_CHECK_EQ_INT(X.dims[0], 2);
    MT_CHECK_ERR(mt_dataset_gather(d, (const int64_t[]){0, 5}, 2, &X, &y), MT_ERR_RANGE,
                 "row 5 (position 1)");
    mt_array_clear(&X);
    mt_array_clear(&y);
    mt_dataset_free(d);
}

MT_TEST(gather_into_device_array)
{
    mt_device *dev;
    if (mt_device_open(&dev, "opencl") != MT_OK) MT_SKIP("no OpenCL device");
    mt_dataset *d = small_dataset();
    mt_array X = {0}, y = {0}, back = {0};
    const int64_t dims[2] = {2, 4}, ydims[1] = {2};
    MT_CHECK_OK(mt_array_zeros(&X, dev, MT_FLOAT32, 2, dims));
    MT_CHECK_OK(mt_array_zeros(&y, dev, MT_INT64, 1, ydims));
    const int64_t rows[2] = {3, 1};
    MT_CHECK_OK(mt_dataset_gather(d, rows, 2, &X, &y));
    MT_CHECK(mt_array_device(&X) == dev); /* filled in place on the device */
    float h[8];
    int64_t hy[2];
    MT_CHECK_OK(mt_array_to_host(h, sizeof h, &X));
    MT_CHECK_OK(mt_array_to_host(hy, sizeof hy, &y));
    for (int j = 0; j < 4; j++)
        MT_CHECK(h[j] == mt_dataset_X(d)[12 + j]);
    MT_CHECK_EQ_INT(hy[1], mt_dataset_labels(d)[1]);
    mt_array_clear(&X);
    mt_array_clear(&y);
    mt_array_clear(&back);
    mt_dataset_free(d);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- CIFAR-10 */

static void check_expect(const mt_dataset *d, const char *xref, const char *yref)
{
    int64_t nx, ny, rows;
    double *ex = load_ref(xref, &nx, &rows);
    double *ey = load_ref(yref, &ny, NULL);
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, rows);
    MT_CHECK_EQ_INT(info.n * info.dim, nx);
    double *got = dataset_X64(d);
    MT_CHECK_ALLCLOSE(got, ex, (size_t)nx, 0, 0);
    for (int64_t i = 0; i < ny; i++)
        MT_CHECK_EQ_INT(mt_dataset_labels(d)[i], (int64_t)ey[i]);
    mt_free(got);
    mt_free(ex);
    mt_free(ey);
}

MT_TEST(cifar10_binary_matches_numpy)
{
    require_refs("cifar/test_batch.bin");
    char dir[1024];
    mt_cifar10_options o;
    mt_cifar10_options_init(&o);
    o.dir = refs_path(dir, sizeof dir, "cifar");
    mt_dataset *d;
    MT_CHECK_OK(mt_dataset_cifar10(&d, &o));
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, 2 + 3 + 4 + 5 + 6);
    MT_CHECK_EQ_INT(info.topo[0], 32);
    MT_CHECK_EQ_INT(info.topo[2], 3);
    MT_CHECK_EQ_INT(info.n_classes, 10);
    check_expect(d, "cifar/expect_train_X.npy", "cifar/expect_train_y.npy");
    mt_dataset *c;
    o.center = o.rescale = true;
    o.start = 3;
    o.stop = 10;
    MT_CHECK_OK(mt_dataset_cifar10(&c, &o));
    mt_dataset_get_info(c, &info);
    MT_CHECK_EQ_INT(info.n, 7);
    MT_CHECK(strstr(info.name, "CIFAR10(train, 3:10)") != NULL);
    for (int64_t i = 0; i < 7 * 3072; i++)
        MT_CHECK_CLOSE(mt_dataset_X(c)[i], (mt_dataset_X(d)[3 * 3072 + i] - 127.5) / 127.5, 1e-6,
                       0);
    mt_dataset_free(c);
    mt_dataset_free(d);
    o.center = o.rescale = false;
    o.start = 0;
    o.stop = -1;
    o.which_set = "test";
    MT_CHECK_OK(mt_dataset_cifar10(&d, &o));
    check_expect(d, "cifar/expect_test_X.npy", "cifar/expect_test_y.npy");
    mt_dataset_free(d);
    o.which_set = "valid";
    MT_CHECK_ERR(mt_dataset_cifar10(&d, &o), MT_ERR_INVALID, "which_set 'valid'");
    o.which_set = "test";
    o.stop = 7;
    MT_CHECK_ERR(mt_dataset_cifar10(&d, &o), MT_ERR_RANGE, "outside its 6 examples");
}

MT_TEST(cifar10_malformed)
{
    char dir[1024], p[1200];
    snprintf(dir, sizeof dir, "%s/cifar", mt_test_tmpdir());
    mkdir(dir, 0700);
    mt_cifar10_options o;
    mt_cifar10_options_init(&o);
    o.dir = dir;
    o.which_set = "test";
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_cifar10(&d, &o), MT_ERR_NOT_FOUND, "test_batch.bin");
    unsigned char *rec = mt_calloc(3, 3073);
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    write_bytes(p, rec, 2 * 3073 + 100);
    MT_CHECK_ERR(mt_dataset_cifar10(&d, &o), MT_ERR_FORMAT, "truncated record 2 at offset 6146");
    rec[3073] = 12;
    write_bytes(p, rec, 3 * 3073);
    MT_CHECK_ERR(mt_dataset_cifar10(&d, &o), MT_ERR_FORMAT,
                 "label 12 of record 1 (byte offset 3073)");
    write_bytes(p, rec, 0);
    MT_CHECK_ERR(mt_dataset_cifar10(&d, &o), MT_ERR_FORMAT, "empty file");
    mt_free(rec);
}

/* ---------------------------------------------------------------- npy */

static mt_dataset *load_npy(const char *x, const char *y)
{
    char px[1024], py[1024];
    mt_dataset *d;
    MT_CHECK_OK(
        mt_dataset_npy(&d, refs_path(px, sizeof px, x), y ? refs_path(py, sizeof py, y) : NULL));
    return d;
}

MT_TEST(npy_written_by_numpy)
{
    require_refs("npy/x_f64.npy");
    int64_t n;
    mt_dataset *d = load_npy("npy/x_f64.npy", "npy/y_i32.npy");
    double *ex = load_ref("npy/expect_x_f64.npy", &n, NULL), *got = dataset_X64(d);
    MT_CHECK_ALLCLOSE(got, ex, (size_t)n, 0, 0);
    double *ey = load_ref("npy/y_i32.npy", &n, NULL);
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.y_is_labels && info.topo_ndim == 0);
    int64_t mx = 0;
    for (int64_t i = 0; i < n; i++) {
        MT_CHECK_EQ_INT(mt_dataset_labels(d)[i], (int64_t)ey[i]);
        if ((int64_t)ey[i] > mx) mx = (int64_t)ey[i];
    }
    MT_CHECK_EQ_INT(info.n_classes, mx + 1);
    mt_free(ex);
    mt_free(ey);
    mt_free(got);
    mt_dataset_free(d);
    /* float targets (n, 3), and (n, 1) integer labels */
    d = load_npy("npy/x_f64.npy", "npy/y_f64_2d.npy");
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.has_y && !info.y_is_labels && info.y_dim == 3);
    ey = load_ref("npy/y_f64_2d.npy", &n, NULL);
    for (int64_t i = 0; i < n; i++)
        MT_CHECK(mt_dataset_Y(d)[i] == (float)ey[i]);
    mt_free(ey);
    mt_dataset_free(d);
    d = load_npy("npy/x_f64.npy", "npy/y_i64_col.npy");
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.y_is_labels);
    mt_dataset_free(d);
}

MT_TEST(npy_images_fortran_and_errors)
{
    require_refs("npy/x_u8_4d.npy");
    const char *xs[3] = {"npy/x_u8_4d.npy", "npy/x_fortran.npy", "npy/x_i16_3d.npy"};
    const int64_t topo_expect[3][3] = {{4, 3, 2}, {0, 0, 0}, {3, 5, 1}};
    for (int k = 0; k < 3; k++) {
        mt_dataset *d = load_npy(xs[k], k == 1 ? "npy/y_f32_1d.npy" : NULL);
        char ref[256];
        snprintf(ref, sizeof ref, "npy/expect_%s", xs[k] + 4);
        int64_t n;
        double *ex = load_ref(ref, &n, NULL), *got = dataset_X64(d);
        MT_CHECK_ALLCLOSE(got, ex, (size_t)n, 0, 0);
        mt_dataset_info info;
        mt_dataset_get_info(d, &info);
        MT_CHECK_EQ_INT(info.topo_ndim, topo_expect[k][0] ? 3 : 0);
        for (int t = 0; t < 3 && topo_expect[k][0]; t++)
            MT_CHECK_EQ_INT(info.topo[t], topo_expect[k][t]);
        if (k == 1) MT_CHECK(info.has_y && !info.y_is_labels && info.y_dim == 1);
        mt_free(ex);
        mt_free(got);
        mt_dataset_free(d);
    }
    char px[1024], py[1024];
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_npy(&d, refs_path(px, sizeof px, "npy/y_i32.npy"), NULL), MT_ERR_SHAPE,
                 "want 2-d");
    MT_CHECK_ERR(mt_dataset_npy(&d, refs_path(px, sizeof px, "npy/x_f64.npy"),
                                refs_path(py, sizeof py, "npy/y_short.npy")),
                 MT_ERR_SHAPE, "do not match the 20 examples");
    MT_CHECK_ERR(mt_dataset_npy(&d, refs_path(px, sizeof px, "npy/x_u8_4d.npy"),
                                refs_path(py, sizeof py, "npy/y_neg.npy")),
                 MT_ERR_FORMAT, "label -1 of example 2");
    /* a truncated .npy file: mt_npy_load's checks, naming the file */
    char tp[1024];
    size_t len;
    char *data;
    MT_CHECK_OK(mt_file_read_all(refs_path(px, sizeof px, "npy/x_f64.npy"), &data, &len, 0));
    write_bytes(tmp_file(tp, sizeof tp, "cut.npy"), data, len - 40);
    MT_CHECK_ERR(mt_dataset_npy(&d, tp, NULL), MT_ERR_FORMAT, "truncated");
    MT_CHECK(strstr(mt_last_error(), tp) != NULL);
    mt_free(data);
    MT_CHECK_ERR(mt_dataset_npy(&d, "/nonexistent.npy", NULL), MT_ERR_IO, "/nonexistent.npy");
}

/* ---------------------------------------------------------------- HDF5 */

MT_TEST(hdf5_written_by_h5py)
{
#if !MT_HAVE_HDF5
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_hdf5(&d, "x.h5", "X", NULL), MT_ERR_NOT_BUILT, "MT_WITH_HDF5=ON");
    MT_SKIP("HDF5 not built (-DMT_WITH_HDF5=ON): only the ERR_NOT_BUILT answer was checked");
#else
    require_refs("h5/data.h5");
    char p[1024];
    refs_path(p, sizeof p, "h5/data.h5");
    mt_dataset *d;
    int64_t n;
    MT_CHECK_OK(mt_dataset_hdf5(&d, p, "X", "y"));
    double *ex = load_ref("npy/expect_x_f64.npy", &n, NULL), *got = dataset_X64(d);
    MT_CHECK_ALLCLOSE(got, ex, (size_t)n, 0, 0);
    double *ey = load_ref("npy/y_i32.npy", &n, NULL);
    for (int64_t i = 0; i < n; i++)
        MT_CHECK_EQ_INT(mt_dataset_labels(d)[i], (int64_t)ey[i]);
    mt_free(got);
    mt_free(ey);
    mt_dataset_free(d);
    /* gzip-compressed chunked X, float targets, (n, 1) labels */
    MT_CHECK_OK(mt_dataset_hdf5(&d, p, "Xz", "yf"));
    got = dataset_X64(d);
    MT_CHECK_ALLCLOSE(got, ex, (size_t)n * 7, 0, 0);
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.has_y && !info.y_is_labels && info.y_dim == 3);
    mt_free(got);
    mt_dataset_free(d);
    MT_CHECK_OK(mt_dataset_hdf5(&d, p, "X", "ycol"));
    mt_dataset_get_info(d, &info);
    MT_CHECK(info.y_is_labels);
    mt_dataset_free(d);
    mt_free(ex);
    /* 4-d b01c uint8 */
    MT_CHECK_OK(mt_dataset_hdf5(&d, p, "topo", "ytopo"));
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.topo[0], 4);
    MT_CHECK_EQ_INT(info.topo[1], 3);
    MT_CHECK_EQ_INT(info.topo[2], 2);
    MT_CHECK_EQ_INT(info.n_classes, 3);
    ex = load_ref("npy/expect_x_u8_4d.npy", &n, NULL);
    got = dataset_X64(d);
    MT_CHECK_ALLCLOSE(got, ex, (size_t)n, 0, 0);
    mt_free(got);
    mt_free(ex);
    mt_dataset_free(d);
    /* errors */
    MT_CHECK_ERR(mt_dataset_hdf5(&d, p, "nope", NULL), MT_ERR_NOT_FOUND, "no dataset 'nope'");
    MT_CHECK(strstr(mt_last_error(), "'X'") != NULL); /* lists what the file has */
    MT_CHECK_ERR(mt_dataset_hdf5(&d, p, "X", "yshort"), MT_ERR_NOT_FOUND, "yshort");
    MT_CHECK_ERR(mt_dataset_hdf5(&d, p, "X", "ytopo"), MT_ERR_SHAPE, "n = 20");
    MT_CHECK_ERR(mt_dataset_hdf5(&d, p, "names", NULL), MT_ERR_FORMAT, "not numeric");
    MT_CHECK_ERR(mt_dataset_hdf5(&d, p, "grp", NULL), MT_ERR_FORMAT, "grp");
    char tp[1024];
    write_bytes(tmp_file(tp, sizeof tp, "fake.h5"), "not hdf5 at all", 15);
    MT_CHECK_ERR(mt_dataset_hdf5(&d, tp, "X", NULL), MT_ERR_FORMAT, "not an HDF5 file");
    size_t len;
    char *data;
    MT_CHECK_OK(mt_file_read_all(p, &data, &len, 0));
    write_bytes(tmp_file(tp, sizeof tp, "cut.h5"), data, len / 2);
    mt_err_clear();
    mt_status st = mt_dataset_hdf5(&d, tp, "X", NULL);
    printf("truncated HDF5: %s\n", mt_last_error());
    MT_CHECK(st == MT_ERR_FORMAT && strstr(mt_last_error(), tp));
    mt_free(data);
    MT_CHECK_ERR(mt_dataset_hdf5(&d, "/nonexistent.h5", "X", NULL), MT_ERR_IO, "/nonexistent.h5");
#endif
}

/* ---------------------------------------------------------------- allocation failures */

/* Runs op with the n-th allocation failing for n = 1, 2, ... until it succeeds: every failure
 * must be reported (no crash; the sanitizer build also checks nothing leaks). */
static void each_alloc_failure(const char *what, mt_status (*op)(void *), void *ctx)
{
    for (int64_t n = 1; n < 500; n++) {
        mt_err_clear();
        mt_alloc_fail_after(n);
        mt_status st = op(ctx);
        mt_alloc_fail_after(0);
        if (st == MT_OK) {
            printf("%s: %lld failing allocations reported, then success\n", what, (long long)n - 1);
            MT_CHECK(n > 2);
            return;
        }
        if (!*mt_last_error())
            mt_test_fail(__FILE__, __LINE__, "%s: allocation %lld failed with %s and no message",
                         what, (long long)n, mt_status_name(st));
    }
    mt_test_fail(__FILE__, __LINE__, "%s never succeeded", what);
}

static mt_status op_npy(void *ctx)
{
    (void)ctx;
    char px[1024], py[1024];
    mt_dataset *d;
    mt_status st = mt_dataset_npy(&d, refs_path(px, sizeof px, "npy/x_fortran.npy"),
                                  refs_path(py, sizeof py, "npy/y_f32_1d.npy"));
    mt_dataset_free(st == MT_OK ? d : NULL);
    return st;
}

static mt_status op_cifar(void *ctx)
{
    (void)ctx;
    char dir[1024];
    mt_cifar10_options o;
    mt_cifar10_options_init(&o);
    o.dir = refs_path(dir, sizeof dir, "cifar");
    o.start = 2;
    mt_dataset *d;
    mt_status st = mt_dataset_cifar10(&d, &o);
    mt_dataset_free(st == MT_OK ? d : NULL);
    return st;
}

static mt_status op_preproc(void *ctx)
{
    const mt_dataset *src = ctx;
    mt_dataset *d;
    mt_preprocessor *items[3] = {NULL, NULL, NULL}, *p = NULL;
    mt_status st = mt_dataset_slice(&d, src, 0, 20);
    if (st != MT_OK) return st;
    if ((st = mt_preproc_standardize(&items[0], false, false, 1e-4)) == MT_OK &&
        (st = mt_preproc_zca(&items[1], 0, 0, 0.1)) == MT_OK &&
        (st = mt_preproc_pca(&items[2], 3, true)) == MT_OK)
        st = mt_preproc_pipeline(&p, 3, items);
    else
        for (int i = 0; i < 3; i++)
            mt_preproc_free(items[i]);
    if (st == MT_OK) st = mt_preproc_apply(p, d, true);
    mt_preproc_free(p);
    mt_dataset_free(d);
    return st;
}

static mt_status op_iter_gather(void *ctx)
{
    const mt_dataset *d = ctx;
    mt_data_iter it;
    int64_t rows[8], k;
    mt_array X = {0}, y = {0};
    mt_status st = mt_data_iter_init(&it, d, MT_ITER_SHUFFLED_SEQUENTIAL, 8, 0, 3);
    if (st == MT_OK) st = mt_data_iter_rows(&it, 1, 0, rows, &k);
    if (st == MT_OK) st = mt_dataset_gather(d, rows, k, &X, &y);
    mt_array_clear(&X);
    mt_array_clear(&y);
    mt_data_iter_clear(&it);
    return st;
}

MT_TEST(allocation_failures_are_reported)
{
    require_refs("npy/x_fortran.npy");
    each_alloc_failure("npy", op_npy, NULL);
    each_alloc_failure("cifar", op_cifar, NULL);
    char p[1024];
    mt_dataset *d;
    MT_CHECK_OK(mt_dataset_npy(&d, refs_path(p, sizeof p, "pp/train.npy"), NULL));
    each_alloc_failure("preprocessors", op_preproc, d);
    each_alloc_failure("iterate and gather", op_iter_gather, d);
    mt_dataset_free(d);
}
