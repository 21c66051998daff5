/* Lazy datasets (src/data/lazy.c): batches gathered from a file-backed dataset are bit-identical
 * to the in-memory dataset's for raw IDX (Fashion-MNIST, un-gzipped into the case's temporary
 * folder), MNIST's options, .npy of several dtypes and byte orders, and HDF5 (integer, float64
 * and gzip-chunked datasets); the byte counter shows that only the requested rows are read;
 * gzip IDX and Fortran-ordered .npy load in memory (with an info line); bad rows and files that
 * shrink after opening give errors naming the file and the row; slices, shuffling,
 * materializing and preprocessors work on lazy datasets; the process default load mode. */
#include <unistd.h>
#include <zlib.h>

#include "test_data_h5.h"
#include "test_data_util.h"

/* ---------------------------------------------------------------- helpers */

static mt_device *host_dev(void)
{
    static mt_device *dev;
    if (!dev) MT_CHECK_OK(mt_device_open(&dev, "host"));
    return dev;
}

static const void *arr_bytes(const mt_array *a)
{
    return (const char *)mt_buffer_host_ptr(a->buf) + a->offset;
}

static void check_same_arrays(const mt_array *a, const mt_array *b)
{
    MT_CHECK(a->buf && b->buf);
    MT_CHECK_EQ_INT(a->dtype, b->dtype);
    MT_CHECK_EQ_INT(a->ndim, b->ndim);
    for (int32_t i = 0; i < a->ndim; i++)
        MT_CHECK_EQ_INT(a->dims[i], b->dims[i]);
    MT_CHECK(memcmp(arr_bytes(a), arr_bytes(b), mt_array_nbytes(a)) == 0);
}

/* Gathers rows from both datasets: X and y must be bit-identical. */
static void check_same_batch(const mt_dataset *mem, const mt_dataset *lz, const int64_t *rows,
                             int64_t n)
{
    mt_array xm = {0}, ym = {0}, xl = {0}, yl = {0};
    MT_CHECK_OK(mt_dataset_gather(mem, rows, n, &xm, &ym));
    MT_CHECK_OK(mt_dataset_gather(lz, rows, n, &xl, &yl));
    check_same_arrays(&xm, &xl);
    MT_CHECK(!ym.buf == !yl.buf);
    if (ym.buf) check_same_arrays(&ym, &yl);
    mt_array_clear(&xm);
    mt_array_clear(&ym);
    mt_array_clear(&xl);
    mt_array_clear(&yl);
}

static void check_same_info(const mt_dataset *mem, const mt_dataset *lz)
{
    mt_dataset_info a, b;
    mt_dataset_get_info(mem, &a);
    mt_dataset_get_info(lz, &b);
    MT_CHECK_EQ_INT(a.n, b.n);
    MT_CHECK_EQ_INT(a.dim, b.dim);
    MT_CHECK_EQ_INT(a.topo_ndim, b.topo_ndim);
    for (int i = 0; i < 3; i++)
        MT_CHECK_EQ_INT(a.topo[i], b.topo[i]);
    MT_CHECK(a.has_y == b.has_y && a.y_is_labels == b.y_is_labels);
    MT_CHECK_EQ_INT(a.n_classes, b.n_classes);
    MT_CHECK_EQ_INT(a.y_dim, b.y_dim);
    MT_CHECK(!mt_dataset_is_lazy(mem) && mt_dataset_is_lazy(lz));
    MT_CHECK(mt_dataset_X(lz) == NULL);
}

/* A few batches of two epochs of every iteration mode, plus an empty batch. */
static void check_iteration(const mt_dataset *mem, const mt_dataset *lz, int64_t bs)
{
    mt_dataset_info info;
    mt_dataset_get_info(mem, &info);
    int64_t *rows = mt_malloc((size_t)bs * sizeof *rows);
    MT_CHECK(rows != NULL);
    for (int m = 0; m < MT_ITER_MODE_COUNT; m++) {
        if (m == MT_ITER_RANDOM_SLICE && bs > info.n) continue;
        mt_data_iter it;
        MT_CHECK_OK(mt_data_iter_init(&it, lz, (mt_iter_mode)m, bs, 0, 11));
        for (int64_t e = 0; e < 2; e++)
            for (int64_t b = 0; b < it.n_batches && b < 4; b++) {
                int64_t nr;
                MT_CHECK_OK(mt_data_iter_rows(&it, e, b, rows, &nr));
                check_same_batch(mem, lz, rows, nr);
            }
        /* the short last batch of sequential orders */
        int64_t nr;
        MT_CHECK_OK(mt_data_iter_rows(&it, 0, it.n_batches - 1, rows, &nr));
        check_same_batch(mem, lz, rows, nr);
        mt_data_iter_clear(&it);
    }
    check_same_batch(mem, lz, rows, 0);
    mt_free(rows);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t distinct(const int64_t *rows, int64_t n)
{
    int64_t *c = mt_malloc((size_t)(n ? n : 1) * sizeof *c);
    MT_CHECK(c != NULL);
    memcpy(c, rows, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_i64);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || c[i] != c[i - 1]) k++;
    mt_free(c);
    return k;
}

static void require_fashion(void)
{
    if (!path_exists(MT_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz") ||
        !path_exists(MT_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz"))
        MT_SKIP("Fashion-MNIST not installed at " MT_FASHION_MNIST_DIR
                " (Debian package dataset-fashion-mnist)");
}

/* Un-gzips src into dst. */
static void gunzip_file(const char *src, const char *dst)
{
    gzFile g = gzopen(src, "rb");
    MT_CHECK(g != NULL);
    FILE *f = fopen(dst, "wb");
    MT_CHECK(f != NULL);
    static char buf[1 << 16];
    int r;
    while ((r = gzread(g, buf, sizeof buf)) > 0)
        MT_CHECK(fwrite(buf, 1, (size_t)r, f) == (size_t)r);
    MT_CHECK(r == 0);
    fclose(f);
    gzclose(g);
}

/* Raw copies of Fashion-MNIST's test split in the case's temporary folder, under MNIST's names;
 * returns the folder. */
static const char *raw_fashion(char *img, char *lab, size_t len)
{
    require_fashion();
    snprintf(img, len, "%s/t10k-images-idx3-ubyte", mt_test_tmpdir());
    snprintf(lab, len, "%s/t10k-labels-idx1-ubyte", mt_test_tmpdir());
    gunzip_file(MT_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", img);
    gunzip_file(MT_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", lab);
    return mt_test_tmpdir();
}

static void save_npy(const char *path, mt_dtype dt, int32_t nd, const int64_t *dims,
                     const void *data)
{
    mt_array a = {0};
    MT_CHECK_OK(mt_array_from_host(&a, host_dev(), dt, nd, dims, data));
    MT_CHECK_OK(mt_npy_save(path, &a));
    mt_array_clear(&a);
}

/* An .npy file written by hand: header for descr / shape, then the payload bytes. */
static void write_npy_raw(const char *path, const char *descr, const char *shape,
                          const void *payload, size_t n)
{
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       descr, shape);
    int total = 10 + len + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    MT_CHECK(f != NULL);
    unsigned short hl = (unsigned short)(len + pad + 1);
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    MT_CHECK(fwrite(payload, 1, n, f) == n);
    fclose(f);
}

/* A float32 [n, dim] .npy (values i * dim + j) and int64 labels i % 5. */
static void write_small_npy(const char *x, const char *y, int64_t n, int64_t dim)
{
    float *v = mt_malloc((size_t)(n * dim) * sizeof *v);
    int64_t *l = mt_malloc((size_t)n * sizeof *l);
    MT_CHECK(v && l);
    for (int64_t i = 0; i < n * dim; i++)
        v[i] = (float)i * 0.5f;
    for (int64_t i = 0; i < n; i++)
        l[i] = i % 5;
    int64_t dims[2] = {n, dim};
    save_npy(x, MT_FLOAT32, 2, dims, v);
    if (y) save_npy(y, MT_INT64, 1, dims, l);
    mt_free(v);
    mt_free(l);
}

/* ---------------------------------------------------------------- IDX */

MT_TEST(lazy_idx_fashion_matches_memory)
{
    char img[1024], lab[1024];
    raw_fashion(img, lab, sizeof img);
    mt_dataset *mem, *lz;
    MT_CHECK_OK(mt_dataset_idx_mode(&mem, img, lab, 1.0 / 255.0, MT_DATA_LOAD_MEMORY));
    MT_CHECK_OK(mt_dataset_idx_mode(&lz, img, lab, 1.0 / 255.0, MT_DATA_LOAD_LAZY));
    check_same_info(mem, lz);
    check_iteration(mem, lz, 128);
    mt_dataset_free(mem);
    mt_dataset_free(lz);
}

MT_TEST(lazy_idx_reads_only_requested_rows)
{
    char img[1024], lab[1024];
    raw_fashion(img, lab, sizeof img);
    mt_dataset *lz;
    MT_CHECK_OK(mt_dataset_idx_mode(&lz, img, lab, 1.0 / 255.0, MT_DATA_LOAD_LAZY));
    MT_CHECK_EQ_INT(mt_dataset_bytes_read(lz), 0);
    const int64_t rows[6] = {9000, 5, 6, 7, 5, 123};
    mt_array X = {0}, y = {0};
    MT_CHECK_OK(mt_dataset_gather(lz, rows, 6, &X, &y));
    MT_CHECK_EQ_INT(mt_dataset_bytes_read(lz), 5 * 784); /* 5 distinct rows of 784 bytes */
    mt_data_iter it;
    MT_CHECK_OK(mt_data_iter_init(&it, lz, MT_ITER_RANDOM_UNIFORM, 256, 0, 3));
    int64_t br[256], nr;
    MT_CHECK_OK(mt_data_iter_rows(&it, 0, 0, br, &nr));
    MT_CHECK_OK(mt_dataset_gather(lz, br, nr, &X, &y));
    uint64_t total = (uint64_t)(5 + distinct(br, nr)) * 784;
    MT_CHECK_EQ_INT(mt_dataset_bytes_read(lz), total);
    struct stat sb;
    MT_CHECK(stat(img, &sb) == 0);
    MT_CHECK(total * 20 < (uint64_t)sb.st_size); /* a few rows of a 7.8 MB file */
    mt_data_iter_clear(&it);
    mt_array_clear(&X);
    mt_array_clear(&y);
    mt_dataset_free(lz);
}

MT_TEST(lazy_mnist_options_match_memory)
{
    char img[1024], lab[1024];
    const char *dir = raw_fashion(img, lab, sizeof img);
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    o.dir = dir;
    o.which_set = "test";
    o.start = 100;
    o.stop = 2100;
    o.binarize = true;
    o.shuffle = true;
    o.seed = 5;
    o.load = MT_DATA_LOAD_MEMORY;
    mt_dataset *mem, *lz;
    MT_CHECK_OK(mt_dataset_mnist(&mem, &o));
    o.load = MT_DATA_LOAD_LAZY;
    MT_CHECK_OK(mt_dataset_mnist(&lz, &o));
    check_same_info(mem, lz);
    check_iteration(mem, lz, 100);
    mt_dataset_free(lz);
    mt_dataset_free(mem);
    /* center needs the whole split: loaded in memory */
    o.center = true;
    MT_CHECK_OK(mt_dataset_mnist(&lz, &o));
    MT_CHECK(!mt_dataset_is_lazy(lz));
    mt_dataset_free(lz);
}

static char g_log[4096];

static void capture_log(mt_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == MT_LOG_INFO)
        snprintf(g_log + strlen(g_log), sizeof g_log - strlen(g_log), "%s\n", msg);
}

MT_TEST(lazy_gzip_idx_loads_in_memory_and_says_so)
{
    require_fashion();
    mt_log_set_level(MT_LOG_INFO);
    mt_log_set_callback(capture_log, NULL);
    mt_dataset *d;
    MT_CHECK_OK(mt_dataset_idx_mode(&d, MT_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz",
                                    MT_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", 1.0 / 255.0,
                                    MT_DATA_LOAD_LAZY));
    MT_CHECK(!mt_dataset_is_lazy(d));
    MT_CHECK(mt_dataset_X(d) != NULL);
    MT_CHECK(strstr(g_log, "gzip") != NULL);
    MT_CHECK(strstr(g_log, "t10k-images-idx3-ubyte.gz") != NULL);
    mt_dataset_free(d);
}

/* ---------------------------------------------------------------- .npy */

MT_TEST(lazy_npy_dtypes_match_memory)
{
    const mt_dtype dts[] = {MT_UINT8,   MT_INT8,     MT_INT16,   MT_INT32,   MT_INT64,
                            MT_FLOAT16, MT_BFLOAT16, MT_FLOAT32, MT_FLOAT64, MT_BOOL};
    const int64_t n = 23;
    const int64_t rows[9] = {22, 0, 5, 5, 6, 7, 21, 3, 0};
    int64_t *l = mt_malloc((size_t)n * sizeof *l);
    double *v = mt_malloc((size_t)n * 12 * sizeof *v);
    char *buf = mt_malloc((size_t)n * 12 * 8);
    MT_CHECK(l && v && buf);
    for (int64_t i = 0; i < n; i++)
        l[i] = (i * 3) % 4;
    for (int64_t i = 0; i < n * 12; i++)
        v[i] = (double)((i * 37) % 101) * 0.1 - 3.3;
    char yp[1024];
    int64_t yd[1] = {n};
    save_npy(tmp_file(yp, sizeof yp, "y.npy"), MT_INT64, 1, yd, l);
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        mt_dtype_convert(buf, dts[k], (ptrdiff_t)mt_dtype_size(dts[k]), v, MT_FLOAT64, 8,
                         (size_t)(n * 12));
        char xp[1024], name[64];
        snprintf(name, sizeof name, "x_%s.npy", mt_dtype_name(dts[k]));
        /* 3-d (n, 4, 3): images with topology; the odd ones 2-d (n, 12) */
        int64_t d3[3] = {n, 4, 3}, d2[2] = {n, 12};
        bool three = k % 2 == 0;
        save_npy(tmp_file(xp, sizeof xp, name), dts[k], three ? 3 : 2, three ? d3 : d2, buf);
        mt_dataset *mem, *lz;
        MT_CHECK_OK(mt_dataset_npy_mode(&mem, xp, yp, MT_DATA_LOAD_MEMORY));
        MT_CHECK_OK(mt_dataset_npy_mode(&lz, xp, yp, MT_DATA_LOAD_LAZY));
        check_same_info(mem, lz);
        check_same_batch(mem, lz, rows, 9);
        check_iteration(mem, lz, 7);
        MT_CHECK(mt_dataset_bytes_read(lz) > 0);
        mt_dataset_free(mem);
        mt_dataset_free(lz);
    }
    /* a big-endian file ('>i4', '>f8'): swapped as the in-memory reader swaps */
    int32_t be[30];
    for (int i = 0; i < 30; i++) {
        uint32_t x = (uint32_t)(i * 100003 - 700000);
        be[i] = (int32_t)__builtin_bswap32(x);
    }
    char bp[1024];
    write_npy_raw(tmp_file(bp, sizeof bp, "be_i4.npy"), ">i4", "(6, 5)", be, sizeof be);
    uint64_t bf[12];
    for (int i = 0; i < 12; i++) {
        double x = i / 7.0 - 0.5;
        uint64_t u;
        memcpy(&u, &x, 8);
        bf[i] = __builtin_bswap64(u);
    }
    char fp[1024];
    write_npy_raw(tmp_file(fp, sizeof fp, "be_f8.npy"), ">f8", "(4, 3)", bf, sizeof bf);
    const char *paths[2] = {bp, fp};
    for (int k = 0; k < 2; k++) {
        mt_dataset *mem, *lz;
        MT_CHECK_OK(mt_dataset_npy_mode(&mem, paths[k], NULL, MT_DATA_LOAD_MEMORY));
        MT_CHECK_OK(mt_dataset_npy_mode(&lz, paths[k], NULL, MT_DATA_LOAD_LAZY));
        check_same_info(mem, lz);
        const int64_t r[4] = {3, 1, 0, 2};
        check_same_batch(mem, lz, r, 4);
        mt_dataset_free(mem);
        mt_dataset_free(lz);
    }
    mt_free(l);
    mt_free(v);
    mt_free(buf);
}

MT_TEST(lazy_npy_fortran_loads_in_memory)
{
    mt_array a = {0};
    int64_t dims[2] = {9, 4};
    MT_CHECK_OK(mt_array_empty(&a, host_dev(), MT_FLOAT32, 2, dims, 'F'));
    float *p = (float *)((char *)mt_buffer_host_ptr(a.buf) + a.offset);
    for (int i = 0; i < 36; i++)
        p[i] = (float)i;
    char xp[1024];
    MT_CHECK_OK(mt_npy_save(tmp_file(xp, sizeof xp, "f.npy"), &a));
    mt_array_clear(&a);
    mt_log_set_level(MT_LOG_INFO);
    mt_log_set_callback(capture_log, NULL);
    mt_dataset *mem, *d;
    MT_CHECK_OK(mt_dataset_npy_mode(&mem, xp, NULL, MT_DATA_LOAD_MEMORY));
    MT_CHECK_OK(mt_dataset_npy_mode(&d, xp, NULL, MT_DATA_LOAD_LAZY));
    MT_CHECK(!mt_dataset_is_lazy(d));
    MT_CHECK(strstr(g_log, "Fortran") != NULL);
    MT_CHECK(memcmp(mt_dataset_X(d), mt_dataset_X(mem), 36 * sizeof(float)) == 0);
    MT_CHECK(mt_dataset_X(d)[1] == 9.0f); /* row 0 is (0, 9, 18, 27) */
    mt_dataset_free(mem);
    mt_dataset_free(d);
}

/* ---------------------------------------------------------------- HDF5 */

MT_TEST(lazy_hdf5_matches_memory)
{
#if MT_HAVE_HDF5
    char path[1024];
    const int64_t n = 41;
    write_lazy_h5(tmp_file(path, sizeof path, "lazy.h5"), n);
    const char *names[3] = {"X", "Xf", "Xc"};
    const uint64_t row_bytes[3] = {12 * 2, 5 * 8, 6 * 4};
    const int64_t rows[8] = {40, 3, 4, 5, 3, 17, 0, 39};
    for (int k = 0; k < 3; k++) {
        mt_dataset *mem, *lz;
        MT_CHECK_OK(mt_dataset_hdf5_mode(&mem, path, names[k], "y", MT_DATA_LOAD_MEMORY));
        MT_CHECK_OK(mt_dataset_hdf5_mode(&lz, path, names[k], "y", MT_DATA_LOAD_LAZY));
        check_same_info(mem, lz);
        MT_CHECK(!mt_dataset_is_collective(lz));
        MT_CHECK_OK(mt_dataset_set_collective(lz, false));
        MT_CHECK_ERR(mt_dataset_set_collective(lz, true), MT_ERR_INVALID, "MPI-IO");
        check_same_batch(mem, lz, rows, 8);
        MT_CHECK_EQ_INT(mt_dataset_bytes_read(lz), 7 * row_bytes[k]);
        check_same_batch(mem, lz, rows, 0);
        MT_CHECK_EQ_INT(mt_dataset_bytes_read(lz), 7 * row_bytes[k]);
        check_iteration(mem, lz, 6);
        if (k == 1) { /* float64 rounded to float32 once, as the whole-file read does */
            mt_array X = {0};
            MT_CHECK_OK(mt_dataset_gather(lz, rows + 1, 1, &X, NULL));
            MT_CHECK(((const float *)arr_bytes(&X))[2] == (float)h5_xf_value(3, 2));
            mt_array_clear(&X);
        }
        mt_dataset_free(mem);
        mt_dataset_free(lz);
    }
    /* out of range rows name the file */
    mt_dataset *lz;
    MT_CHECK_OK(mt_dataset_hdf5_mode(&lz, path, "X", NULL, MT_DATA_LOAD_LAZY));
    const int64_t bad[2] = {1, 41};
    mt_array X = {0};
    MT_CHECK_ERR(mt_dataset_gather(lz, bad, 2, &X, NULL), MT_ERR_RANGE, "lazy.h5");
    mt_array_clear(&X);
    mt_dataset_free(lz);
#else
    MT_SKIP("built without HDF5 (MT_WITH_HDF5=OFF)");
#endif
}

/* ---------------------------------------------------------------- errors */

MT_TEST(lazy_bad_row_names_file_and_row)
{
    char xp[1024];
    write_small_npy(tmp_file(xp, sizeof xp, "small.npy"), NULL, 24, 3);
    mt_dataset *lz;
    MT_CHECK_OK(mt_dataset_npy_mode(&lz, xp, NULL, MT_DATA_LOAD_LAZY));
    mt_array X = {0};
    const int64_t rows[3] = {0, 24, 1};
    MT_CHECK_ERR(mt_dataset_gather(lz, rows, 3, &X, NULL), MT_ERR_RANGE, "small.npy");
    MT_CHECK(strstr(mt_last_error(), "row 24") != NULL);
    const int64_t neg[1] = {-1};
    MT_CHECK_ERR(mt_dataset_gather(lz, neg, 1, &X, NULL), MT_ERR_RANGE, "row -1");
    MT_CHECK_EQ_INT(mt_dataset_bytes_read(lz), 0);
    mt_array_clear(&X);
    mt_dataset_free(lz);
}

MT_TEST(lazy_truncated_file_names_row)
{
    /* .npy shrinking after it was opened: mid-row 25 of 50 rows of 8 floats */
    char xp[1024];
    write_small_npy(tmp_file(xp, sizeof xp, "t.npy"), NULL, 50, 8);
    mt_npy_info info;
    MT_CHECK_OK(mt_npy_read_info(&info, xp, 0));
    mt_dataset *lz;
    MT_CHECK_OK(mt_dataset_npy_mode(&lz, xp, NULL, MT_DATA_LOAD_LAZY));
    MT_CHECK(truncate(xp, (off_t)(info.data_offset + 25 * 32 + 10)) == 0);
    mt_array X = {0};
    const int64_t ok[2] = {24, 3};
    MT_CHECK_OK(mt_dataset_gather(lz, ok, 2, &X, NULL));
    const int64_t rows[3] = {26, 24, 25};
    MT_CHECK_ERR(mt_dataset_gather(lz, rows, 3, &X, NULL), MT_ERR_FORMAT, "t.npy");
    MT_CHECK(strstr(mt_last_error(), "row 25") != NULL);
    MT_CHECK(strstr(mt_last_error(), "truncated") != NULL);
    mt_dataset_free(lz);
    /* truncated before opening: refused when opened, naming the file */
    MT_CHECK_ERR(mt_dataset_npy_mode(&lz, xp, NULL, MT_DATA_LOAD_LAZY), MT_ERR_FORMAT, "t.npy");
    /* a raw IDX file cut short: refused when opened, with the offset where it ends */
    unsigned char idx[4 + 12 + 10 * 6];
    memset(idx, 7, sizeof idx);
    const unsigned char hdr[16] = {0, 0, 0x08, 3, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0, 0, 3};
    memcpy(idx, hdr, 16);
    char ip[1024];
    write_bytes(tmp_file(ip, sizeof ip, "cut-idx3-ubyte"), idx, sizeof idx - 13);
    MT_CHECK_ERR(mt_dataset_idx_mode(&lz, ip, NULL, 1.0, MT_DATA_LOAD_LAZY), MT_ERR_FORMAT,
                 "cut-idx3-ubyte");
    MT_CHECK(strstr(mt_last_error(), "truncated") != NULL);
    /* whole: opened, then cut to 7 rows */
    write_bytes(ip, idx, sizeof idx);
    MT_CHECK_OK(mt_dataset_idx_mode(&lz, ip, NULL, 1.0, MT_DATA_LOAD_LAZY));
    MT_CHECK(mt_dataset_is_lazy(lz));
    MT_CHECK(truncate(ip, 16 + 7 * 6) == 0);
    const int64_t r9[1] = {9};
    MT_CHECK_ERR(mt_dataset_gather(lz, r9, 1, &X, NULL), MT_ERR_FORMAT, "row 9");
    MT_CHECK(strstr(mt_last_error(), "cut-idx3-ubyte") != NULL);
    mt_array_clear(&X);
    mt_dataset_free(lz);
}

/* ---------------------------------------------------------------- views and preprocessors */

MT_TEST(lazy_slice_shuffle_materialize_preprocess)
{
    char xp[1024], yp[1024];
    write_small_npy(tmp_file(xp, sizeof xp, "v.npy"), tmp_file(yp, sizeof yp, "vy.npy"), 60, 5);
    mt_dataset *mem, *lz, *ms, *ls;
    MT_CHECK_OK(mt_dataset_npy_mode(&mem, xp, yp, MT_DATA_LOAD_MEMORY));
    MT_CHECK_OK(mt_dataset_npy_mode(&lz, xp, yp, MT_DATA_LOAD_LAZY));
    MT_CHECK_OK(mt_dataset_slice(&ms, mem, 7, 47));
    MT_CHECK_OK(mt_dataset_slice(&ls, lz, 7, 47));
    check_same_info(ms, ls);
    check_iteration(ms, ls, 9);
    mt_dataset *ms2, *ls2; /* a slice of a slice */
    MT_CHECK_OK(mt_dataset_slice(&ms2, ms, 3, 30));
    MT_CHECK_OK(mt_dataset_slice(&ls2, ls, 3, 30));
    check_iteration(ms2, ls2, 4);
    /* materialize: the same matrix in memory, file closed */
    MT_CHECK_OK(mt_dataset_materialize(ls2));
    MT_CHECK(!mt_dataset_is_lazy(ls2));
    MT_CHECK(memcmp(mt_dataset_X(ls2), mt_dataset_X(ms2), 27 * 5 * sizeof(float)) == 0);
    /* a preprocessor on a lazy dataset loads it first and gives the in-memory result */
    mt_preprocessor *p1, *p2;
    MT_CHECK_OK(mt_preproc_standardize(&p1, false, false, 1e-4));
    MT_CHECK_OK(mt_preproc_standardize(&p2, false, false, 1e-4));
    MT_CHECK_OK(mt_preproc_apply(p1, ms, true));
    MT_CHECK_OK(mt_preproc_apply(p2, ls, true));
    MT_CHECK(!mt_dataset_is_lazy(ls));
    MT_CHECK(memcmp(mt_dataset_X(ls), mt_dataset_X(ms), 40 * 5 * sizeof(float)) == 0);
    mt_preproc_free(p1);
    mt_preproc_free(p2);
    mt_dataset_free(ms2);
    mt_dataset_free(ls2);
    mt_dataset_free(ms);
    mt_dataset_free(ls);
    mt_dataset_free(mem);
    mt_dataset_free(lz);
}

MT_TEST(lazy_default_load_mode)
{
    char xp[1024];
    write_small_npy(tmp_file(xp, sizeof xp, "m.npy"), NULL, 10, 2);
    mt_dataset *d;
    MT_CHECK(mt_data_default_load() == MT_DATA_LOAD_AUTO);
    MT_CHECK_OK(mt_dataset_npy(&d, xp, NULL)); /* AUTO, small file: memory */
    MT_CHECK(!mt_dataset_is_lazy(d));
    mt_dataset_free(d);
    mt_data_set_default_load(MT_DATA_LOAD_LAZY); /* what a multi-rank run sets */
    MT_CHECK_OK(mt_dataset_npy(&d, xp, NULL));
    MT_CHECK(mt_dataset_is_lazy(d));
    mt_dataset_free(d);
    MT_CHECK_OK(mt_dataset_npy_mode(&d, xp, NULL, MT_DATA_LOAD_MEMORY)); /* explicit wins */
    MT_CHECK(!mt_dataset_is_lazy(d));
    mt_dataset_free(d);
    mt_data_set_default_load(MT_DATA_LOAD_AUTO);
    mt_data_load m;
    MT_CHECK_OK(mt_data_load_from_name(&m, "lazy"));
    MT_CHECK(m == MT_DATA_LOAD_LAZY);
    MT_CHECK_STR_EQ(mt_data_load_name(MT_DATA_LOAD_MEMORY), "memory");
    MT_CHECK_ERR(mt_data_load_from_name(&m, "mmap"), MT_ERR_INVALID, "'mmap'");
}
