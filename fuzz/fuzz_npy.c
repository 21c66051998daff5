/* Fuzz target: the .npy reader (gpuarray npy.c) and the .npy dataset (data readers.c, lazy.c).
 * The input is the file. It is read from memory (mt_npy_load_mem onto the host device), its
 * header from a scratch file (mt_npy_read_info), and as a dataset X in memory and lazily (with
 * a gather of the first and last rows, which reads by byte offset). Decoded arrays are capped
 * at 64 MiB (MLTRAIN_DATA_MAX_BYTES and max_bytes), so a header promising more is an error,
 * never an allocation. Invariant checked: a loaded array never holds more bytes than the
 * input. */
#include "fuzz_common.h"
#include "fuzz_dataset.h"
#include "mltrain/data.h"
#include "mltrain/gpuarray.h"

#define FUZZ_MAX_BYTES ((size_t)64 << 20)

static mt_device *host(void)
{
    static mt_device *dev;
    if (!dev) {
        setenv("MLTRAIN_DATA_MAX_BYTES", "64M", 1);
        if (mt_device_open(&dev, "host") != MT_OK) abort();
    }
    return dev;
}

static void as_dataset(const char *path, mt_data_load load)
{
    mt_dataset *d = NULL;
    if (mt_dataset_npy_mode(&d, path, NULL, load) == MT_OK) mt_fuzz_gather_ends(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mt_device *dev = host();
    mt_array a = {0};
    if (mt_npy_load_mem(&a, dev, data, size, "fuzz.npy") == MT_OK) {
        MT_FUZZ_CHECK(mt_array_nbytes(&a) <= size, "%zu bytes loaded from a %zu-byte file",
                      (size_t)mt_array_nbytes(&a), size);
        mt_array_clear(&a);
    }
    const char *path = mt_fuzz_write_file("x.npy", data, size);
    mt_npy_info info;
    if (mt_npy_read_info(&info, path, FUZZ_MAX_BYTES) == MT_OK) {
        MT_FUZZ_CHECK(info.data_offset + info.nbytes <= size,
                      "payload [%llu, +%llu) past the end of a %zu-byte file",
                      (unsigned long long)info.data_offset, (unsigned long long)info.nbytes, size);
        as_dataset(path, MT_DATA_LOAD_MEMORY);
        as_dataset(path, MT_DATA_LOAD_LAZY);
    }
    return 0;
}
