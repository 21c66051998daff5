/* IDX / MNIST reader tests: the real Fashion-MNIST files (gzip, and raw copies gunzipped at
 * build time) against an independent gzip + NumPy reading (refs/fashion_refs.txt), MNIST
 * options (center, binarize, start/stop, shuffle), every IDX element type with byte swapping,
 * and malformed files (bad magic, huge dims, truncation, trailing bytes, empty, corrupt gzip,
 * limits, mismatched label files), each with a clear error naming the file. */
#include <zlib.h>

#include "test_data_util.h"

/* ---------------------------------------------------------------- the NumPy references */

typedef struct px_ref {
    int64_t i, j, v, label;
    float f;
} px_ref;

typedef struct split_ref {
    int64_t n, rows, cols, counts[10], sum, first[20];
    int32_t npx;
    px_ref px[64];
} split_ref;

static void read_split_ref(const char *split, split_ref *r)
{
    require_refs("fashion_refs.txt");
    char p[1024], line[512], name[32];
    FILE *f = fopen(refs_path(p, sizeof p, "fashion_refs.txt"), "r");
    MT_CHECK(f != NULL);
    bool in = false, found = false;
    memset(r, 0, sizeof *r);
    while (fgets(line, sizeof line, f)) {
        long long n, rows, cols;
        if (sscanf(line, "split %31s %lld %lld %lld", name, &n, &rows, &cols) == 4) {
            in = strcmp(name, split) == 0;
            if (in) {
                r->n = n;
                r->rows = rows;
                r->cols = cols;
            }
            found |= in;
            continue;
        }
        if (!in) continue;
        if (strncmp(line, "counts", 6) == 0) {
            char *s = line + 6;
            for (int k = 0; k < 10; k++)
                r->counts[k] = strtoll(s, &s, 10);
        } else if (strncmp(line, "sum", 3) == 0) {
            r->sum = strtoll(line + 3, NULL, 10);
        } else if (strncmp(line, "label_first", 11) == 0) {
            char *s = line + 11;
            for (int k = 0; k < 20; k++)
                r->first[k] = strtoll(s, &s, 10);
        } else if (strncmp(line, "px", 2) == 0 && r->npx < 64) {
            px_ref *x = &r->px[r->npx++];
            double fv;
            MT_CHECK(sscanf(line, "px %lld %lld %lld %lld %lf", (long long *)&x->i,
                            (long long *)&x->j, (long long *)&x->v, (long long *)&x->label,
                            &fv) == 5);
            x->f = (float)fv;
        } else if (strncmp(line, "end", 3) == 0) {
            in = false;
        }
    }
    fclose(f);
    MT_CHECK(found);
    MT_CHECK(r->npx > 10);
}

/* Everything the reference knows about a split, checked on a loaded dataset. */
static void check_against_ref(const mt_dataset *d, const split_ref *r)
{
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.n, r->n);
    MT_CHECK_EQ_INT(info.dim, r->rows * r->cols);
    MT_CHECK_EQ_INT(info.topo_ndim, 3);
    MT_CHECK_EQ_INT(info.topo[0], r->rows);
    MT_CHECK_EQ_INT(info.topo[1], r->cols);
    MT_CHECK_EQ_INT(info.topo[2], 1);
    MT_CHECK(info.has_y && info.y_is_labels);
    MT_CHECK_EQ_INT(info.n_classes, 10);
    const float *X = mt_dataset_X(d);
    const int64_t *y = mt_dataset_labels(d);
    int64_t counts[10] = {0}, sum = 0;
    for (int64_t i = 0; i < info.n; i++) {
        MT_CHECK(y[i] >= 0 && y[i] < 10);
        counts[y[i]]++;
    }
    for (int k = 0; k < 10; k++)
        MT_CHECK_EQ_INT(counts[k], r->counts[k]);
    for (int64_t i = 0; i < info.n * info.dim; i++) {
        double v = X[i] * 255.0;
        int64_t iv = (int64_t)(v + 0.5);
        MT_CHECK(fabs(v - (double)iv) < 1e-3);
        sum += iv;
    }
    MT_CHECK_EQ_INT(sum, r->sum);
    for (int32_t k = 0; k < r->npx; k++) {
        const px_ref *p = &r->px[k];
        float x = X[p->i * info.dim + p->j];
        if (x != p->f)
            mt_test_fail(__FILE__, __LINE__,
                         "pixel (%lld, %lld): %.9g, NumPy gives %.9g (byte %lld)", (long long)p->i,
                         (long long)p->j, x, p->f, (long long)p->v);
        MT_CHECK_EQ_INT(y[p->i], p->label);
    }
    for (int k = 0; k < 20; k++)
        MT_CHECK_EQ_INT(y[k], r->first[k]);
}

static mt_dataset *load_fashion(const char *dir, const char *which, double *seconds)
{
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    o.dir = dir;
    o.which_set = which;
    mt_dataset *d = NULL;
    double t0 = mt_now_seconds();
    MT_CHECK_OK(mt_dataset_mnist(&d, &o));
    if (seconds) *seconds = mt_now_seconds() - t0;
    return d;
}

static void require_fashion(void)
{
    if (!path_exists(MT_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz"))
        MT_SKIP("Fashion-MNIST not installed at " MT_FASHION_MNIST_DIR
                " (Debian package dataset-fashion-mnist)");
}

MT_TEST(fashion_train_matches_numpy)
{
    require_fashion();
    split_ref r;
    read_split_ref("train", &r);
    double sec;
    mt_dataset *d = load_fashion(MT_FASHION_MNIST_DIR, "train", &sec);
    printf("Fashion-MNIST train (60000 x 784, gzip) loaded in %.3f s\n", sec);
    check_against_ref(d, &r);
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK(strstr(info.name, "MNIST(train, 0:60000") != NULL);
    mt_dataset_free(d);
}

MT_TEST(fashion_test_matches_numpy)
{
    require_fashion();
    split_ref r;
    read_split_ref("t10k", &r);
    double sec;
    mt_dataset *d = load_fashion(MT_FASHION_MNIST_DIR, "test", &sec);
    printf("Fashion-MNIST test (10000 x 784, gzip) loaded in %.3f s\n", sec);
    check_against_ref(d, &r);
    mt_dataset_free(d);
}

MT_TEST(fashion_raw_idx_matches_gzip)
{
    require_fashion();
    require_refs("fashion_raw/t10k-images-idx3-ubyte");
    split_ref r;
    read_split_ref("t10k", &r);
    char dir[1024];
    refs_path(dir, sizeof dir, "fashion_raw");
    double sec;
    mt_dataset *raw = load_fashion(dir, "test", &sec);
    printf("Fashion-MNIST test (raw IDX) loaded in %.3f s\n", sec);
    check_against_ref(raw, &r);
    mt_dataset *gz = load_fashion(MT_FASHION_MNIST_DIR, "test", NULL);
    MT_CHECK(memcmp(mt_dataset_X(raw), mt_dataset_X(gz), (size_t)r.n * 784 * sizeof(float)) == 0);
    MT_CHECK(memcmp(mt_dataset_labels(raw), mt_dataset_labels(gz), (size_t)r.n * 8) == 0);
    /* the generic reader over the same raw files gives the same values */
    char ip[1200], lp[1200];
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte", dir);
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte", dir);
    mt_dataset *idx;
    MT_CHECK_OK(mt_dataset_idx(&idx, ip, lp, 1.0 / 255.0));
    MT_CHECK(memcmp(mt_dataset_X(idx), mt_dataset_X(gz), (size_t)r.n * 784 * sizeof(float)) == 0);
    mt_dataset_info info;
    mt_dataset_get_info(idx, &info);
    MT_CHECK_EQ_INT(info.n_classes, 10);
    MT_CHECK_EQ_INT(info.topo[0], 28);
    /* the train files are not in the raw folder: the error names both candidates */
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    o.dir = dir;
    mt_dataset *none = NULL;
    MT_CHECK_ERR(mt_dataset_mnist(&none, &o), MT_ERR_NOT_FOUND, "train-images-idx3-ubyte.gz");
    MT_CHECK(none == NULL);
    mt_dataset_free(raw);
    mt_dataset_free(gz);
    mt_dataset_free(idx);
}

MT_TEST(idx_load_native_dtype)
{
    require_fashion();
    mt_array a = {0};
    MT_CHECK_OK(mt_idx_load(&a, MT_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", 0));
    MT_CHECK_EQ_INT(a.dtype, MT_UINT8);
    MT_CHECK_EQ_INT(a.ndim, 1);
    MT_CHECK_EQ_INT(a.dims[0], 10000);
    mt_dataset *d = load_fashion(MT_FASHION_MNIST_DIR, "test", NULL);
    const uint8_t *l = mt_buffer_host_ptr(a.buf);
    for (int64_t i = 0; i < 10000; i++)
        MT_CHECK_EQ_INT(l[i], mt_dataset_labels(d)[i]);
    mt_array_clear(&a);
    MT_CHECK_ERR(mt_idx_load(&a, MT_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", 1000000),
                 MT_ERR_RANGE, "limit");
    mt_dataset_free(d);
}

/* ---------------------------------------------------------------- MNIST options */

static mt_dataset *load_test_split(bool center, bool binarize, int64_t start, int64_t stop,
                                   bool shuffle, uint64_t seed)
{
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    o.dir = MT_FASHION_MNIST_DIR;
    o.which_set = "test";
    o.center = center;
    o.binarize = binarize;
    o.start = start;
    o.stop = stop;
    o.shuffle = shuffle;
    o.seed = seed;
    mt_dataset *d = NULL;
    MT_CHECK_OK(mt_dataset_mnist(&d, &o));
    return d;
}

MT_TEST(mnist_center_and_binarize)
{
    require_fashion();
    int64_t cnt;
    double *mean = load_ref("fashion_t10k_colmean.npy", &cnt, NULL);
    MT_CHECK_EQ_INT(cnt, 784);
    mt_dataset *plain = load_test_split(false, false, 0, -1, false, 1);
    mt_dataset *c = load_test_split(true, false, 0, -1, false, 1);
    const float *P = mt_dataset_X(plain), *C = mt_dataset_X(c);
    for (int64_t i = 0; i < 10000 * 784; i += 7)
        MT_CHECK_CLOSE(C[i], (double)P[i] - mean[i % 784], 1e-6, 0);
    /* binarize: x > 0.5; with center the binarized columns are centered (on the whole split) */
    mt_dataset *b = load_test_split(false, true, 0, -1, false, 1);
    mt_dataset *bc = load_test_split(true, true, 0, 5000, false, 1);
    const float *B = mt_dataset_X(b), *BC = mt_dataset_X(bc);
    double *bmean = mt_calloc(784, sizeof(double));
    for (int64_t i = 0; i < 10000 * 784; i++) {
        MT_CHECK(B[i] == (P[i] > 0.5f ? 1.0f : 0.0f));
        bmean[i % 784] += B[i] / 10000.0;
    }
    for (int64_t i = 0; i < 5000 * 784; i += 3)
        MT_CHECK_CLOSE(BC[i], (double)B[i] - bmean[i % 784], 1e-6, 0);
    mt_free(bmean);
    mt_free(mean);
    mt_dataset_free(plain);
    mt_dataset_free(c);
    mt_dataset_free(b);
    mt_dataset_free(bc);
}

/* Sorted per-row fingerprints: the same multiset of rows whatever the order. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t *row_prints(const mt_dataset *d)
{
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    uint64_t *h = mt_malloc((size_t)info.n * sizeof(uint64_t));
    for (int64_t i = 0; i < info.n; i++)
        h[i] = mt_hash64(mt_dataset_X(d) + i * info.dim, (size_t)info.dim * sizeof(float),
                         (uint64_t)mt_dataset_labels(d)[i]);
    qsort(h, (size_t)info.n, sizeof *h, cmp_u64);
    return h;
}

MT_TEST(mnist_start_stop_shuffle)
{
    require_fashion();
    mt_dataset *full = load_test_split(false, false, 0, -1, false, 1);
    mt_dataset *part = load_test_split(false, false, 100, 600, false, 1);
    mt_dataset_info info;
    mt_dataset_get_info(part, &info);
    MT_CHECK_EQ_INT(info.n, 500);
    MT_CHECK(strstr(info.name, "MNIST(test, 100:600") != NULL);
    MT_CHECK(memcmp(mt_dataset_X(part), mt_dataset_X(full) + 100 * 784, 500 * 784 * 4) == 0);
    MT_CHECK(memcmp(mt_dataset_labels(part), mt_dataset_labels(full) + 100, 500 * 8) == 0);
    mt_dataset *s1 = load_test_split(false, false, 100, 600, true, 1);
    mt_dataset *s1b = load_test_split(false, false, 100, 600, true, 1);
    mt_dataset *s2 = load_test_split(false, false, 100, 600, true, 2);
    /* same rows, another order; the same seed gives the same order */
    uint64_t *hp = row_prints(part), *h1 = row_prints(s1), *h2 = row_prints(s2);
    MT_CHECK(memcmp(hp, h1, 500 * 8) == 0);
    MT_CHECK(memcmp(hp, h2, 500 * 8) == 0);
    MT_CHECK(memcmp(mt_dataset_X(s1), mt_dataset_X(s1b), 500 * 784 * 4) == 0);
    MT_CHECK(memcmp(mt_dataset_X(s1), mt_dataset_X(part), 500 * 784 * 4) != 0);
    MT_CHECK(memcmp(mt_dataset_labels(s1), mt_dataset_labels(s2), 500 * 8) != 0);
    /* each shuffled row still carries its own label */
    for (int64_t i = 0; i < 500; i++) {
        bool ok = false;
        for (int64_t k = 0; k < 500 && !ok; k++)
            ok = memcmp(mt_dataset_X(s1) + i * 784, mt_dataset_X(part) + k * 784, 784 * 4) == 0 &&
                 mt_dataset_labels(s1)[i] == mt_dataset_labels(part)[k];
        MT_CHECK(ok);
    }
    mt_free(hp);
    mt_free(h1);
    mt_free(h2);
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    o.dir = MT_FASHION_MNIST_DIR;
    o.which_set = "test";
    mt_dataset *bad = NULL;
    o.start = 20;
    o.stop = 10;
    MT_CHECK_ERR(mt_dataset_mnist(&bad, &o), MT_ERR_RANGE, "start 20 / stop 10");
    o.start = 0;
    o.stop = 10001;
    MT_CHECK_ERR(mt_dataset_mnist(&bad, &o), MT_ERR_RANGE, "10000 examples");
    o.stop = -1;
    o.which_set = "valid";
    MT_CHECK_ERR(mt_dataset_mnist(&bad, &o), MT_ERR_INVALID, "'train', 'test'");
    o.which_set = "test";
    o.dir = "/nonexistent/mnist";
    MT_CHECK_ERR(mt_dataset_mnist(&bad, &o), MT_ERR_NOT_FOUND,
                 "/nonexistent/mnist/t10k-images-idx3-ubyte");
    MT_CHECK(bad == NULL);
    mt_dataset_free(full);
    mt_dataset_free(part);
    mt_dataset_free(s1);
    mt_dataset_free(s1b);
    mt_dataset_free(s2);
}

/* ---------------------------------------------------------------- synthetic IDX files */

/* Header for type code `code` and dims, then `payload` bytes (big-endian already). */
static size_t idx_bytes(unsigned char *buf, int code, int ndim, const uint32_t *dims,
                        const void *payload, size_t plen)
{
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = (unsigned char)code;
    buf[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        buf[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        buf[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        buf[7 + 4 * i] = (unsigned char)dims[i];
    }
    if (plen) memcpy(buf + 4 + 4 * ndim, payload, plen);
    return 4 + 4 * (size_t)ndim + plen;
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    MT_CHECK(g != NULL);
    if (n) MT_CHECK(gzwrite(g, data, (unsigned)n) == (int)n);
    MT_CHECK(gzclose(g) == Z_OK);
}

static unsigned char *read_whole(const char *path, size_t *n)
{
    char *data;
    MT_CHECK_OK(mt_file_read_all(path, &data, n, 0));
    return (unsigned char *)data;
}

MT_TEST(idx_every_type_big_endian)
{
    /* 6 examples of 2x2, values v = 3 * i - 7 stored big-endian in each IDX type */
    const uint32_t dims[3] = {6, 2, 2};
    struct {
        int code;
        size_t size;
        mt_dtype dt;
    } types[] = {{0x08, 1, MT_UINT8}, {0x09, 1, MT_INT8},    {0x0B, 2, MT_INT16},
                 {0x0C, 4, MT_INT32}, {0x0D, 4, MT_FLOAT32}, {0x0E, 8, MT_FLOAT64}};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        unsigned char payload[24 * 8], file[256];
        for (int i = 0; i < 24; i++) {
            double v = types[t].dt == MT_UINT8 ? 10 * i + 5
                                               : 3 * i - 7 + (types[t].code >= 0x0D ? 0.25 : 0);
            unsigned char le[8];
            mt_scalar s = mt_scalar_f64(v);
            mt_scalar_store(&s, types[t].dt, le);
            for (size_t b = 0; b < types[t].size; b++)
                payload[i * types[t].size + b] = le[types[t].size - 1 - b];
        }
        size_t n = idx_bytes(file, types[t].code, 3, dims, payload, 24 * types[t].size);
        char p[1024], name[64];
        snprintf(name, sizeof name, "t%zu.idx%s", t, t % 2 ? ".gz" : "");
        tmp_file(p, sizeof p, name);
        if (t % 2)
            write_gz(p, file, n);
        else
            write_bytes(p, file, n);
        mt_dataset *d;
        MT_CHECK_OK(mt_dataset_idx(&d, p, NULL, 0.5));
        mt_dataset_info info;
        mt_dataset_get_info(d, &info);
        MT_CHECK_EQ_INT(info.n, 6);
        MT_CHECK_EQ_INT(info.dim, 4);
        MT_CHECK(!info.has_y);
        MT_CHECK_EQ_INT(info.topo[2], 1);
        for (int i = 0; i < 24; i++) {
            double v = types[t].dt == MT_UINT8 ? 10 * i + 5
                                               : 3 * i - 7 + (types[t].code >= 0x0D ? 0.25 : 0);
            MT_CHECK_CLOSE(mt_dataset_X(d)[i], v * 0.5, 0, 0);
        }
        mt_dataset_free(d);
        /* native load keeps the dtype and values */
        mt_array a = {0};
        MT_CHECK_OK(mt_idx_load(&a, p, 0));
        MT_CHECK_EQ_INT(a.dtype, types[t].dt);
        MT_CHECK_EQ_INT(a.ndim, 3);
        mt_array_clear(&a);
    }
}

MT_TEST(idx_scale_multiplies_and_4d_topology)
{
    const uint32_t dims[4] = {2, 3, 2, 2};
    unsigned char px[24], file[128], lab[16];
    for (int i = 0; i < 24; i++)
        px[i] = (unsigned char)(i * 10);
    size_t n = idx_bytes(file, 0x08, 4, dims, px, 24);
    char ip[1024], lp[1024];
    write_bytes(tmp_file(ip, sizeof ip, "img4"), file, n);
    const uint32_t ld[1] = {2};
    unsigned char labels[2] = {4, 1};
    n = idx_bytes(lab, 0x08, 1, ld, labels, 2);
    write_bytes(tmp_file(lp, sizeof lp, "lab"), lab, n);
    mt_dataset *d;
    MT_CHECK_OK(mt_dataset_idx(&d, ip, lp, 0.1));
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    MT_CHECK_EQ_INT(info.dim, 12);
    MT_CHECK_EQ_INT(info.topo[0], 3);
    MT_CHECK_EQ_INT(info.topo[1], 2);
    MT_CHECK_EQ_INT(info.topo[2], 2);
    MT_CHECK_EQ_INT(info.n_classes, 5);
    for (int i = 0; i < 24; i++)
        MT_CHECK(mt_dataset_X(d)[i] == (float)(i * 10 * 0.1));
    MT_CHECK_ERR(mt_dataset_idx(&d, ip, lp, 0.0), MT_ERR_INVALID, "scale");
    mt_dataset_free(d);
}

static void expect_idx_error(const char *name, const void *data, size_t n, bool gz, mt_status code,
                             const char *needle)
{
    char p[1024];
    tmp_file(p, sizeof p, name);
    if (gz)
        write_gz(p, data, n);
    else
        write_bytes(p, data, n);
    mt_dataset *d = (mt_dataset *)1;
    MT_CHECK_ERR(mt_dataset_idx(&d, p, NULL, 1.0), code, needle);
    MT_CHECK(d == NULL);
    MT_CHECK(strstr(mt_last_error(), p) != NULL); /* names the file */
}

MT_TEST(idx_bad_magic)
{
    const uint32_t dims[2] = {2, 2};
    unsigned char f[64], px[4] = {1, 2, 3, 4};
    size_t n = idx_bytes(f, 0x08, 2, dims, px, 4);
    f[0] = 0x50;
    expect_idx_error("magic0", f, n, false, MT_ERR_FORMAT, "bad magic number 0x50000802");
    f[0] = 0;
    f[2] = 0x07; /* unknown type code */
    expect_idx_error("magic_type", f, n, true, MT_ERR_FORMAT, "bad magic number 0x00000702");
    f[2] = 0x08;
    f[3] = 1; /* images need >= 2 dims */
    expect_idx_error("magic_rank", f, n, false, MT_ERR_FORMAT, "rank is 1");
    /* a PNG is not an IDX file */
    const unsigned char png[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    expect_idx_error("image.png", png, sizeof png, false, MT_ERR_FORMAT, "bad magic");
}

MT_TEST(idx_huge_dims_rejected_before_allocating)
{
    /* 2^20 x 2^10 x 2^10 = 2^40 elements in a 16-byte file */
    const uint32_t dims[3] = {1u << 20, 1u << 10, 1u << 10};
    unsigned char f[64];
    size_t n = idx_bytes(f, 0x08, 3, dims, NULL, 0);
    mt_alloc_fail_after(1); /* any allocation would fail: the check comes first */
    expect_idx_error("huge", f, n, false, MT_ERR_FORMAT, "field dims (1048576x1024x1024 of uint8)");
    mt_alloc_fail_after(0);
    MT_CHECK(strstr(mt_last_error(), "promises 1099511627792 bytes") != NULL);
    expect_idx_error("huge.gz", f, n, true, MT_ERR_FORMAT, "more than a gzip file");
    /* four dims of 2^32 - 1 overflow 64 bits */
    const uint32_t big[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    n = idx_bytes(f, 0x0E, 4, big, NULL, 0);
    expect_idx_error("overflow", f, n, false, MT_ERR_FORMAT, "overflows");
}

MT_TEST(idx_truncated_and_trailing)
{
    const uint32_t dims[3] = {10, 4, 4};
    unsigned char f[512], px[160];
    for (int i = 0; i < 160; i++)
        px[i] = (unsigned char)i;
    size_t n = idx_bytes(f, 0x08, 3, dims, px, 160);
    MT_CHECK_EQ_INT(n, 176);
    expect_idx_error("trunc", f, 116, false, MT_ERR_FORMAT, "truncated at byte offset 116");
    expect_idx_error("trunc.gz", f, 116, true, MT_ERR_FORMAT,
                     "truncated at decompressed offset 116");
    expect_idx_error("trunc_dims", f, 10, false, MT_ERR_FORMAT, "truncated");
    expect_idx_error("trunc_dims.gz", f, 10, true, MT_ERR_FORMAT, "while reading the dimensions");
    expect_idx_error("trailing", f, 180, false, MT_ERR_FORMAT, "trailing bytes from offset 176");
    expect_idx_error("trailing.gz", f, 180, true, MT_ERR_FORMAT, "trailing data");
    /* a gzip file cut short (its deflate stream ends early) */
    char p[1024], q[1024];
    unsigned char big[40016];
    const uint32_t bd[2] = {100, 400};
    unsigned char *pay = mt_malloc(40000);
    uint32_t s = 12345;
    for (int i = 0; i < 40000; i++) {
        s = s * 1103515245u + 12345u;
        pay[i] = (unsigned char)(s >> 24);
    }
    n = idx_bytes(big, 0x08, 2, bd, pay, 40000);
    write_gz(tmp_file(p, sizeof p, "whole.gz"), big, n);
    size_t gzn;
    unsigned char *gz = read_whole(p, &gzn);
    write_bytes(tmp_file(q, sizeof q, "cut.gz"), gz, gzn / 2);
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_idx(&d, q, NULL, 1.0), MT_ERR_FORMAT,
                 "truncated at decompressed offset");
    MT_CHECK(strstr(mt_last_error(), q) != NULL);
    MT_CHECK_OK(mt_dataset_idx(&d, p, NULL, 1.0));
    mt_dataset_free(d);
    mt_free(gz);
    mt_free(pay);
}

MT_TEST(idx_empty_files)
{
    expect_idx_error("empty", "", 0, false, MT_ERR_FORMAT, "empty file");
    expect_idx_error("empty.gz", "", 0, true, MT_ERR_FORMAT, "empty file");
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_idx(&d, "/nonexistent/x.idx", NULL, 1.0), MT_ERR_IO,
                 "/nonexistent/x.idx");
    MT_CHECK_ERR(mt_dataset_idx(&d, mt_test_tmpdir(), NULL, 1.0), MT_ERR_IO, "not a regular file");
}

MT_TEST(idx_corrupt_gzip)
{
    const uint32_t dims[2] = {50, 100};
    unsigned char *f = mt_malloc(6000), *pay = mt_malloc(5000);
    for (int i = 0; i < 5000; i++)
        pay[i] = (unsigned char)((i * 7) % 251);
    size_t n = idx_bytes(f, 0x08, 2, dims, pay, 5000);
    char p[1024], q[1024];
    write_gz(tmp_file(p, sizeof p, "ok.gz"), f, n);
    size_t gzn;
    unsigned char *gz = read_whole(p, &gzn);
    /* a wrong CRC-32 in the trailer: detected at the end of the stream */
    gz[gzn - 8] ^= 0xFF;
    write_bytes(tmp_file(q, sizeof q, "badcrc.gz"), gz, gzn);
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_idx(&d, q, NULL, 1.0), MT_ERR_FORMAT, "corrupt gzip data");
    MT_CHECK(strstr(mt_last_error(), "incorrect data check") != NULL);
    MT_CHECK(strstr(mt_last_error(), q) != NULL);
    gz[gzn - 8] ^= 0xFF;
    /* garbage in the middle of the deflate data */
    for (size_t i = gzn / 3; i < gzn / 3 + 16; i++)
        gz[i] ^= 0x5A;
    write_bytes(tmp_file(q, sizeof q, "garbage.gz"), gz, gzn);
    MT_CHECK_ERR(mt_dataset_idx(&d, q, NULL, 1.0), MT_ERR_FORMAT, q);
    printf("garbage in the deflate stream: %s\n", mt_last_error());
    MT_CHECK(strstr(mt_last_error(), "corrupt gzip") || strstr(mt_last_error(), "truncated") ||
             strstr(mt_last_error(), "trailing"));
    mt_free(gz);
    mt_free(f);
    mt_free(pay);
}

MT_TEST(idx_limits)
{
    const uint32_t dims[2] = {100, 100};
    unsigned char *f = mt_calloc(1, 10100);
    size_t n = idx_bytes(f, 0x08, 2, dims, NULL, 0) + 10000;
    char p[1024];
    write_bytes(tmp_file(p, sizeof p, "lim.idx"), f, n);
    mt_array a = {0};
    MT_CHECK_ERR(mt_idx_load(&a, p, 9999), MT_ERR_RANGE, "over the limit of 9999 bytes");
    MT_CHECK_OK(mt_idx_load(&a, p, 10000));
    mt_array_clear(&a);
    /* the datasets' limit applies to the float32 result (40000 bytes) */
    setenv("MLTRAIN_DATA_MAX_BYTES", "39K", 1);
    MT_CHECK_EQ_INT(mt_data_max_bytes(), 39 * 1024);
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_idx(&d, p, NULL, 1.0), MT_ERR_RANGE, "MLTRAIN_DATA_MAX_BYTES");
    setenv("MLTRAIN_DATA_MAX_BYTES", "40000", 1);
    MT_CHECK_OK(mt_dataset_idx(&d, p, NULL, 1.0));
    mt_dataset_free(d);
    unsetenv("MLTRAIN_DATA_MAX_BYTES");
    MT_CHECK(mt_data_max_bytes() == ((size_t)16 << 30));
    mt_free(f);
}

MT_TEST(idx_label_files_checked)
{
    const uint32_t dims[2] = {3, 2}, ld[1] = {2}, ld2[2] = {3, 1};
    unsigned char f[64], l[64], px[6] = {0}, lab[3] = {1, 2, 0};
    char ip[1024], lp[1024];
    write_bytes(tmp_file(ip, sizeof ip, "img"), f, idx_bytes(f, 0x08, 2, dims, px, 6));
    write_bytes(tmp_file(lp, sizeof lp, "lab2"), l, idx_bytes(l, 0x08, 1, ld, lab, 2));
    mt_dataset *d;
    MT_CHECK_ERR(mt_dataset_idx(&d, ip, lp, 1.0), MT_ERR_FORMAT, "has 2 labels but");
    write_bytes(lp, l, idx_bytes(l, 0x08, 2, ld2, lab, 3));
    MT_CHECK_ERR(mt_dataset_idx(&d, ip, lp, 1.0), MT_ERR_FORMAT, "labels files need 1..1");
    /* negative labels (int8) */
    const uint32_t l3[1] = {3};
    unsigned char neg[3] = {1, 0xFF, 0};
    write_bytes(lp, l, idx_bytes(l, 0x09, 1, l3, neg, 3));
    MT_CHECK_ERR(mt_dataset_idx(&d, ip, lp, 1.0), MT_ERR_FORMAT, "label -1 of example 1");
    /* an MNIST folder whose labels go beyond 9 */
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/mnist", mt_test_tmpdir());
    mkdir(dir, 0700);
    const uint32_t md[3] = {3, 28, 28};
    unsigned char *img = mt_calloc(1, 3 * 784 + 32);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    write_bytes(path, img, idx_bytes(img, 0x08, 3, md, NULL, 0) + 3 * 784);
    unsigned char bad[3] = {3, 10, 1};
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_gz(path, l, idx_bytes(l, 0x08, 1, l3, bad, 3));
    mt_mnist_options o;
    mt_mnist_options_init(&o);
    o.dir = dir;
    o.which_set = "test";
    MT_CHECK_ERR(mt_dataset_mnist(&d, &o), MT_ERR_FORMAT,
                 "label 10 of example 1 is outside [0, 10)");
    MT_CHECK(strstr(mt_last_error(), "t10k-labels-idx1-ubyte.gz") != NULL);
    mt_free(img);
}

static mt_status op_idx(void *ctx)
{
    const char *const *paths = ctx;
    mt_dataset *d;
    mt_status st = mt_dataset_idx(&d, paths[0], paths[1], 1.0 / 255.0);
    mt_dataset_free(st == MT_OK ? d : NULL);
    return st;
}

MT_TEST(idx_allocation_failures_are_reported)
{
    const uint32_t dims[3] = {30, 5, 4}, ld[1] = {30};
    unsigned char f[700], l[64], px[600], lab[30];
    for (int i = 0; i < 600; i++)
        px[i] = (unsigned char)(i * 13);
    for (int i = 0; i < 30; i++)
        lab[i] = (unsigned char)(i % 7);
    char ip[1024], lp[1024];
    write_gz(tmp_file(ip, sizeof ip, "img.gz"), f, idx_bytes(f, 0x08, 3, dims, px, 600));
    write_bytes(tmp_file(lp, sizeof lp, "lab"), l, idx_bytes(l, 0x08, 1, ld, lab, 30));
    const char *paths[2] = {ip, lp};
    for (int64_t n = 1; n < 100; n++) {
        mt_err_clear();
        mt_alloc_fail_after(n);
        mt_status st = op_idx(paths);
        mt_alloc_fail_after(0);
        if (st == MT_OK) {
            MT_CHECK(n > 3);
            return;
        }
        MT_CHECK(*mt_last_error() != 0);
    }
    MT_CHECK(!"never succeeded");
}
