/* Fuzz target: the CIFAR-10 binary batch reader (data readers.c). The first input byte holds
 * the options (bit 0 rescale, bit 1 center, bits 2-3 a start of 0..3 records, bits 4-5 a stop
 * of -1 (all) or 1..3 records); the rest is written as DIR/test_batch.bin and read as the
 * "test" set. Invariants checked: a loaded set has one row per selected record, 3072 features,
 * labels in 0..9 and pixels in the documented range. */
#include <math.h>

#include "fuzz_common.h"
#include "mltrain/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    setenv("MLTRAIN_DATA_MAX_BYTES", "64M", 1);
    uint8_t flags = data[0];
    mt_fuzz_write_file("test_batch.bin", data + 1, size - 1);
    mt_cifar10_options o;
    mt_cifar10_options_init(&o);
    o.dir = mt_fuzz_dir();
    o.which_set = "test";
    o.rescale = flags & 1;
    o.center = (flags >> 1) & 1;
    o.start = (flags >> 2) & 3;
    o.stop = ((flags >> 4) & 3) ? ((flags >> 4) & 3) : -1;
    mt_dataset *d = NULL;
    if (mt_dataset_cifar10(&d, &o) != MT_OK) return 0;
    mt_dataset_info info;
    mt_dataset_get_info(d, &info);
    int64_t recs = (int64_t)(size - 1) / 3073;
    int64_t stop = o.stop < 0 ? recs : o.stop;
    MT_FUZZ_CHECK(info.n == stop - o.start && info.dim == 3072, "n %lld dim %lld for [%lld, %lld)",
                  (long long)info.n, (long long)info.dim, (long long)o.start, (long long)stop);
    const int64_t *lab = mt_dataset_labels(d);
    const float *X = mt_dataset_X(d);
    float lo = o.center ? -127.5f : 0.0f, hi = o.center ? 127.5f : 255.0f;
    if (o.rescale) {
        lo /= 127.5f;
        hi /= 127.5f;
    }
    for (int64_t i = 0; i < info.n; i++) {
        MT_FUZZ_CHECK(lab && lab[i] >= 0 && lab[i] <= 9, "label %lld", lab ? (long long)lab[i] : -1LL);
        for (int64_t j = 0; X && j < 3072; j++) {
            float v = X[i * 3072 + j];
            MT_FUZZ_CHECK(v >= lo - 1e-5f && v <= hi + 1e-5f && !isnan(v), "pixel %g", (double)v);
        }
    }
    mt_dataset_free(d);
    return 0;
}
