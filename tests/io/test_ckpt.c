/* Checkpoints: the in-memory API, HDF5 round trips of every storable type, order, monitor
 * histories, atomic publication on a full disk, clear errors for missing, empty, random,
 * truncated, corrupt and foreign files, the integrity header (a changed byte never reaches HDF5;
 * MLTRAIN_CKPT_REQUIRE_VERIFIED), and h5py in both directions (files written by mltrain
 * read by h5py and compared; files h5py writes in the documented layout read by mltrain). */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>

#include "io_test_util.h"
#include "mltrain/gpuarray.h"

/* A checkpoint with a bit of everything; values from xval so Python can recompute them. */
static mt_ckpt *sample_ckpt(void)
{
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    float w[12];
    for (int i = 0; i < 12; i++)
        w[i] = (float)xval(i, 0);
    double b[5];
    for (int i = 0; i < 5; i++)
        b[i] = xval(i, 0.5);
    int64_t idx[4] = {-3, (int64_t)1 << 40, 7, 8};
    uint8_t u8[7] = {0, 1, 2, 127, 128, 254, 255};
    int32_t scalar = -123456;
    int64_t d_w[2] = {3, 4}, d_b[1] = {5}, d_i[2] = {2, 2}, d_u[1] = {7}, d_e[2] = {0, 3};
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/h0_W", MT_FLOAT32, 2, d_w, w));
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/h0_b", MT_FLOAT64, 1, d_b, b));
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "optimizer/deep/idx", MT_INT64, 2, d_i, idx));
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "bytes", MT_UINT8, 1, d_u, u8));
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "scalar", MT_INT32, 0, NULL, &scalar));
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "empty", MT_FLOAT32, 2, d_e, NULL));
    MT_CHECK_OK(mt_ckpt_put_int(c, "epochs_seen", 3));
    MT_CHECK_OK(mt_ckpt_put_double(c, "learning_rate", 0.125));
    MT_CHECK_OK(
        mt_ckpt_put_string(c, "model_yaml", "!obj:MLP {layers: [h0]}\n# \xc3\xa9t\xc3\xa9"));
    mt_monitor_history h;
    mt_monitor_history_init(&h, "monitor");
    const char *chans[2] = {"train_objective", "valid_y_misclass"};
    for (int ci = 0; ci < 2; ci++) {
        mt_chan_history *ch = mt_monitor_history_channel(&h, chans[ci], true);
        MT_CHECK(ch != NULL);
        for (int k = 0; k < 3; k++) {
            mt_chan_record r = {xval(k, ci), k, 10 * k, 1000 * k, 0.5 * k};
            MT_CHECK_OK(mt_chan_history_append(ch, &r));
        }
    }
    MT_CHECK_OK(mt_ckpt_put_monitor(c, &h));
    mt_monitor_history_clear(&h);
    mt_monitor_history_init(&h, "monitor_stage_0");
    mt_chan_history *ch = mt_monitor_history_channel(&h, "train_objective", true);
    mt_chan_record r = {NAN, 0, 0, 0, 0};
    MT_CHECK_OK(mt_chan_history_append(ch, &r));
    MT_CHECK_OK(mt_ckpt_put_monitor(c, &h));
    mt_monitor_history_clear(&h);
    return c;
}

static void check_sample(const mt_ckpt *c)
{
    MT_CHECK_EQ_INT(mt_ckpt_n_arrays(c), 6);
    static const char *const order[6] = {"params/h0_W", "params/h0_b", "optimizer/deep/idx",
                                         "bytes",       "scalar",      "empty"};
    for (int i = 0; i < 6; i++)
        MT_CHECK_STR_EQ(mt_ckpt_array_name(c, i), order[i]);
    mt_dtype dt;
    int32_t nd;
    int64_t dims[MT_MAX_DIMS];
    const void *data;
    MT_CHECK_OK(mt_ckpt_array_info(c, "params/h0_W", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_FLOAT32 && nd == 2 && dims[0] == 3 && dims[1] == 4);
    for (int i = 0; i < 12; i++)
        MT_CHECK(((const float *)data)[i] == (float)xval(i, 0));
    MT_CHECK_OK(mt_ckpt_array_info(c, "params/h0_b", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_FLOAT64 && nd == 1 && dims[0] == 5);
    for (int i = 0; i < 5; i++)
        MT_CHECK(((const double *)data)[i] == xval(i, 0.5));
    MT_CHECK_OK(mt_ckpt_array_info(c, "optimizer/deep/idx", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_INT64 && nd == 2 && ((const int64_t *)data)[1] == (int64_t)1 << 40);
    MT_CHECK(((const int64_t *)data)[0] == -3);
    MT_CHECK_OK(mt_ckpt_array_info(c, "bytes", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_UINT8 && nd == 1 && dims[0] == 7 && ((const uint8_t *)data)[6] == 255);
    MT_CHECK_OK(mt_ckpt_array_info(c, "scalar", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_INT32 && nd == 0 && *(const int32_t *)data == -123456);
    MT_CHECK_OK(mt_ckpt_array_info(c, "empty", &dt, &nd, dims, NULL));
    MT_CHECK(dt == MT_FLOAT32 && nd == 2 && dims[0] == 0 && dims[1] == 3);
    int64_t iv;
    double dv;
    const char *sv;
    MT_CHECK_OK(mt_ckpt_get_int(c, "epochs_seen", &iv));
    MT_CHECK_EQ_INT(iv, 3);
    MT_CHECK_OK(mt_ckpt_get_double(c, "learning_rate", &dv));
    MT_CHECK(dv == 0.125);
    MT_CHECK_OK(mt_ckpt_get_string(c, "model_yaml", &sv));
    MT_CHECK_STR_EQ(sv, "!obj:MLP {layers: [h0]}\n# \xc3\xa9t\xc3\xa9");
    MT_CHECK_EQ_INT(mt_ckpt_n_attrs(c), 3);
    MT_CHECK_STR_EQ(mt_ckpt_attr_name(c, 0), "epochs_seen");
    MT_CHECK(mt_ckpt_attr_kind_at(c, 2) == MT_CKPT_ATTR_STRING);
    MT_CHECK_EQ_INT(mt_ckpt_n_monitors(c), 2);
    const mt_monitor_history *m = mt_ckpt_monitor(c, 0);
    MT_CHECK_STR_EQ(m->name, "monitor");
    MT_CHECK_EQ_INT(m->n, 2);
    MT_CHECK_STR_EQ(m->channels[0].name, "train_objective");
    MT_CHECK_STR_EQ(m->channels[1].name, "valid_y_misclass");
    for (int ci = 0; ci < 2; ci++) {
        MT_CHECK_EQ_INT(m->channels[ci].n, 3);
        for (int k = 0; k < 3; k++) {
            const mt_chan_record *r = &m->channels[ci].records[k];
            MT_CHECK(r->value == xval(k, ci) && r->epoch == k && r->batches == 10 * k);
            MT_CHECK(r->examples == 1000 * k && r->seconds == 0.5 * k);
        }
    }
    m = mt_ckpt_find_monitor(c, "monitor_stage_0");
    MT_CHECK(m != NULL && m->n == 1 && m->channels[0].n == 1 &&
             isnan(m->channels[0].records[0].value));
    MT_CHECK(mt_ckpt_find_monitor(c, "nope") == NULL);
}

MT_TEST(ckpt_roundtrip_every_type)
{
    mt_ckpt *c = sample_ckpt();
    check_sample(c);
    MT_CHECK(mt_ckpt_path(c) == NULL);
    char *path = tpath("a.h5");
    MT_CHECK_OK(mt_ckpt_write(c, path));
    mt_ckpt_free(c);
    mt_ckpt *r;
    MT_CHECK_OK(mt_ckpt_read(&r, path));
    check_sample(r);
    MT_CHECK_STR_EQ(mt_ckpt_path(r), path);
    /* written again from what was read: the same content */
    char *path2 = tpath("b.h5");
    MT_CHECK_OK(mt_ckpt_write(r, path2));
    mt_ckpt_free(r);
    MT_CHECK_OK(mt_ckpt_read(&r, path2));
    check_sample(r);
    mt_array a;
    MT_CHECK_OK(mt_ckpt_get_array(r, "params/h0_W", &a));
    MT_CHECK(a.dtype == MT_FLOAT32 && a.ndim == 2 && a.dims[1] == 4);
    float host[12];
    MT_CHECK_OK(mt_array_to_host(host, sizeof host, &a));
    MT_CHECK(host[11] == (float)xval(11, 0));
    mt_array_clear(&a);
    MT_CHECK_OK(mt_ckpt_get_array(r, "empty", &a));
    MT_CHECK_EQ_INT(mt_array_size(&a), 0);
    mt_array_clear(&a);
    mt_ckpt_free(r);
    struct stat sb;
    MT_CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644);
    MT_CHECK(!has_temp_files(mt_test_tmpdir()));
}

MT_TEST(ckpt_put_views_and_devices)
{
    /* a transposed (non-contiguous) view is stored in C order of its logical shape */
    mt_device *dev;
    MT_CHECK_OK(mt_device_open(&dev, mt_test_device_name()));
    double v[6] = {1, 2, 3, 4, 5, 6};
    int64_t dims[2] = {2, 3};
    mt_array a, t;
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_FLOAT64, 2, dims, v));
    int32_t perm[2] = {1, 0};
    MT_CHECK_OK(mt_array_transpose(&t, &a, perm));
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    MT_CHECK_OK(mt_ckpt_put_array(c, "t", &t));
    const void *data;
    int64_t d[MT_MAX_DIMS];
    MT_CHECK_OK(mt_ckpt_array_info(c, "t", NULL, NULL, d, &data));
    MT_CHECK(d[0] == 3 && d[1] == 2);
    static const double want[6] = {1, 4, 2, 5, 3, 6};
    MT_CHECK(memcmp(data, want, sizeof want) == 0);
    /* back onto the device under test */
    mt_array back;
    MT_CHECK_OK(mt_ckpt_get_array_on(c, "t", dev, &back));
    MT_CHECK(mt_array_device(&back) == dev);
    double got[6];
    MT_CHECK_OK(mt_array_to_host(got, sizeof got, &back));
    MT_CHECK(memcmp(got, want, sizeof want) == 0);
    mt_array_clear(&back);
    mt_array_clear(&t);
    mt_array_clear(&a);
    mt_ckpt_free(c);
    mt_device_release(dev);
}

MT_TEST(ckpt_replace_and_lookup_errors)
{
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    int64_t d1[1] = {2};
    float f[2] = {1, 2};
    double g[2] = {3, 4};
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "p/w", MT_FLOAT32, 1, d1, f));
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "p/w", MT_FLOAT64, 1, d1, g)); /* replaces */
    MT_CHECK_EQ_INT(mt_ckpt_n_arrays(c), 1);
    mt_dtype dt;
    MT_CHECK_OK(mt_ckpt_array_info(c, "p/w", &dt, NULL, NULL, NULL));
    MT_CHECK(dt == MT_FLOAT64);
    MT_CHECK_OK(mt_ckpt_put_int(c, "x", 1));
    MT_CHECK_OK(mt_ckpt_put_string(c, "x", "now a string")); /* replaces, changes kind */
    MT_CHECK_EQ_INT(mt_ckpt_n_attrs(c), 1);
    int64_t iv;
    MT_CHECK_ERR(mt_ckpt_get_int(c, "x", &iv), MT_ERR_DTYPE, "'x' is a string, not an integer");
    MT_CHECK_ERR(mt_ckpt_get_double(c, "nope", NULL), MT_ERR_NOT_FOUND, "no attribute 'nope'");
    mt_array a;
    MT_CHECK_ERR(mt_ckpt_get_array(c, "p/v", &a), MT_ERR_NOT_FOUND,
                 "no array 'p/v' (arrays: 'p/w')");
    MT_CHECK(mt_ckpt_has(c, "p/w") && mt_ckpt_has(c, "x") && !mt_ckpt_has(c, "p"));
    /* names */
    MT_CHECK_ERR(mt_ckpt_put_int(c, "format", 1), MT_ERR_INVALID, "reserved");
    MT_CHECK_ERR(mt_ckpt_put_double(c, "version", 1), MT_ERR_INVALID, "reserved");
    MT_CHECK_ERR(mt_ckpt_put_int(c, "", 1), MT_ERR_INVALID, "empty");
    static const char *const bad[] = {"",      "/a",   "a/",         "a//b",
                                      "a/./b", "../a", "monitors/x", "monitors"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        MT_CHECK_ERR(mt_ckpt_put_array_host(c, bad[i], MT_FLOAT32, 1, d1, f), MT_ERR_INVALID, NULL);
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "monitorsX/ok", MT_FLOAT32, 1, d1, f));
    MT_CHECK_ERR(mt_ckpt_put_array_host(c, "p/w/sub", MT_FLOAT32, 1, d1, f), MT_ERR_INVALID,
                 "cannot coexist with array 'p/w'");
    MT_CHECK_ERR(mt_ckpt_put_array_host(c, "p", MT_FLOAT32, 1, d1, f), MT_ERR_INVALID,
                 "cannot coexist");
    uint16_t h[2] = {0, 0};
    MT_CHECK_ERR(mt_ckpt_put_array_host(c, "half", MT_FLOAT16, 1, d1, h), MT_ERR_DTYPE, "float16");
    MT_CHECK_ERR(mt_ckpt_put_array_host(c, "b", MT_BOOL, 1, d1, h), MT_ERR_DTYPE, "bool");
    /* monitor and channel names are single components */
    mt_monitor_history m;
    mt_monitor_history_init(&m, "a/b");
    MT_CHECK_ERR(mt_ckpt_put_monitor(c, &m), MT_ERR_INVALID, "may not contain '/'");
    mt_monitor_history_clear(&m);
    mt_monitor_history_init(&m, "monitor");
    MT_CHECK(mt_monitor_history_channel(&m, "x/y", true) != NULL);
    MT_CHECK_ERR(mt_ckpt_put_monitor(c, &m), MT_ERR_INVALID, "'x/y'");
    mt_monitor_history_clear(&m);
    MT_CHECK_EQ_INT(mt_ckpt_n_monitors(c), 0);
    mt_ckpt_free(c);
    mt_ckpt_free(NULL);
}

MT_TEST(monitor_history_basics)
{
    mt_monitor_history h, copy;
    mt_monitor_history_init(&h, NULL);
    MT_CHECK_STR_EQ(h.name, "monitor");
    MT_CHECK(mt_monitor_history_channel(&h, "a", false) == NULL);
    for (int i = 0; i < 20; i++) { /* grows the channel table */
        char nm[16];
        snprintf(nm, sizeof nm, "c%d", i);
        mt_chan_history *c = mt_monitor_history_channel(&h, nm, true);
        MT_CHECK(c != NULL);
        for (int k = 0; k <= i; k++) {
            mt_chan_record r = {k * 0.5, k, k, k, k};
            MT_CHECK_OK(mt_chan_history_append(c, &r));
        }
    }
    MT_CHECK(mt_monitor_history_channel(&h, "c3", true) == &h.channels[3]); /* found, not added */
    MT_CHECK_EQ_INT(h.n, 20);
    MT_CHECK_OK(mt_monitor_history_copy(&copy, &h));
    mt_monitor_history_clear(&h);
    MT_CHECK(h.n == 0 && h.channels == NULL && h.name == NULL);
    MT_CHECK_EQ_INT(copy.n, 20);
    MT_CHECK_EQ_INT(copy.channels[19].n, 20);
    MT_CHECK(copy.channels[19].records[19].value == 9.5);
    mt_monitor_history_clear(&copy);
    mt_monitor_history_clear(&copy);
    mt_monitor_history_clear(NULL);
}

/* The checkpoint API holds no more than the isolated reader accepts (io_impl.h): the 16385th
 * attribute and the 1025th monitor are ERR_RANGE errors naming the limit, and a checkpoint at
 * the limits writes and reads back. */
MT_TEST(ckpt_entry_limits_match_the_reader)
{
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_new(&c));
    char nm[32];
    for (int i = 0; i < 16384; i++) {
        snprintf(nm, sizeof nm, "a%d", i);
        MT_CHECK_OK(mt_ckpt_put_int(c, nm, i));
    }
    MT_CHECK_ERR(mt_ckpt_put_int(c, "one_more", 1), MT_ERR_RANGE, "holds at most 16384");
    MT_CHECK_OK(mt_ckpt_put_int(c, "a7", 70)); /* replacing one is fine */
    for (int i = 0; i < 1024; i++) {
        mt_monitor_history h;
        snprintf(nm, sizeof nm, "m%d", i);
        mt_monitor_history_init(&h, nm);
        mt_chan_history *ch = mt_monitor_history_channel(&h, "x", true);
        MT_CHECK(ch != NULL);
        mt_chan_record r = {1.0, 1, 1, 1, 1};
        MT_CHECK_OK(mt_chan_history_append(ch, &r));
        MT_CHECK_OK(mt_ckpt_put_monitor(c, &h));
        mt_monitor_history_clear(&h);
    }
    mt_monitor_history h;
    mt_monitor_history_init(&h, "extra");
    MT_CHECK_ERR(mt_ckpt_put_monitor(c, &h), MT_ERR_RANGE, "holds at most 1024");
    mt_monitor_history_clear(&h);
    char path[600];
    snprintf(path, sizeof path, "%s/limits.ckpt", mt_test_tmpdir());
    MT_CHECK_OK(mt_ckpt_write(c, path));
    mt_ckpt *back = NULL;
    MT_CHECK_OK(mt_ckpt_read(&back, path));
    int64_t v = 0;
    MT_CHECK_OK(mt_ckpt_get_int(back, "a16383", &v));
    MT_CHECK_EQ_INT(v, 16383);
    MT_CHECK_EQ_INT(mt_ckpt_n_monitors(back), 1024);
    mt_ckpt_free(back);
    mt_ckpt_free(c);
}

MT_TEST(ckpt_read_missing_empty_random)
{
    mt_ckpt *c = (mt_ckpt *)1;
    char *p = tpath("none.h5");
    MT_CHECK_ERR(mt_ckpt_read(&c, p), MT_ERR_IO, "No such file or directory");
    MT_CHECK(c == NULL);
    MT_CHECK(strstr(mt_last_error(), p) != NULL);
    MT_CHECK_ERR(mt_ckpt_read(&c, mt_test_tmpdir()), MT_ERR_IO, "directory");
    p = tpath("empty.h5");
    write_bytes(p, "", 0);
    MT_CHECK_ERR(mt_ckpt_read(&c, p), MT_ERR_FORMAT, "empty file");
    p = tpath("random.h5");
    unsigned char junk[4096];
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < sizeof junk; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        junk[i] = (unsigned char)(s >> 56);
    }
    write_bytes(p, junk, sizeof junk);
    MT_CHECK_ERR(mt_ckpt_read(&c, p), MT_ERR_FORMAT, "is not an HDF5 file");
    MT_CHECK(strstr(mt_last_error(), "4096 bytes") != NULL);
}

/* The integrity header of an mltrain checkpoint (src/io/ckpt_hdf5.c): bytes 16..23 hold the
 * file length, 24..55 the SHA-256 of bytes 512.. . reseal() recomputes the hash after a test
 * changed the file, as someone crafting a file would: the damage then reaches HDF5. */
static void reseal(unsigned char *bytes, size_t len)
{
    mt_sha256 h;
    mt_sha256_init(&h);
    mt_sha256_update(&h, bytes + 512, len - 512);
    mt_sha256_final(&h, bytes + 24);
}

/* A real checkpoint with a large array, cut at several points. */
MT_TEST(ckpt_read_truncated)
{
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    int64_t dims[2] = {200, 100};
    float *w = mt_malloc(20000 * sizeof *w);
    fill_f32(w, 20000, 0.3);
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/W", MT_FLOAT32, 2, dims, w));
    MT_CHECK_OK(mt_ckpt_put_int(c, "epochs_seen", 1));
    mt_free(w);
    char *full = tpath("full.h5"), *cut = tpath("cut.h5");
    MT_CHECK_OK(mt_ckpt_write(c, full));
    mt_ckpt_free(c);
    size_t len;
    unsigned char *bytes = (unsigned char *)slurp(full, &len);
    MT_CHECK(len > 80000);
    size_t cuts[5] = {len - 1, len / 2, 2000, 40, 20};
    /* round 0: the integrity header's length catches the cut; round 1: the same file without
     * the header (its magic zeroed, like an HDF5 file with an empty user block), where the
     * superblock's end-of-file address does (40 and 20 bytes: no superblock left at all) */
    for (int round = 0; round < 2; round++) {
        if (round == 1) memset(bytes, 0, 12);
        for (int k = 0; k < (round == 0 ? 5 : 3); k++) {
            write_bytes(cut, bytes, cuts[k]);
            mt_ckpt *r = (mt_ckpt *)1;
            char want[200];
            if (round == 0 && k < 3)
                snprintf(want, sizeof want,
                         "is truncated: it has %zu bytes, its mltrain header says %zu", cuts[k],
                         len);
            else if (round == 0)
                snprintf(want, sizeof want,
                         "is truncated: it has %zu bytes, less than its 512-byte mltrain header",
                         cuts[k]);
            else
                snprintf(want, sizeof want,
                         "is truncated: it has %zu bytes, its HDF5 superblock says %zu", cuts[k],
                         len);
            MT_CHECK_ERR(mt_ckpt_read(&r, cut), MT_ERR_FORMAT, want);
            MT_CHECK(r == NULL);
            MT_CHECK(strstr(mt_last_error(), cut) != NULL);
        }
    }
    memcpy(bytes, "MLTRAIN-CKPT", 12);
    /* a damaged superblock (the root group's object header address in a version 0 superblock,
     * after the 512-byte user block): the hash catches it; in a crafted file with the hash
     * recomputed it is HDF5's to diagnose, and its reason is quoted */
    MT_CHECK(bytes[512 + 8] == 0);
    bytes[512 + 64] ^= 0x04;
    write_bytes(cut, bytes, len);
    mt_ckpt *r2;
    MT_CHECK_ERR(mt_ckpt_read(&r2, cut), MT_ERR_FORMAT, "is corrupted: the SHA-256");
    reseal(bytes, len);
    write_bytes(cut, bytes, len);
    MT_CHECK_ERR(mt_ckpt_read(&r2, cut), MT_ERR_FORMAT, "is corrupt");
    MT_CHECK(strstr(mt_last_error(), "(HDF5: ") != NULL);
    mt_free(bytes);
}

/* Every write carries the integrity header; a flipped byte anywhere, appended bytes, or a
 * header from the future are ERR_FORMAT naming the file, decided before HDF5 looks at it: a
 * file whose HDF5 part is random bytes is "corrupted", not "not an HDF5 file". */
MT_TEST(ckpt_integrity_header)
{
    mt_ckpt *c = sample_ckpt();
    char *p = tpath("sealed.h5"), *q = tpath("damaged.h5");
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    size_t len;
    unsigned char *bytes = (unsigned char *)slurp(p, &len);
    MT_CHECK(len > 1024 && memcmp(bytes, "MLTRAIN-CKPT", 12) == 0);
    MT_CHECK(bytes[12] == 1 && bytes[13] == 0 && bytes[14] == 0 && bytes[15] == 0);
    uint64_t stored = 0;
    for (int i = 7; i >= 0; i--)
        stored = (stored << 8) | bytes[16 + i];
    MT_CHECK_EQ_INT((int64_t)stored, (int64_t)len);
    unsigned char sum[32];
    mt_sha256 h;
    mt_sha256_init(&h);
    mt_sha256_update(&h, bytes + 512, len - 512);
    mt_sha256_final(&h, sum);
    MT_CHECK(memcmp(sum, bytes + 24, 32) == 0);
    for (size_t i = 56; i < 512; i++)
        MT_CHECK(bytes[i] == 0);
    MT_CHECK(memcmp(bytes + 512, "\x89HDF\r\n\x1a\n", 8) == 0);
    mt_ckpt *r0;
    /* one flipped bit at several places: the hash field, the superblock, the middle, the end */
    size_t at[5] = {30, 512, 600, len / 2, len - 1};
    for (int k = 0; k < 5; k++) {
        bytes[at[k]] ^= 0x01;
        write_bytes(q, bytes, len);
        bytes[at[k]] ^= 0x01;
        mt_ckpt *r = (mt_ckpt *)1;
        MT_CHECK_ERR(mt_ckpt_read(&r, q), MT_ERR_FORMAT, "is corrupted: the SHA-256");
        MT_CHECK(strstr(mt_last_error(), q) != NULL);
        MT_CHECK(strstr(mt_last_error(), "(HDF5:") == NULL); /* not HDF5's diagnosis */
        MT_CHECK(r == NULL);
    }
    /* a damaged magic: still recognised by the version and length fields, not read as an
     * unverified file (which would hand a body damaged as well to HDF5) */
    bytes[11] ^= 0x20;
    write_bytes(q, bytes, len);
    bytes[11] ^= 0x20;
    MT_CHECK_ERR(mt_ckpt_read(&r0, q), MT_ERR_FORMAT, "integrity header is damaged");
    MT_CHECK(strstr(mt_last_error(), q) != NULL);
    /* random bytes after a header that claims the right length */
    unsigned char *junk = mt_malloc(len);
    memcpy(junk, bytes, 512);
    uint64_t s = 12345;
    for (size_t i = 512; i < len; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        junk[i] = (unsigned char)(s >> 56);
    }
    write_bytes(q, junk, len);
    mt_ckpt *r;
    MT_CHECK_ERR(mt_ckpt_read(&r, q), MT_ERR_FORMAT, "is corrupted");
    mt_free(junk);
    /* appended bytes */
    unsigned char *more = mt_malloc(len + 100);
    memcpy(more, bytes, len);
    memset(more + len, 0, 100);
    write_bytes(q, more, len + 100);
    char want[160];
    snprintf(want, sizeof want, "is corrupted: it has %zu bytes, its mltrain header says %zu",
             len + 100, len);
    MT_CHECK_ERR(mt_ckpt_read(&r, q), MT_ERR_FORMAT, want);
    mt_free(more);
    /* a newer header version */
    bytes[12] = 2;
    write_bytes(q, bytes, len);
    MT_CHECK_ERR(mt_ckpt_read(&r, q), MT_ERR_FORMAT, "integrity header of version 2");
    bytes[12] = 1;
    /* the intact bytes read back */
    write_bytes(q, bytes, len);
    MT_CHECK_OK(mt_ckpt_read(&r, q));
    check_sample(r);
    mt_ckpt_free(r);
    mt_free(bytes);
}

/* Flipped payload bytes are caught by the Fletcher-32 filter, not loaded as weights. */
MT_TEST(ckpt_read_corrupt_payload)
{
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    int64_t n = 4096;
    float *w = mt_malloc((size_t)n * sizeof *w);
    for (int64_t i = 0; i < n; i++)
        w[i] = 1.0f + (float)i; /* a pattern to find in the file */
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/W", MT_FLOAT32, 1, &n, w));
    char *p = tpath("c.h5");
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    size_t len;
    char *bytes = slurp(p, &len);
    size_t at = 0;
    for (size_t i = 0; i + 64 <= len && !at; i++)
        if (!memcmp(bytes + i, w + 100, 64)) at = i;
    MT_CHECK(at > 0);
    bytes[at + 17] ^= 0x10;
    write_bytes(p, bytes, len);
    mt_ckpt *r;
    MT_CHECK_ERR(mt_ckpt_read(&r, p), MT_ERR_FORMAT, "is corrupted: the SHA-256");
    /* with the hash recomputed (a crafted file) the Fletcher-32 filter still catches it */
    reseal((unsigned char *)bytes, len);
    write_bytes(p, bytes, len);
    MT_CHECK_ERR(mt_ckpt_read(&r, p), MT_ERR_FORMAT, "cannot read dataset 'params/W'");
    MT_CHECK(strstr(mt_last_error(), "(HDF5: ") != NULL);
    /* corrupt metadata (the superblock's fields), hash recomputed */
    bytes[at + 17] ^= 0x10;
    bytes[512 + 20] ^= 0x5a;
    reseal((unsigned char *)bytes, len);
    write_bytes(p, bytes, len);
    MT_CHECK_ERR(mt_ckpt_read(&r, p), MT_ERR_FORMAT, p);
    mt_free(bytes);
    mt_free(w);
}

/* Writing over an existing checkpoint on a "full disk" (a file-size limit) fails cleanly. */
MT_TEST(ckpt_write_full_disk_keeps_old)
{
    char *p = tpath("keep.h5");
    mt_ckpt *c = sample_ckpt();
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    size_t old_len;
    char *old = slurp(p, &old_len);
    MT_CHECK_OK(mt_ckpt_new(&c));
    int64_t n = 100000;
    float *w = mt_calloc((size_t)n, sizeof *w);
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/big", MT_FLOAT32, 1, &n, w));
    mt_free(w);
    struct rlimit lim, saved;
    MT_CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    signal(SIGXFSZ, SIG_IGN);
    lim.rlim_cur = 8192;
    lim.rlim_max = saved.rlim_max;
    MT_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    mt_status st = mt_ckpt_write(c, p);
    setrlimit(RLIMIT_FSIZE, &saved);
    MT_CHECK_EQ_INT(st, MT_ERR_IO);
    MT_CHECK(strstr(mt_last_error(), p) != NULL);
    MT_CHECK(strstr(mt_last_error(), "File too large") != NULL);
    size_t now_len;
    char *now = slurp(p, &now_len);
    MT_CHECK(now_len == old_len && memcmp(now, old, old_len) == 0);
    MT_CHECK(!has_temp_files(mt_test_tmpdir()));
    mt_ckpt *r;
    MT_CHECK_OK(mt_ckpt_read(&r, p)); /* still the old, valid checkpoint */
    check_sample(r);
    mt_ckpt_free(r);
    /* a directory that does not exist */
    MT_CHECK_ERR(mt_ckpt_write(c, tpath("no/such/dir/x.h5")), MT_ERR_IO, "No such file");
    mt_ckpt_free(c);
    mt_free(old);
    mt_free(now);
}

/* ---------------------------------------------------------------- h5py cross-checks */

static const char *const h5py_reads_script =
    "import sys, h5py, numpy as np\n"
    "f = h5py.File(sys.argv[1], 'r')\n"
    "def x(n, k): return ((np.arange(n) * 37) % 101 - 50) / 8.0 + k\n"
    "a = dict(f.attrs)\n"
    "assert a['format'] == 'mltrain-checkpoint', a\n"
    "assert a['version'] == 1 and a['epochs_seen'] == 3 and a['learning_rate'] == 0.125, a\n"
    "assert a['model_yaml'] == '!obj:MLP {layers: [h0]}\\n# \\u00e9t\\u00e9', "
    "repr(a['model_yaml'])\n"
    "W = f['params/h0_W'][()]\n"
    "assert W.dtype == np.float32 and W.shape == (3, 4), (W.dtype, W.shape)\n"
    "assert (W == x(12, 0).astype(np.float32).reshape(3, 4)).all(), W\n"
    "b = f['params']['h0_b'][()]\n"
    "assert b.dtype == np.float64 and (b == x(5, 0.5)).all(), b\n"
    "i = f['optimizer/deep/idx'][()]\n"
    "assert i.dtype == np.int64 and i.tolist() == [[-3, 2**40], [7, 8]], i\n"
    "u = f['bytes'][()]\n"
    "assert u.dtype == np.uint8 and u.tolist() == [0, 1, 2, 127, 128, 254, 255], u\n"
    "s = f['scalar'][()]\n"
    "assert f['scalar'].shape == () and s == -123456 and f['scalar'].dtype == np.int32, s\n"
    "assert f['empty'].shape == (0, 3), f['empty'].shape\n"
    "assert list(f['params'].keys()) == ['h0_W', 'h0_b']\n"
    "m = f['monitors/monitor']\n"
    "assert set(m.keys()) == {'train_objective', 'valid_y_misclass'}, list(m.keys())\n"
    "for ci, name in enumerate(['train_objective', 'valid_y_misclass']):\n"
    "    c = m[name]\n"
    "    assert (c['value'][()] == x(3, ci)).all(), c['value'][()]\n"
    "    assert c['epoch'][()].tolist() == [0, 1, 2] and c['epoch'].dtype == np.int64\n"
    "    assert c['batches'][()].tolist() == [0, 10, 20]\n"
    "    assert c['examples'][()].tolist() == [0, 1000, 2000]\n"
    "    assert c['seconds'][()].tolist() == [0.0, 0.5, 1.0]\n"
    "v = f['monitors/monitor_stage_0/train_objective/value'][()]\n"
    "assert v.shape == (1,) and np.isnan(v[0])\n"
    "assert f.userblock_size == 512, f.userblock_size\n"
    "f.close()\n"
    "import hashlib, struct\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "magic, ver, n = struct.unpack('<12sIQ', raw[:24])\n"
    "assert magic == b'MLTRAIN-CKPT' and ver == 1 and n == len(raw), (magic, ver, n)\n"
    "assert raw[24:56] == hashlib.sha256(raw[512:]).digest()\n"
    "print('OK')\n";

MT_TEST(ckpt_h5py_reads_mltrain_file)
{
    mt_ckpt *c = sample_ckpt();
    char *p = tpath("for_h5py.h5");
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    char args[1100];
    snprintf(args, sizeof args, "'%s'", p);
    char *out;
    MT_CHECK_EQ_INT(run_python(h5py_reads_script, args, "h5py numpy", &out), 0);
    MT_CHECK(strstr(out, "OK") != NULL);
    mt_free(out);
}

/* The documented layout written by h5py (as in docs/checkpoints.md), with the liberties h5py
 * takes: no creation-order tracking, fixed-length byte strings, float32 values, int32 epochs. */
static const char *const h5py_writes_script =
    "import sys, h5py, numpy as np\n"
    "def x(n, k): return ((np.arange(n) * 37) % 101 - 50) / 8.0 + k\n"
    "kind = sys.argv[2]\n"
    "ub = 512 if kind == 'userblock' else 0\n"
    "with h5py.File(sys.argv[1], 'w', userblock_size=ub) as f:\n"
    "    if kind != 'noformat':\n"
    "        f.attrs['format'] = 'other-thing' if kind == 'otherformat' else 'mltrain-checkpoint'\n"
    "    f.attrs['version'] = 2 if kind == 'newer' else 1\n"
    "    f.attrs['epochs_seen'] = np.int32(7)\n"
    "    f.attrs['lr'] = np.float32(0.5)\n"
    "    f.attrs['model_yaml'] = 'a: 1'\n"
    "    f.attrs['fixed'] = np.bytes_(b'abc')\n"
    "    f['params/z_W'] = x(6, 1).reshape(2, 3).astype(np.float32)\n"
    "    f['params/a_b'] = x(4, 0)\n"
    "    f.create_dataset('params/gz', data=np.arange(100, dtype=np.int16), compression='gzip')\n"
    "    c = f.create_group('monitors/monitor/valid_objective')\n"
    "    c['value'] = x(4, 2).astype(np.float32)\n"
    "    c['epoch'] = np.arange(4, dtype=np.int32)\n"
    "    c['batches'] = np.arange(4) * 5\n"
    "    c['examples'] = np.arange(4) * 500\n"
    "    if kind != 'noseconds': c['seconds'] = np.arange(4) * 1.5\n"
    "    if kind == 'ragged': del c['epoch']; c['epoch'] = np.arange(3)\n"
    "    if kind == 'boolarray': f['flags'] = np.array([True, False])\n"
    "print('written')\n";

static void h5py_write(const char *path, const char *kind)
{
    char args[1200];
    snprintf(args, sizeof args, "'%s' %s", path, kind);
    MT_CHECK_EQ_INT(run_python(h5py_writes_script, args, "h5py numpy", NULL), 0);
}

MT_TEST(ckpt_reads_h5py_file)
{
    char *p = tpath("from_h5py.h5");
    h5py_write(p, "good");
    mt_ckpt *c;
    /* a user block of h5py's (zeros, no mltrain header) is skipped like mltrain's own, and the
     * truncation check counts it */
    char *q = tpath("from_h5py_ub.h5");
    h5py_write(q, "userblock");
    MT_CHECK_OK(mt_ckpt_read(&c, q));
    MT_CHECK_EQ_INT(mt_ckpt_n_arrays(c), 3);
    mt_ckpt_free(c);
    size_t qlen;
    char *qb = slurp(q, &qlen);
    MT_CHECK(qlen > 2048 && memcmp(qb + 512, "\x89HDF", 4) == 0);
    write_bytes(q, qb, qlen - 1000);
    MT_CHECK_ERR(mt_ckpt_read(&c, q), MT_ERR_FORMAT, "is truncated");
    mt_free(qb);
    MT_CHECK_OK(mt_ckpt_read(&c, p));
    /* no creation order in h5py files: name order */
    MT_CHECK_EQ_INT(mt_ckpt_n_arrays(c), 3);
    MT_CHECK_STR_EQ(mt_ckpt_array_name(c, 0), "params/a_b");
    MT_CHECK_STR_EQ(mt_ckpt_array_name(c, 1), "params/gz");
    MT_CHECK_STR_EQ(mt_ckpt_array_name(c, 2), "params/z_W");
    mt_dtype dt;
    int32_t nd;
    int64_t dims[MT_MAX_DIMS];
    const void *data;
    MT_CHECK_OK(mt_ckpt_array_info(c, "params/z_W", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_FLOAT32 && nd == 2 && dims[0] == 2 && dims[1] == 3);
    for (int i = 0; i < 6; i++)
        MT_CHECK(((const float *)data)[i] == (float)xval(i, 1));
    MT_CHECK_OK(mt_ckpt_array_info(c, "params/a_b", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_FLOAT64 && ((const double *)data)[3] == xval(3, 0));
    MT_CHECK_OK(mt_ckpt_array_info(c, "params/gz", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_INT16 && dims[0] == 100 && ((const int16_t *)data)[99] == 99);
    int64_t iv;
    double dv;
    const char *sv;
    MT_CHECK_OK(mt_ckpt_get_int(c, "epochs_seen", &iv));
    MT_CHECK_EQ_INT(iv, 7);
    MT_CHECK_OK(mt_ckpt_get_double(c, "lr", &dv));
    MT_CHECK(dv == 0.5);
    MT_CHECK_OK(mt_ckpt_get_string(c, "model_yaml", &sv));
    MT_CHECK_STR_EQ(sv, "a: 1");
    MT_CHECK_OK(mt_ckpt_get_string(c, "fixed", &sv));
    MT_CHECK_STR_EQ(sv, "abc");
    const mt_monitor_history *m = mt_ckpt_find_monitor(c, "monitor");
    MT_CHECK(m != NULL && m->n == 1);
    MT_CHECK_STR_EQ(m->channels[0].name, "valid_objective");
    MT_CHECK_EQ_INT(m->channels[0].n, 4);
    for (int k = 0; k < 4; k++) {
        const mt_chan_record *r = &m->channels[0].records[k];
        MT_CHECK(r->value == (double)(float)xval(k, 2) && r->epoch == k);
        MT_CHECK(r->batches == 5 * k && r->examples == 500 * k && r->seconds == 1.5 * k);
    }
    mt_ckpt_free(c);
}

MT_TEST(ckpt_rejects_foreign_and_malformed_h5py_files)
{
    static const struct {
        const char *kind;
        const char *msg;
    } cases[] = {
        {"noformat", "is an HDF5 file but not an mltrain checkpoint"},
        {"otherformat", "\"format\" attribute is \"other-thing\""},
        {"newer", "format version 2; this mltrain reads version 1"},
        {"noseconds", "channel 'monitors/monitor/valid_objective' has no dataset 'seconds'"},
        {"ragged", "has 4 values but 3 entries in 'epoch'"},
        {"boolarray", "dataset 'flags' has type enum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.h5", cases[i].kind);
        char *p = tpath(name);
        h5py_write(p, cases[i].kind);
        mt_ckpt *c = (mt_ckpt *)1;
        MT_CHECK_ERR(mt_ckpt_read(&c, p), MT_ERR_FORMAT, cases[i].msg);
        MT_CHECK(strstr(mt_last_error(), p) != NULL);
        MT_CHECK(c == NULL);
    }
}

/* MLTRAIN_CKPT_REQUIRE_VERIFIED=1 refuses files without the integrity header (h5py's) with a
 * message that says why and how to read it anyway; mltrain's own files still read. */
MT_TEST(ckpt_require_verified_refuses_h5py_file)
{
    char *p = tpath("unverified.h5"), *q = tpath("verified.h5");
    h5py_write(p, "good");
    mt_ckpt *c = sample_ckpt();
    MT_CHECK_OK(mt_ckpt_write(c, q));
    mt_ckpt_free(c);
    MT_CHECK(setenv("MLTRAIN_CKPT_REQUIRE_VERIFIED", "1", 1) == 0);
    mt_ckpt *r = (mt_ckpt *)1;
    mt_status st = mt_ckpt_read(&r, p);
    char msg[MT_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    mt_status st2 = mt_ckpt_read(&c, q);
    unsetenv("MLTRAIN_CKPT_REQUIRE_VERIFIED");
    MT_CHECK_EQ_INT(st, MT_ERR_FORMAT);
    MT_CHECK(r == NULL);
    MT_CHECK(strstr(msg, p) != NULL);
    MT_CHECK(strstr(msg, "has no mltrain integrity header") != NULL);
    MT_CHECK(strstr(msg, "MLTRAIN_CKPT_REQUIRE_VERIFIED") != NULL);
    MT_CHECK_OK(st2);
    check_sample(c);
    mt_ckpt_free(c);
    MT_CHECK(setenv("MLTRAIN_CKPT_REQUIRE_VERIFIED", "0", 1) == 0);
    st = mt_ckpt_read(&r, p);
    unsetenv("MLTRAIN_CKPT_REQUIRE_VERIFIED");
    MT_CHECK_OK(st);
    mt_ckpt_free(r);
    MT_CHECK_OK(mt_ckpt_read(&r, p)); /* unset: read unverified */
    mt_ckpt_free(r);
}

/* Every host allocation of a read and of a write failing in turn: ERR_NOMEM, no crash (and no
 * leak under valgrind), and the next call works again. */
MT_TEST(ckpt_out_of_memory_paths)
{
    mt_ckpt *c = sample_ckpt();
    char *p = tpath("oom.h5"), *q = tpath("oom2.h5");
    MT_CHECK_OK(mt_ckpt_write(c, p));
    int failures = 0;
    for (int64_t n = 1; n < 1000; n++) {
        mt_ckpt *r = NULL;
        mt_alloc_fail_after(n);
        mt_status st = mt_ckpt_read(&r, p);
        mt_alloc_fail_after(0);
        if (st == MT_OK) {
            check_sample(r);
            mt_ckpt_free(r);
            break;
        }
        MT_CHECK_EQ_INT(st, MT_ERR_NOMEM);
        MT_CHECK(r == NULL);
        failures++;
    }
    MT_CHECK(failures > 20);
    failures = 0;
    for (int64_t n = 1; n < 1000; n++) {
        mt_alloc_fail_after(n);
        mt_status st = mt_ckpt_write(c, q);
        mt_alloc_fail_after(0);
        if (st == MT_OK) break;
        MT_CHECK_EQ_INT(st, MT_ERR_NOMEM);
        failures++;
    }
    MT_CHECK(failures > 0);
    MT_CHECK(!has_temp_files(mt_test_tmpdir()));
    mt_ckpt *r;
    MT_CHECK_OK(mt_ckpt_read(&r, q));
    check_sample(r);
    mt_ckpt_free(r);
    mt_ckpt_free(c);
}
