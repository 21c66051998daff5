/* Writes the HDF5 file the lazy-loading tests read (with the HDF5 C library, so no h5py is
 * needed): "X" big-endian int16 [n, 3, 4] (b01c images), "Xf" float64 [n, 5] with values that
 * float32 must round, "Xc" gzip-compressed float32 [n, 6] in chunks of 4 rows, and "y" int32
 * labels i % 7. Only with MT_HAVE_HDF5. */
#ifndef TEST_DATA_H5_H
#define TEST_DATA_H5_H

#include "mltrain/mt_config.h"
#include "mt_test.h"

#if MT_HAVE_HDF5
#include <hdf5.h>

static inline double h5_xf_value(int64_t i, int64_t j)
{
    return (double)i * 0.1 + (double)j / 3.0 - 2.5;
}

static inline void h5_write(hid_t f, const char *name, hid_t file_type, hid_t mem_type, int nd,
                            const hsize_t *dims, const void *data, hid_t dcpl)
{
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    MT_CHECK(sp >= 0);
    hid_t ds = H5Dcreate2(f, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    MT_CHECK(ds >= 0);
    MT_CHECK(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Sclose(sp);
}

static inline void write_lazy_h5(const char *path, int64_t n)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    MT_CHECK(f >= 0);
    int16_t *x = mt_malloc((size_t)n * 12 * sizeof *x);
    double *xf = mt_malloc((size_t)n * 5 * sizeof *xf);
    float *xc = mt_malloc((size_t)n * 6 * sizeof *xc);
    int32_t *y = mt_malloc((size_t)n * sizeof *y);
    MT_CHECK(x && xf && xc && y);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < 12; j++)
            x[i * 12 + j] = (int16_t)((i * 131 + j * 17) % 2000 - 1000);
        for (int64_t j = 0; j < 5; j++)
            xf[i * 5 + j] = h5_xf_value(i, j);
        for (int64_t j = 0; j < 6; j++)
            xc[i * 6 + j] = (float)(i * 6 + j) * 0.25f;
        y[i] = (int32_t)(i % 7);
    }
    hsize_t d3[3] = {(hsize_t)n, 3, 4}, d2[2] = {(hsize_t)n, 5}, dc[2] = {(hsize_t)n, 6},
            d1[1] = {(hsize_t)n};
    h5_write(f, "X", H5T_STD_I16BE, H5T_NATIVE_INT16, 3, d3, x, H5P_DEFAULT);
    h5_write(f, "Xf", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d2, xf, H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[2] = {4, 6};
    MT_CHECK(H5Pset_chunk(dcpl, 2, chunk) >= 0);
    MT_CHECK(H5Pset_deflate(dcpl, 4) >= 0);
    h5_write(f, "Xc", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dc, xc, dcpl);
    H5Pclose(dcpl);
    h5_write(f, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, y, H5P_DEFAULT);
    MT_CHECK(H5Fclose(f) >= 0);
    mt_free(x);
    mt_free(xf);
    mt_free(xc);
    mt_free(y);
}
#endif

#endif
