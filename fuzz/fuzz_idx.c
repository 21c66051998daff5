/* Fuzz target: the IDX reader (data idx.c; MNIST-format files, raw or gzip, told apart by
 * content). The first input byte picks the form, the rest is the file:
 *   bit 0 clear: the bytes as they are (a raw file, or gzip bytes the fuzzer mutated);
 *   bit 0 set:   the bytes gzip-compressed first, so that the fuzzer mutates the IDX header and
 *                payload inside a valid gzip stream;
 *   bit 1:       also load it as the images of an IDX dataset, lazily when bit 2 is set (with a
 *                gather of the first and last rows).
 * The file is read with mt_idx_load (64 MiB cap, also MLTRAIN_DATA_MAX_BYTES), so a header
 * promising more is an error, never an allocation. Invariant checked: a raw file never yields
 * more bytes than it holds. */
#include <zlib.h>

#include "fuzz_common.h"
#include "fuzz_dataset.h"
#include "mltrain/data.h"
#include "mltrain/gpuarray.h"

#define FUZZ_MAX_BYTES ((size_t)64 << 20)

static uint8_t *gzip_bytes(const uint8_t *data, size_t size, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    uint8_t *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static void as_dataset(const char *path, mt_data_load load)
{
    mt_dataset *d = NULL;
    if (mt_dataset_idx_mode(&d, path, NULL, 1.0 / 255, load) == MT_OK) mt_fuzz_gather_ends(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    setenv("MLTRAIN_DATA_MAX_BYTES", "64M", 1);
    uint8_t mode = data[0];
    const uint8_t *file = data + 1;
    size_t len = size - 1;
    uint8_t *gz = NULL;
    if (mode & 1) {
        if (!(gz = gzip_bytes(file, len, &len))) return 0;
        file = gz;
    }
    const char *path = mt_fuzz_write_file("images-idx", file, len);
    bool raw = !(len >= 2 && file[0] == 0x1f && file[1] == 0x8b);
    mt_array a = {0};
    if (mt_idx_load(&a, path, FUZZ_MAX_BYTES) == MT_OK) {
        MT_FUZZ_CHECK(!raw || mt_array_nbytes(&a) <= len, "%zu bytes from a %zu-byte raw file",
                      (size_t)mt_array_nbytes(&a), len);
        mt_array_clear(&a);
    }
    if (mode & 2) as_dataset(path, (mode & 4) ? MT_DATA_LOAD_LAZY : MT_DATA_LOAD_MEMORY);
    free(gz);
    return 0;
}
