/* Tests of gpuarray's exchange and product entry points: .npy load/save (round trips of every
 * dtype and layout, files written and read by NumPy via /usr/bin/python3, every malformed-file
 * error), DLPack export/import (zero copy, deleter discipline, errors), GEMM and matmul against
 * naive float64 loops (transposed, strided, batched, broadcast, 16-bit and integer dtypes, no
 * copies where the layout allows none), and the Philox random fills against the documented
 * per-element contract. OpenCL cases run when an OpenCL device is present and skip otherwise. */
#include <cblas.h>
#include <dlpack/dlpack.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mltrain/gpuarray.h"
#include "mt_test.h"

#include "io_helpers.h"

MT_TEST(npy_roundtrip_every_dtype)
{
    mt_device *dev = open_dev();
    const int64_t shapes[4][3] = {{3, 4, 0}, {7, 0, 0}, {0, 3, 0}, {2, 3, 2}};
    const int32_t nds[4] = {2, 1, 2, 3};
    for (int d = 0; d < MT_DTYPE_COUNT; d++) {
        for (int s = 0; s < 5; s++) {
            int32_t nd = s < 4 ? nds[s] : 0; /* s == 4: 0-d */
            const int64_t *dims = s < 4 ? shapes[s] : NULL;
            mt_array a, b;
            pat_array(&a, dev, (mt_dtype)d, nd, dims, false);
            const char *path = path_in_tmp("rt.npy");
            MT_CHECK_OK(mt_npy_save(path, &a));
            MT_CHECK_OK(mt_npy_load(&b, dev, path, 0));
            check_pat(&b, (mt_dtype)d, nd, dims);
            MT_CHECK(mt_array_is_c_contiguous(&b));
            MT_CHECK(b.flags & MT_ARRAY_WRITEABLE);
            mt_array_clear(&b);
            /* the same bytes from memory */
            size_t len;
            char *data = slurp(path, &len);
            MT_CHECK_OK(mt_npy_load_mem(&b, dev, data, len, "mem"));
            check_pat(&b, (mt_dtype)d, nd, dims);
            mt_free(data);
            mt_array_clear(&b);
            mt_array_clear(&a);
        }
    }
    mt_device_release(dev);
}

MT_TEST(npy_header_layout)
{
    mt_device *dev = open_dev();
    int64_t dims[2] = {3, 4};
    mt_array a;
    pat_array(&a, dev, MT_FLOAT32, 2, dims, false);
    const char *path = path_in_tmp("h.npy");
    MT_CHECK_OK(mt_npy_save(path, &a));
    size_t len;
    char *d = slurp(path, &len);
    MT_CHECK(memcmp(d, "\x93NUMPY\x01\x00", 8) == 0);
    size_t hl = (size_t)(unsigned char)d[8] | (size_t)(unsigned char)d[9] << 8;
    MT_CHECK_EQ_INT((10 + hl) % 64, 0);
    MT_CHECK_EQ_INT(d[10 + hl - 1], '\n');
    MT_CHECK_EQ_INT(len, 10 + hl + 48);
    MT_CHECK(strstr(d + 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }") ==
             d + 10);
    mt_free(d);
    mt_array_clear(&a);
    mt_device_release(dev);
}

MT_TEST(npy_fortran_and_noncontiguous)
{
    mt_device *dev = open_dev();
    int64_t dims[3] = {3, 4, 2};
    mt_array f, g;
    pat_array(&f, dev, MT_FLOAT64, 3, dims, true);
    MT_CHECK(!mt_array_is_c_contiguous(&f) && mt_array_is_f_contiguous(&f));
    const char *path = path_in_tmp("f.npy");
    MT_CHECK_OK(mt_npy_save(path, &f));
    size_t len;
    char *d = slurp(path, &len);
    MT_CHECK(strstr(d + 10, "'fortran_order': True") != NULL);
    mt_free(d);
    MT_CHECK_OK(mt_npy_load(&g, dev, path, 0));
    MT_CHECK(mt_array_is_f_contiguous(&g) && !mt_array_is_c_contiguous(&g));
    MT_CHECK_EQ_INT(g.strides[0], 8);
    MT_CHECK_EQ_INT(g.strides[1], 24);
    MT_CHECK_EQ_INT(g.strides[2], 96);
    check_pat(&g, MT_FLOAT64, 3, dims);
    mt_array_clear(&g);
    mt_array_clear(&f);

    /* a step-2 slice is neither C nor F contiguous: saved as a C-order copy */
    int64_t bd[2] = {6, 10};
    mt_array big, s, t;
    pat_array(&big, dev, MT_INT16, 2, bd, false);
    mt_slice sl[2] = {mt_slice_range(1, 6, 2), mt_slice_range(MT_SLICE_UNSET, MT_SLICE_UNSET, 3)};
    MT_CHECK_OK(mt_array_slice(&s, &big, 2, sl));
    MT_CHECK(!mt_array_is_c_contiguous(&s) && !mt_array_is_f_contiguous(&s));
    MT_CHECK_OK(mt_npy_save(path, &s));
    MT_CHECK_OK(mt_npy_load(&g, dev, path, 0));
    MT_CHECK(mt_array_is_c_contiguous(&g));
    double *want = read_vals(&s), *got = read_vals(&g);
    MT_CHECK_EQ_INT(g.ndim, 2);
    MT_CHECK_EQ_INT(g.dims[0], 3);
    MT_CHECK_EQ_INT(g.dims[1], 4);
    MT_CHECK_ALLCLOSE(got, want, 12, 0, 0);
    free(want);
    free(got);
    mt_array_clear(&g);
    /* a transposed view is F-contiguous: saved with fortran_order True, same values */
    MT_CHECK_OK(mt_array_transpose(&t, &big, NULL));
    MT_CHECK_OK(mt_npy_save(path, &t));
    d = slurp(path, &len);
    MT_CHECK(strstr(d + 10, "'fortran_order': True, 'shape': (10, 6)") != NULL);
    mt_free(d);
    MT_CHECK_OK(mt_npy_load(&g, dev, path, 0));
    want = read_vals(&t);
    got = read_vals(&g);
    MT_CHECK_ALLCLOSE(got, want, 60, 0, 0);
    free(want);
    free(got);
    mt_array_clear(&g);
    mt_array_clear(&t);
    mt_array_clear(&s);
    mt_array_clear(&big);
    mt_device_release(dev);
}

/* Builds a file: magic, version, length field, dict padded to 64 with spaces and '\n' (unless
 * raw_header), then the payload. Returns the length. */
static size_t craft(unsigned char *buf, size_t cap, int major, int minor, const char *dict,
                    const void *payload, size_t plen)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t dl = strlen(dict);
    size_t hlen = dl + 1;
    size_t pad = (64 - (pre + hlen) % 64) % 64;
    size_t field = hlen + pad;
    MT_CHECK(pre + field + plen <= cap);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = (unsigned char)minor;
    for (size_t i = 0; i < pre - 8; i++) buf[8 + i] = (unsigned char)(field >> (8 * i));
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', pad);
    buf[pre + field - 1] = '\n';
    if (plen) memcpy(buf + pre + field, payload, plen);
    return pre + field + plen;
}

/* Expects both the memory and the file loader to fail with code and needle; the messages name
 * "crafted.npy" and the file path respectively. */
static void expect_bad(mt_device *dev, const unsigned char *data, size_t len, mt_status code,
                       const char *needle)
{
    mt_array a = {0};
    MT_CHECK_ERR(mt_npy_load_mem(&a, dev, data, len, "crafted.npy"), code, needle);
    MT_CHECK(strstr(mt_last_error(), "crafted.npy") != NULL);
    MT_CHECK(a.buf == NULL);
    const char *path = path_in_tmp("crafted_file.npy");
    MT_CHECK_OK(mt_file_write_atomic(path, data, len, 0644));
    MT_CHECK_ERR(mt_npy_load(&a, dev, path, 0), code, needle);
    MT_CHECK(strstr(mt_last_error(), path) != NULL);
    MT_CHECK(a.buf == NULL);
}

MT_TEST(npy_malformed_files)
{
    mt_device *dev = open_dev();
    static unsigned char buf[1 << 16];
    float payload[1000];
    for (int i = 0; i < 1000; i++) payload[i] = (float)i;
    size_t n;
    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";

    n = craft(buf, sizeof buf, 1, 0, good, payload, 16);
    buf[5] = 'X';
    expect_bad(dev, buf, n, MT_ERR_FORMAT, "bad magic");
    expect_bad(dev, (const unsigned char *)"PK\x03\x04zipfile", 11, MT_ERR_FORMAT, "bad magic");
    expect_bad(dev, (const unsigned char *)"", 0, MT_ERR_FORMAT, "truncated header");
    expect_bad(dev, (const unsigned char *)"\x93NUM", 4, MT_ERR_FORMAT, "truncated header");
    expect_bad(dev, (const unsigned char *)"\x93NUMPY\x01\x00\x40", 9, MT_ERR_FORMAT,
               "truncated header");
    n = craft(buf, sizeof buf, 4, 0, good, payload, 16);
    expect_bad(dev, buf, n, MT_ERR_FORMAT, "unsupported .npy format version 4.0");
    n = craft(buf, sizeof buf, 1, 1, good, payload, 16);
    expect_bad(dev, buf, n, MT_ERR_FORMAT, "version 1.1");
    /* header length past EOF: cut the file inside the header */
    n = craft(buf, sizeof buf, 1, 0, good, payload, 0);
    expect_bad(dev, buf, 40, MT_ERR_FORMAT, "runs past the end of the file");
    n = craft(buf, sizeof buf, 2, 0, good, payload, 0);
    buf[11] = 0x7f; /* 2 GB header length */
    expect_bad(dev, buf, n, MT_ERR_FORMAT, "runs past the end");

    static const struct {
        const char *dict;
        mt_status code;
        const char *needle;
    } bad[] = {
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE,
         "unsupported dtype descr '<c8' (complex)"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE,
         "object arrays"},
        {"{'descr': '<U4', 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE, "strings"},
        {"{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE,
         "datetime"},
        {"{'descr': '<f16', 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE,
         "long double"},
        {"{'descr': '<i3', 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE,
         "unsupported dtype descr '<i3'"},
        {"{'descr': '|V8', 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE, "void"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", MT_ERR_DTYPE,
         "structured"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, x), }", MT_ERR_FORMAT,
         "bad shape text"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [4], }", MT_ERR_FORMAT,
         "bad shape text"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", MT_ERR_FORMAT,
         "1-tuple needs a comma"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4), }", MT_ERR_FORMAT,
         "negative dimension"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 1, 1, 1, 1, 1, 1, 1), }",
         MT_ERR_RANGE, "more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
         MT_ERR_RANGE, "size overflow"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
         MT_ERR_RANGE, "size overflow"},
        {"{'descr': '<f4', 'fortran_order': maybe, 'shape': (4,), }", MT_ERR_FORMAT,
         "True or False"},
        {"{'descr': '<f4', 'shape': (4,), }", MT_ERR_FORMAT, "key 'fortran_order' missing"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1}", MT_ERR_FORMAT,
         "unexpected key 'extra'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}",
         MT_ERR_FORMAT, "repeated"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (4,)}", MT_ERR_FORMAT,
         "expected ',' or '}'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} junk", MT_ERR_FORMAT,
         "after the dict"},
        {"['descr', '<f4']", MT_ERR_FORMAT, "expected a dict"},
        {"{'descr: '<f4', 'fortran_order': False, 'shape': (4,)}", MT_ERR_FORMAT, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = craft(buf, sizeof buf, 1, 0, bad[i].dict, payload, 16);
        expect_bad(dev, buf, n, bad[i].code, bad[i].needle);
    }
    /* payload shorter than promised, and a header claiming 2^40 elements (no allocation) */
    n = craft(buf, sizeof buf, 1, 0,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }", payload, 1000);
    expect_bad(dev, buf, n, MT_ERR_FORMAT,
               "truncated: header promises 4000 bytes of float32 data (shape (1000,)), file has "
               "1000");
    uint64_t before = allocs_of(dev);
    n = craft(buf, sizeof buf, 1, 0,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", payload,
              64);
    expect_bad(dev, buf, n, MT_ERR_FORMAT, "header promises 4398046511104 bytes");
    MT_CHECK_EQ_INT(allocs_of(dev), before);
    /* max_bytes */
    n = craft(buf, sizeof buf, 1, 0,
              "{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }", payload, 4000);
    const char *path = path_in_tmp("limit.npy");
    MT_CHECK_OK(mt_file_write_atomic(path, buf, n, 0644));
    mt_array a = {0};
    MT_CHECK_ERR(mt_npy_load(&a, dev, path, 3999), MT_ERR_RANGE, "over the limit of 3999 bytes");
    MT_CHECK_OK(mt_npy_load(&a, dev, path, 4000));
    mt_array_clear(&a);
    MT_CHECK_ERR(mt_npy_load(&a, dev, path_in_tmp("missing.npy"), 0), MT_ERR_IO, "missing.npy");
    MT_CHECK_ERR(mt_npy_load(&a, dev, mt_test_tmpdir(), 0), MT_ERR_IO, NULL);
    mt_device_release(dev);
}

MT_TEST(npy_lenient_headers)
{
    mt_device *dev = open_dev();
    static unsigned char buf[4096];
    int32_t v[6] = {1, -2, 3, -4, 5, -6};
    int32_t be[6];
    for (int i = 0; i < 6; i++) {
        uint32_t u = (uint32_t)v[i];
        be[i] = (int32_t)(u >> 24 | (u >> 8 & 0xff00) | (u << 8 & 0xff0000) | u << 24);
    }
    static const struct {
        int major;
        const char *dict;
        bool big;
    } ok[] = {
        {1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", false},
        {1, "{\"shape\" : ( 6 , ) ,'fortran_order':False,\t'descr':'<i4'}", false},
        {1, "{'shape': (6L,), 'descr': '=i4', 'fortran_order': False}", false},
        {1, "{'descr': 'i4', 'fortran_order': False, 'shape': (2, 3)}", false},
        {2, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", false},
        {3, "{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", false},
        {1, "{'descr': '>i4', 'fortran_order': False, 'shape': (6,), }", true},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = craft(buf, sizeof buf, ok[i].major, 0, ok[i].dict, ok[i].big ? be : v, 24);
        /* trailing garbage after the payload is ignored, as NumPy ignores it */
        memcpy(buf + n, "GARBAGE", 7);
        mt_array a;
        MT_CHECK_OK(mt_npy_load_mem(&a, dev, buf, n + 7, "ok.npy"));
        MT_CHECK_EQ_INT(a.dtype, MT_INT32);
        MT_CHECK_EQ_INT(mt_array_size(&a), 6);
        int32_t got[6];
        MT_CHECK_OK(mt_array_to_host(got, sizeof got, &a));
        for (int k = 0; k < 6; k++) MT_CHECK_EQ_INT(got[k], v[k]);
        mt_array_clear(&a);
    }
    /* 0-d, bools normalised to 0/1, '|V2' as bfloat16, Fortran order on a 2-d file */
    double x = 2.5;
    size_t n = craft(buf, sizeof buf, 1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': ()}",
                     &x, 8);
    mt_array a;
    MT_CHECK_OK(mt_npy_load_mem(&a, dev, buf, n, "0d.npy"));
    MT_CHECK_EQ_INT(a.ndim, 0);
    double y = 0;
    MT_CHECK_OK(mt_array_to_host(&y, 8, &a));
    MT_CHECK(y == 2.5);
    mt_array_clear(&a);
    unsigned char bools[4] = {0, 1, 2, 255};
    n = craft(buf, sizeof buf, 1, 0, "{'descr': '|b1', 'fortran_order': False, 'shape': (4,)}",
              bools, 4);
    MT_CHECK_OK(mt_npy_load_mem(&a, dev, buf, n, "b.npy"));
    unsigned char bb[4];
    MT_CHECK_OK(mt_array_to_host(bb, 4, &a));
    MT_CHECK(bb[0] == 0 && bb[1] == 1 && bb[2] == 1 && bb[3] == 1);
    mt_array_clear(&a);
    uint16_t bf[2] = {mt_f32_to_bf16(1.5f), mt_f32_to_bf16(-3.0f)};
    n = craft(buf, sizeof buf, 1, 0, "{'descr': '|V2', 'fortran_order': False, 'shape': (2,)}",
              bf, 4);
    MT_CHECK_OK(mt_npy_load_mem(&a, dev, buf, n, "bf.npy"));
    MT_CHECK_EQ_INT(a.dtype, MT_BFLOAT16);
    double *bv = read_vals(&a);
    MT_CHECK(bv[0] == 1.5 && bv[1] == -3.0);
    free(bv);
    mt_array_clear(&a);
    n = craft(buf, sizeof buf, 1, 0, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3)}",
              v, 24);
    MT_CHECK_OK(mt_npy_load_mem(&a, dev, buf, n, "f.npy"));
    MT_CHECK(mt_array_is_f_contiguous(&a));
    int32_t got[6];
    MT_CHECK_OK(mt_array_to_host(got, sizeof got, &a));
    /* F order: element (i, j) is v[i + 2 j] */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) MT_CHECK_EQ_INT(got[i * 3 + j], v[i + 2 * j]);
    mt_array_clear(&a);
    mt_device_release(dev);
}

/* ---------------------------------------------------------------- NumPy interoperability */

typedef struct npy_case {
    const char *name;
    mt_dtype dt;
    int32_t nd;
    int64_t dims[4];
    bool fortran;
} npy_case;

static const npy_case k_cases[] = {
    {"bool", MT_BOOL, 2, {3, 5}, false},     {"int8", MT_INT8, 1, {17}, false},
    {"int16", MT_INT16, 2, {4, 3}, false},   {"int32", MT_INT32, 3, {2, 3, 4}, false},
    {"int64", MT_INT64, 2, {5, 2}, false},   {"uint8", MT_UINT8, 1, {9}, false},
    {"uint16", MT_UINT16, 2, {2, 2}, false}, {"uint32", MT_UINT32, 1, {5}, false},
    {"uint64", MT_UINT64, 2, {3, 1}, false}, {"float16", MT_FLOAT16, 2, {3, 3}, false},
    {"float32", MT_FLOAT32, 2, {3, 4}, false}, {"float64", MT_FLOAT64, 1, {7}, false},
    {"f32F", MT_FLOAT32, 3, {3, 4, 2}, true}, {"i16F", MT_INT16, 2, {5, 3}, true},
    {"f64_0d", MT_FLOAT64, 0, {0}, false},   {"f32_empty", MT_FLOAT32, 2, {0, 3}, false},
    {"i32_long", MT_INT32, 1, {1234}, false},
};
#define NCASES (sizeof k_cases / sizeof k_cases[0])

static const char k_py[] =
    "import sys\n"
    "import numpy as np\n"
    "mode, d = sys.argv[1], sys.argv[2]\n"
    "INTS = ['int8','int16','int32','int64','uint8','uint16','uint32','uint64']\n"
    "def pat(dt, shape):\n"
    "    n = 1\n"
    "    for s in shape: n *= s\n"
    "    i = np.arange(n, dtype=np.uint64)\n"
    "    if dt == 'bool': v = (i % np.uint64(3)) == 0\n"
    "    elif dt in INTS: v = (i * np.uint64(2654435761)).astype(dt)\n"
    "    else:\n"
    "        f = ((i * np.uint64(37) + np.uint64(11)) % np.uint64(61)).astype(np.float64)\n"
    "        v = ((f - 30.0) * 0.5).astype(dt)\n"
    "    return v.reshape(shape)\n"
    "cases = []\n"
    "for line in open(d + '/cases.txt'):\n"
    "    w = line.split()\n"
    "    cases.append((w[0], w[1], w[2] == '1', tuple(int(x) for x in w[3:])))\n"
    "if mode == 'write':\n"
    "    for name, dt, fo, shape in cases:\n"
    "        a = pat(dt, shape)\n"
    "        if fo: a = np.asfortranarray(a)\n"
    "        np.save(d + '/np_' + name + '.npy', a)\n"
    "    np.save(d + '/np_be_f8.npy', pat('float64', (2, 3)).astype('>f8'))\n"
    "    np.save(d + '/np_be_i4F.npy', np.asfortranarray(pat('int32', (3, 2)).astype('>i4')))\n"
    "    for ver, dt in (((2, 0), 'float32'), ((3, 0), 'int16')):\n"
    "        with open(d + '/np_v%d_%s.npy' % (ver[0], dt), 'wb') as f:\n"
    "            np.lib.format.write_array(f, pat(dt, (4, 5)), version=ver)\n"
    "else:\n"
    "    out = open(d + '/result.txt', 'w')\n"
    "    for name, dt, fo, shape in cases:\n"
    "        a = np.load(d + '/ours_' + name + '.npy')\n"
    "        want = pat(dt, shape)\n"
    "        ok = (a.dtype == np.dtype(dt) and a.shape == shape and\n"
    "              bool(np.isfortran(a)) == (fo and a.ndim > 1) and np.array_equal(a, want))\n"
    "        out.write('%s %s %s %s\\n' % (name, 'OK' if ok else 'FAIL', a.dtype.str, a.shape))\n"
    "    a = np.load(d + '/ours_bf16.npy')\n"
    "    bits = (pat('float32', (2, 3)).view(np.uint32) >> 16).astype(np.uint16)\n"
    "    ok = a.dtype.itemsize == 2 and a.shape == (2, 3) and np.array_equal(a.view('<u2'), bits)\n"
    "    out.write('bf16 %s %s\\n' % ('OK' if ok else 'FAIL', a.dtype.str))\n"
    "    out.close()\n";

/* Writes the case list and the script; skips without python3 + numpy. */
static void py_setup(void)
{
    if (access("/usr/bin/python3", X_OK) != 0) MT_SKIP("/usr/bin/python3 is missing");
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
        MT_SKIP("numpy is not importable by /usr/bin/python3");
    FILE *f = fopen(path_in_tmp("cases.txt"), "w");
    MT_CHECK(f != NULL);
    for (size_t i = 0; i < NCASES; i++) {
        const char *dn = mt_dtype_name(k_cases[i].dt);
        fprintf(f, "%s %s %d", k_cases[i].name, dn, k_cases[i].fortran);
        for (int32_t k = 0; k < k_cases[i].nd; k++) fprintf(f, " %lld", (long long)k_cases[i].dims[k]);
        fprintf(f, "\n");
    }
    fclose(f);
    f = fopen(path_in_tmp("io.py"), "w");
    MT_CHECK(f != NULL);
    fputs(k_py, f);
    fclose(f);
}

static void py_run(const char *mode)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %s '%s'", path_in_tmp("io.py"), mode,
             mt_test_tmpdir());
    MT_CHECK_EQ_INT(system(cmd), 0);
}

MT_TEST(npy_reads_numpy_files)
{
    py_setup();
    py_run("write");
    mt_device *dev = open_dev();
    char name[128];
    for (size_t i = 0; i < NCASES; i++) {
        const npy_case *c = &k_cases[i];
        snprintf(name, sizeof name, "np_%s.npy", c->name);
        mt_array a, ours;
        MT_CHECK_OK(mt_npy_load(&a, dev, path_in_tmp(name), 0));
        check_pat(&a, c->dt, c->nd, c->dims);
        if (c->fortran) MT_CHECK(mt_array_is_f_contiguous(&a) && !mt_array_is_c_contiguous(&a));
        mt_array_clear(&a);
        /* our file for the same array is byte-identical to NumPy's */
        pat_array(&ours, dev, c->dt, c->nd, c->dims, c->fortran);
        const char *op = path_in_tmp("ours_cmp.npy");
        MT_CHECK_OK(mt_npy_save(op, &ours));
        size_t l1, l2;
        char *d1 = slurp(path_in_tmp(name), &l1), *d2 = slurp(op, &l2);
        if (l1 != l2 || memcmp(d1, d2, l1) != 0)
            mt_test_fail(__FILE__, __LINE__, "%s: our file differs from NumPy's (%zu vs %zu bytes)",
                         c->name, l2, l1);
        mt_free(d1);
        mt_free(d2);
        mt_array_clear(&ours);
    }
    /* big-endian, big-endian Fortran, format 2.0 and 3.0 */
    mt_array a;
    int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d45[2] = {4, 5};
    MT_CHECK_OK(mt_npy_load(&a, dev, path_in_tmp("np_be_f8.npy"), 0));
    check_pat(&a, MT_FLOAT64, 2, d23);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_npy_load(&a, dev, path_in_tmp("np_be_i4F.npy"), 0));
    check_pat(&a, MT_INT32, 2, d32);
    MT_CHECK(mt_array_is_f_contiguous(&a));
    mt_array_clear(&a);
    MT_CHECK_OK(mt_npy_load(&a, dev, path_in_tmp("np_v2_float32.npy"), 0));
    check_pat(&a, MT_FLOAT32, 2, d45);
    mt_array_clear(&a);
    MT_CHECK_OK(mt_npy_load(&a, dev, path_in_tmp("np_v3_int16.npy"), 0));
    check_pat(&a, MT_INT16, 2, d45);
    mt_array_clear(&a);
    mt_device_release(dev);
}

MT_TEST(npy_numpy_reads_ours)
{
    py_setup();
    mt_device *dev = open_dev();
    char name[128];
    for (size_t i = 0; i < NCASES; i++) {
        const npy_case *c = &k_cases[i];
        mt_array a;
        pat_array(&a, dev, c->dt, c->nd, c->dims, c->fortran);
        snprintf(name, sizeof name, "ours_%s.npy", c->name);
        MT_CHECK_OK(mt_npy_save(path_in_tmp(name), &a));
        mt_array_clear(&a);
    }
    /* bfloat16: the float32 pattern rounded (exactly) to bfloat16 */
    int64_t d23[2] = {2, 3};
    float f[6];
    uint16_t h[6];
    pat_fill(f, MT_FLOAT32, 6);
    for (int i = 0; i < 6; i++) h[i] = mt_f32_to_bf16(f[i]);
    mt_array a;
    MT_CHECK_OK(mt_array_from_host(&a, dev, MT_BFLOAT16, 2, d23, h));
    MT_CHECK_OK(mt_npy_save(path_in_tmp("ours_bf16.npy"), &a));
    mt_array_clear(&a);
    py_run("check");
    FILE *rf = fopen(path_in_tmp("result.txt"), "r");
    MT_CHECK(rf != NULL);
    char line[256];
    size_t lines = 0;
    while (fgets(line, sizeof line, rf)) {
        lines++;
        if (!strstr(line, " OK ")) mt_test_fail(__FILE__, __LINE__, "NumPy check: %s", line);
    }
    fclose(rf);
    MT_CHECK_EQ_INT(lines, NCASES + 1);
    mt_device_release(dev);
}

/* ================================================================ DLPack */

MT_TEST(dlpack_export_fields_and_roundtrip)
{
    mt_device *dev = open_host();
    for (int d = 0; d < MT_DTYPE_COUNT; d++) {
        int64_t dims[2] = {3, 4};
        mt_array a, b;
        pat_array(&a, dev, (mt_dtype)d, 2, dims, false);
        DLManagedTensor *t = NULL;
        MT_CHECK_OK(mt_array_to_dlpack(&t, &a));
        DLTensor *dl = &t->dl_tensor;
        MT_CHECK_EQ_INT(dl->device.device_type, kDLCPU);
        MT_CHECK_EQ_INT(dl->ndim, 2);
        MT_CHECK_EQ_INT(dl->dtype.lanes, 1);
        MT_CHECK_EQ_INT(dl->dtype.bits, 8 * mt_dtype_size((mt_dtype)d));
        int code = d == MT_BOOL ? 6 : d == MT_BFLOAT16 ? kDLBfloat
                 : mt_dtype_kind((mt_dtype)d) == 'i' ? kDLInt
                 : mt_dtype_kind((mt_dtype)d) == 'u' ? kDLUInt : kDLFloat;
        MT_CHECK_EQ_INT(dl->dtype.code, code);
        MT_CHECK(dl->shape[0] == 3 && dl->shape[1] == 4);
        MT_CHECK(dl->strides[0] == 4 && dl->strides[1] == 1);
        MT_CHECK(dl->data == mt_buffer_host_ptr(a.buf));
        MT_CHECK_EQ_INT(dl->byte_offset, a.offset);
        MT_CHECK_OK(mt_array_from_dlpack(&b, t));
        MT_CHECK_EQ_INT(b.dtype, d);
        /* zero copy: the same element 0 */
        MT_CHECK((char *)mt_buffer_host_ptr(b.buf) + b.offset ==
                 (char *)mt_buffer_host_ptr(a.buf) + a.offset);
        mt_array_clear(&a); /* the tensor keeps the memory alive */
        check_pat(&b, (mt_dtype)d, 2, dims);
        mt_array_clear(&b); /* calls the tensor's deleter, which drops the last reference */
    }
    mt_mem_stats s;
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.in_use, 0);

    /* a strided, offset, reversed view: element strides and byte_offset */
    int64_t dims[2] = {4, 6};
    mt_array a, v, b;
    pat_array(&a, dev, MT_FLOAT64, 2, dims, false);
    mt_slice sl[2] = {mt_slice_range(3, 0, -2), mt_slice_range(1, 6, 2)};
    MT_CHECK_OK(mt_array_slice(&v, &a, 2, sl));
    DLManagedTensor *t = NULL;
    MT_CHECK_OK(mt_array_to_dlpack(&t, &v));
    MT_CHECK(t->dl_tensor.strides[0] == -12 && t->dl_tensor.strides[1] == 2);
    MT_CHECK_EQ_INT(t->dl_tensor.byte_offset, v.offset);
    MT_CHECK_OK(mt_array_from_dlpack(&b, t));
    double *w = read_vals(&v), *g = read_vals(&b);
    MT_CHECK_ALLCLOSE(g, w, 6, 0, 0);
    MT_CHECK((char *)mt_buffer_host_ptr(b.buf) + b.offset ==
             (char *)mt_buffer_host_ptr(v.buf) + v.offset);
    free(w);
    free(g);
    mt_array_clear(&b);
    mt_array_clear(&v);
    /* an exported tensor that is never imported is released by calling its deleter */
    MT_CHECK_OK(mt_array_to_dlpack(&t, &a));
    mt_array_clear(&a);
    t->deleter(t);
    mt_device_mem_stats(dev, &s);
    MT_CHECK_EQ_INT(s.in_use, 0);
    mt_device_release(dev);
}

typedef struct foreign {
    DLManagedTensor t;
    int64_t shape[MT_MAX_DIMS + 2], strides[MT_MAX_DIMS + 2];
    double *mem;
    int *count;
} foreign;

static void foreign_deleter(DLManagedTensor *self)
{
    foreign *f = self->manager_ctx;
    (*f->count)++;
    free(f->mem);
    free(f);
}

static foreign *foreign_new(int *count, int64_t n)
{
    foreign *f = calloc(1, sizeof *f);
    f->mem = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) f->mem[i] = (double)i;
    f->count = count;
    f->t.manager_ctx = f;
    f->t.deleter = foreign_deleter;
    f->t.dl_tensor.data = f->mem;
    f->t.dl_tensor.device.device_type = kDLCPU;
    f->t.dl_tensor.dtype.code = kDLFloat;
    f->t.dl_tensor.dtype.bits = 64;
    f->t.dl_tensor.dtype.lanes = 1;
    f->t.dl_tensor.shape = f->shape;
    return f;
}

MT_TEST(dlpack_import_foreign_and_deleter_once)
{
    int count = 0;
    foreign *f = foreign_new(&count, 12);
    f->t.dl_tensor.ndim = 2;
    f->shape[0] = 3;
    f->shape[1] = 4; /* strides NULL: C-contiguous */
    mt_array a, v;
    MT_CHECK_OK(mt_array_from_dlpack(&a, &f->t));
    MT_CHECK(mt_array_is_c_contiguous(&a));
    MT_CHECK((char *)mt_buffer_host_ptr(a.buf) + a.offset == (char *)f->mem);
    mt_array_view(&v, &a);
    mt_array_clear(&a);
    MT_CHECK_EQ_INT(count, 0);
    double *g = read_vals(&v);
    for (int i = 0; i < 12; i++) MT_CHECK(g[i] == i);
    free(g);
    /* writes go to the producer's memory */
    MT_CHECK_OK(mt_array_fill(&v, mt_scalar_f64(7.0)));
    MT_CHECK(f->mem[11] == 7.0);
    mt_array_clear(&v);
    MT_CHECK_EQ_INT(count, 1);

    /* explicit negative strides and a byte offset: data + byte_offset is element 0 */
    f = foreign_new(&count, 12);
    f->t.dl_tensor.ndim = 2;
    f->shape[0] = 3;
    f->shape[1] = 2;
    f->t.dl_tensor.strides = f->strides;
    f->strides[0] = -4;
    f->strides[1] = 2;
    f->t.dl_tensor.byte_offset = 8 * 9; /* element 0 is mem[9] */
    MT_CHECK_OK(mt_array_from_dlpack(&a, &f->t));
    g = read_vals(&a);
    const double want[6] = {9, 11, 5, 7, 1, 3};
    MT_CHECK_ALLCLOSE(g, want, 6, 0, 0);
    free(g);
    mt_array_clear(&a);
    MT_CHECK_EQ_INT(count, 2);
}

MT_TEST(dlpack_errors_keep_ownership)
{
    int count = 0;
    foreign *f = foreign_new(&count, 4);
    f->t.dl_tensor.ndim = 1;
    f->shape[0] = 4;
    mt_array a = {0};
    f->t.dl_tensor.dtype.code = kDLComplex;
    MT_CHECK_ERR(mt_array_from_dlpack(&a, &f->t), MT_ERR_DTYPE, "complex");
    f->t.dl_tensor.dtype.code = kDLFloat;
    f->t.dl_tensor.dtype.lanes = 4;
    MT_CHECK_ERR(mt_array_from_dlpack(&a, &f->t), MT_ERR_DTYPE, "lanes=4");
    f->t.dl_tensor.dtype.lanes = 1;
    f->t.dl_tensor.dtype.bits = 24;
    MT_CHECK_ERR(mt_array_from_dlpack(&a, &f->t), MT_ERR_DTYPE, "24 bits");
    f->t.dl_tensor.dtype.bits = 64;
    f->t.dl_tensor.device.device_type = kDLVulkan;
    MT_CHECK_ERR(mt_array_from_dlpack(&a, &f->t), MT_ERR_UNSUPPORTED, "Vulkan");
    f->t.dl_tensor.device.device_type = kDLCPU;
    f->t.dl_tensor.ndim = 9;
    MT_CHECK_ERR(mt_array_from_dlpack(&a, &f->t), MT_ERR_RANGE, "ndim 9");
    f->t.dl_tensor.ndim = 1;
    f->shape[0] = -1;
    MT_CHECK_ERR(mt_array_from_dlpack(&a, &f->t), MT_ERR_INVALID, "negative dimension");
    f->shape[0] = 4;
    MT_CHECK_ERR(mt_array_from_dlpack(&a, NULL), MT_ERR_INVALID, NULL);
    /* nothing was taken: the caller still owns the tensor */
    MT_CHECK_EQ_INT(count, 0);
    MT_CHECK(a.buf == NULL);
    f->t.deleter(&f->t);
    MT_CHECK_EQ_INT(count, 1);

    /* export: byte strides that are not whole elements */
    mt_device *dev = open_host();
    int64_t dims[1] = {4};
    mt_array x;
    pat_array(&x, dev, MT_FLOAT32, 1, dims, false);
    mt_array odd = x; /* borrowed struct copy, not cleared */
    odd.dims[0] = 2;
    odd.strides[0] = 6;
    DLManagedTensor *t = NULL;
    MT_CHECK_ERR(mt_array_to_dlpack(&t, &odd), MT_ERR_INVALID, "not a multiple of the item size");
    MT_CHECK(t == NULL);
    mt_array empty = {0};
    MT_CHECK_ERR(mt_array_to_dlpack(&t, &empty), MT_ERR_INVALID, NULL);
    mt_array_clear(&x);
    mt_device_release(dev);
}

/* ================================================================ random */

/* The documented per-element values, computed here from mt_philox4x32 directly. */
static void philox_words(uint64_t seed, uint64_t ctr, uint32_t w[4])
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t c[4] = {(uint32_t)ctr, (uint32_t)(ctr >> 32), 0, 0};
    mt_philox4x32(c, key, w);
}

static double expect_uniform(mt_dtype dt, uint64_t seed, uint64_t ctr, double lo, double hi)
{
    uint32_t w[4];
    philox_words(seed, ctr, w);
    if (dt == MT_FLOAT64) {
        volatile double t = mt_u64_to_unit_f64(w[0], w[1]) * (hi - lo);
        return t + lo;
    }
    if (mt_dtype_is_float(dt)) {
        volatile float t = mt_u32_to_unit_f32(w[0]) * (float)(hi - lo);
        float v = t + (float)lo;
        if (dt == MT_FLOAT16) return mt_f16_to_f32(mt_f32_to_f16(v));
        if (dt == MT_BFLOAT16) return mt_bf16_to_f32(mt_f32_to_bf16(v));
        return v;
    }
    volatile double t = mt_u64_to_unit_f64(w[0], w[1]) * (hi - lo);
    double v = floor(t + lo);
    return v > ceil(hi) - 1 ? ceil(hi) - 1 : v;
}

static double expect_normal64(uint64_t seed, uint64_t ctr, double mean, double sd)
{
    uint32_t w[4];
    philox_words(seed, ctr, w);
    double u1 = mt_u64_to_unit_f64(w[0], w[1]), u2 = mt_u64_to_unit_f64(w[2], w[3]);
    return sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2) * sd + mean;
}

MT_TEST(random_uniform_contract)
{
    mt_device *dev = open_dev();
    const uint64_t seed = 0x0123456789ABCDEFULL;
    /* a Philox value checked directly: element 5 of a float32 uniform in [0, 1) */
    {
        int64_t d[1] = {8};
        mt_array a;
        MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT32, 1, d, 'C'));
        MT_CHECK_OK(mt_array_random_uniform(&a, seed, 0, 0.0, 1.0));
        float got[8];
        MT_CHECK_OK(mt_array_to_host(got, sizeof got, &a));
        uint32_t w[4];
        const uint32_t key[2] = {0x89ABCDEFu, 0x01234567u}, ctr[4] = {5, 0, 0, 0};
        mt_philox4x32(ctr, key, w);
        MT_CHECK(got[5] == (float)(w[0] >> 8) * 0x1p-24f);
        mt_array_clear(&a);
    }
    const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT32, MT_UINT8,
                            MT_INT64};
    for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++) {
        mt_dtype dt = dts[t];
        bool isf = mt_dtype_is_float(dt);
        double lo = isf ? -2.5 : 3, hi = isf ? 4.0 : 250;
        int64_t d[2] = {37, 29};
        mt_array a, b;
        MT_CHECK_OK(mt_array_empty(&a, dev, dt, 2, d, 'C'));
        uint64_t off = (uint64_t)1 << 33; /* crosses into the counter's high word */
        MT_CHECK_OK(mt_array_random_uniform(&a, seed, off, lo, hi));
        double *v = read_vals(&a);
        for (int64_t i = 0; i < 37 * 29; i++) {
            double e = expect_uniform(dt, seed, off + (uint64_t)i, lo, hi);
            if (v[i] != e)
                mt_test_fail(__FILE__, __LINE__, "%s element %lld: %.17g, expected %.17g",
                             mt_dtype_name(dt), (long long)i, v[i], e);
            MT_CHECK(v[i] >= lo && v[i] <= hi);
        }
        /* reproducible, and offset k shifts the stream: a(off + 7)[i] == a(off)[i + 7] */
        MT_CHECK_OK(mt_array_empty(&b, dev, dt, 2, d, 'C'));
        MT_CHECK_OK(mt_array_random_uniform(&b, seed, off + 7, lo, hi));
        double *w = read_vals(&b);
        MT_CHECK_ALLCLOSE(w, v + 7, 37 * 29 - 7, 0, 0);
        free(w);
        /* a different seed differs */
        MT_CHECK_OK(mt_array_random_uniform(&b, seed + 1, off, lo, hi));
        w = read_vals(&b);
        int64_t same = 0;
        for (int64_t i = 0; i < 37 * 29; i++) same += w[i] == v[i];
        MT_CHECK(same < 37 * 29 / (isf ? 20 : 10));
        free(w);
        free(v);
        mt_array_clear(&a);
        mt_array_clear(&b);
    }
    /* a strided view: element i is the C-order index over the view's shape */
    int64_t d[2] = {6, 8};
    mt_array base, tv, c;
    MT_CHECK_OK(mt_array_zeros(&base, dev, MT_FLOAT64, 2, d));
    MT_CHECK_OK(mt_array_transpose(&tv, &base, NULL)); /* (8, 6) */
    MT_CHECK_OK(mt_array_random_uniform(&tv, 99, 3, 0, 1));
    int64_t d86[2] = {8, 6};
    MT_CHECK_OK(mt_array_empty(&c, dev, MT_FLOAT64, 2, d86, 'C'));
    MT_CHECK_OK(mt_array_random_uniform(&c, 99, 3, 0, 1));
    double *x = read_vals(&tv), *y = read_vals(&c);
    MT_CHECK_ALLCLOSE(x, y, 48, 0, 0);
    free(x);
    free(y);
    mt_array_clear(&c);
    mt_array_clear(&tv);
    mt_array_clear(&base);
    mt_device_release(dev);
}

static void moments(const mt_array *a, double *mean, double *var)
{
    double *v = read_vals(a);
    int64_t n = mt_array_size(a);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *var = s2 / (double)(n - 1);
    free(v);
}

MT_TEST(random_statistics)
{
    mt_device *dev = open_dev();
    const int64_t N = 100000;
    const double rn = sqrt((double)N);
    int64_t d[1] = {N};
    mt_array a;
    double mean, var;
    /* uniform [2, 5): mean 3.5, variance 0.75; 5-sigma bounds */
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT32, 1, d, 'C'));
    MT_CHECK_OK(mt_array_random_uniform(&a, 42, 0, 2, 5));
    moments(&a, &mean, &var);
    MT_CHECK(fabs(mean - 3.5) < 5 * sqrt(0.75) / rn);
    MT_CHECK(fabs(var - 0.75) < 5 * sqrt(81.0 / 80.0 - 0.75 * 0.75) / rn); /* (mu4 - s^4) */
    /* normal float32 (mean -1, sd 0.5): variance sd^2, its sd sqrt(2) sd^2 / sqrt(N) */
    MT_CHECK_OK(mt_array_random_normal(&a, 43, 0, -1, 0.5));
    moments(&a, &mean, &var);
    MT_CHECK(fabs(mean + 1) < 5 * 0.5 / rn);
    MT_CHECK(fabs(var - 0.25) < 5 * sqrt(2.0) * 0.25 / rn);
    /* bernoulli 0.3 */
    MT_CHECK_OK(mt_array_random_bernoulli(&a, 44, 0, 0.3));
    moments(&a, &mean, &var);
    MT_CHECK(fabs(mean - 0.3) < 5 * sqrt(0.21) / rn);
    mt_array_clear(&a);
    /* normal float64 against the formula, and its moments */
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_FLOAT64, 1, d, 'C'));
    MT_CHECK_OK(mt_array_random_normal(&a, 45, 11, 1, 2));
    double *v = read_vals(&a);
    for (int64_t i = 0; i < 1000; i++)
        MT_CHECK_CLOSE(v[i], expect_normal64(45, 11 + (uint64_t)i, 1, 2), 1e-13, 1e-13);
    free(v);
    moments(&a, &mean, &var);
    MT_CHECK(fabs(mean - 1) < 5 * 2 / rn);
    MT_CHECK(fabs(var - 4) < 5 * sqrt(2.0) * 4 / rn);
    mt_array_clear(&a);
    /* integers in [0, 10): every value, counts near N/10 */
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_INT32, 1, d, 'C'));
    MT_CHECK_OK(mt_array_random_uniform(&a, 46, 0, 0, 10));
    int32_t *iv = malloc((size_t)N * 4);
    MT_CHECK_OK(mt_array_to_host(iv, (size_t)N * 4, &a));
    int64_t cnt[10] = {0};
    for (int64_t i = 0; i < N; i++) {
        MT_CHECK(iv[i] >= 0 && iv[i] < 10);
        cnt[iv[i]]++;
    }
    for (int i = 0; i < 10; i++) MT_CHECK(llabs(cnt[i] - N / 10) < 5 * (int64_t)sqrt(N * 0.09));
    free(iv);
    mt_array_clear(&a);
    /* bool bernoulli: exactly 0/1, p = 0 and p = 1 */
    MT_CHECK_OK(mt_array_empty(&a, dev, MT_BOOL, 1, d, 'C'));
    MT_CHECK_OK(mt_array_random_bernoulli(&a, 47, 0, 1.0));
    moments(&a, &mean, &var);
    MT_CHECK(mean == 1.0);
    MT_CHECK_OK(mt_array_random_bernoulli(&a, 47, 0, 0.0));
    moments(&a, &mean, &var);
    MT_CHECK(mean == 0.0);
    mt_array_clear(&a);
    mt_device_release(dev);
}

MT_TEST(random_errors)
{
    mt_device *dev = open_dev();
    int64_t d[1] = {4};
    mt_array b, i8, f, ro;
    MT_CHECK_OK(mt_array_empty(&b, dev, MT_BOOL, 1, d, 'C'));
    MT_CHECK_OK(mt_array_empty(&i8, dev, MT_INT8, 1, d, 'C'));
    MT_CHECK_OK(mt_array_empty(&f, dev, MT_FLOAT32, 1, d, 'C'));
    MT_CHECK_ERR(mt_array_random_uniform(&b, 1, 0, 0, 1), MT_ERR_DTYPE, "random_bernoulli");
    MT_CHECK_ERR(mt_array_random_uniform(&i8, 1, 0, 0, 1000), MT_ERR_RANGE, "int8");
    MT_CHECK_ERR(mt_array_random_uniform(&i8, 1, 0, 5, 5), MT_ERR_INVALID, "empty");
    MT_CHECK_ERR(mt_array_random_uniform(&f, 1, 0, 0, INFINITY), MT_ERR_INVALID, "finite");
    MT_CHECK_ERR(mt_array_random_normal(&i8, 1, 0, 0, 1), MT_ERR_DTYPE, "not a float dtype");
    MT_CHECK_ERR(mt_array_random_normal(&f, 1, 0, 0, -1), MT_ERR_INVALID, "stddev");
    MT_CHECK_ERR(mt_array_random_bernoulli(&f, 1, 0, 1.5), MT_ERR_INVALID, "outside [0, 1]");
    MT_CHECK_ERR(mt_array_random_bernoulli(&f, 1, 0, NAN), MT_ERR_INVALID, "outside [0, 1]");
    int64_t d24[2] = {2, 4};
    MT_CHECK_OK(mt_array_broadcast_to(&ro, &f, 2, d24));
    MT_CHECK_ERR(mt_array_random_uniform(&ro, 1, 0, 0, 1), MT_ERR_INVALID, "not writeable");
    mt_array empty = {0};
    MT_CHECK_ERR(mt_array_random_normal(&empty, 1, 0, 0, 1), MT_ERR_INVALID, NULL);
    mt_array_clear(&ro);
    mt_array_clear(&b);
    mt_array_clear(&i8);
    mt_array_clear(&f);
    mt_device_release(dev);
}

/* The kernel path (RAND_* nodes in a generated elementwise kernel, what non-host devices run)
 * against the direct host computation, on the device under test. */
MT_TEST(random_kernel_nodes_agree)
{
    mt_device *dev = open_dev();
    int64_t d[2] = {19, 23};
    const mt_sop ops[2] = {MT_SOP_RAND_UNIFORM, MT_SOP_RAND_NORMAL};
    const mt_dtype dts[2] = {MT_FLOAT32, MT_FLOAT64};
    for (int o = 0; o < 2; o++)
        for (int t = 0; t < 2; t++) {
            mt_kexpr e;
            mt_kexpr_init(&e);
            int32_t r = mt_kexpr_rand(&e, ops[o], 0, dts[t]);
            int32_t v = mt_kexpr_binary(&e, MT_SOP_MUL, r, mt_kexpr_param(&e, 2, dts[t]));
            v = mt_kexpr_binary(&e, MT_SOP_ADD, v, mt_kexpr_param(&e, 3, dts[t]));
            MT_CHECK(v >= 0);
            MT_CHECK_OK(mt_kexpr_add_output(&e, v));
            mt_array k, h;
            MT_CHECK_OK(mt_array_empty(&k, dev, dts[t], 2, d, 'C'));
            MT_CHECK_OK(mt_array_empty(&h, dev, dts[t], 2, d, 'C'));
            const double lo = -0.75, hi = 2.0;
            double scale = o == 0 ? hi - lo : 1.5, shift = o == 0 ? lo : 0.25;
            mt_scalar prm[4] = {mt_scalar_u64(0xFEEDFACECAFEBEEFULL), mt_scalar_u64(12345),
                                mt_scalar_f64(scale), mt_scalar_f64(shift)};
            mt_array *outs[1] = {&k};
            MT_CHECK_OK(mt_elemwise(&e, 0, NULL, outs, 4, prm));
            if (o == 0)
                MT_CHECK_OK(mt_array_random_uniform(&h, 0xFEEDFACECAFEBEEFULL, 12345, lo, hi));
            else
                MT_CHECK_OK(mt_array_random_normal(&h, 0xFEEDFACECAFEBEEFULL, 12345, shift,
                                                   scale));
            double *x = read_vals(&k), *y = read_vals(&h);
            /* uniform bit-identical; normal within libm differences */
            double tol = o == 0 ? 0 : dts[t] == MT_FLOAT32 ? 4e-6 : 1e-13;
            MT_CHECK_ALLCLOSE(x, y, 19 * 23, tol, tol);
            free(x);
            free(y);
            mt_array_clear(&k);
            mt_array_clear(&h);
            mt_kexpr_deinit(&e);
        }
    mt_device_release(dev);
}

/* ================================================================ OpenCL */

MT_TEST(opencl_random_matches_host)
{
    mt_device *cl = open_opencl(), *host = open_host();
    int64_t d[2] = {33, 65};
    const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_INT32};
    for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++) {
        mt_array a, h;
        MT_CHECK_OK(mt_array_empty(&a, cl, dts[t], 2, d, 'C'));
        MT_CHECK_OK(mt_array_empty(&h, host, dts[t], 2, d, 'C'));
        double lo = dts[t] == MT_INT32 ? -50 : -1, hi = dts[t] == MT_INT32 ? 50 : 3;
        MT_CHECK_OK(mt_array_random_uniform(&a, 7, 1000, lo, hi));
        MT_CHECK_OK(mt_array_random_uniform(&h, 7, 1000, lo, hi));
        double *x = read_vals(&a), *y = read_vals(&h);
        MT_CHECK_ALLCLOSE(x, y, 33 * 65, 0, 0); /* bit-identical */
        free(x);
        free(y);
        if (mt_dtype_is_float(dts[t])) {
            MT_CHECK_OK(mt_array_random_normal(&a, 8, 5, 0.5, 2));
            MT_CHECK_OK(mt_array_random_normal(&h, 8, 5, 0.5, 2));
            x = read_vals(&a);
            y = read_vals(&h);
            double tol = dts[t] == MT_FLOAT32 ? 4e-6 : 1e-13;
            MT_CHECK_ALLCLOSE(x, y, 33 * 65, tol, tol);
            free(x);
            free(y);
        }
        mt_array_clear(&a);
        mt_array_clear(&h);
    }
    mt_array a, h;
    MT_CHECK_OK(mt_array_empty(&a, cl, MT_FLOAT32, 2, d, 'C'));
    MT_CHECK_OK(mt_array_empty(&h, host, MT_FLOAT32, 2, d, 'C'));
    MT_CHECK_OK(mt_array_random_bernoulli(&a, 9, 0, 0.4));
    MT_CHECK_OK(mt_array_random_bernoulli(&h, 9, 0, 0.4));
    double *x = read_vals(&a), *y = read_vals(&h);
    MT_CHECK_ALLCLOSE(x, y, 33 * 65, 0, 0);
    free(x);
    free(y);
    mt_array_clear(&a);
    mt_array_clear(&h);
    mt_device_release(host);
    mt_device_release(cl);
}
