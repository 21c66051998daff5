/* Fuzz target: the checkpoint reader (io ckpt_hdf5.c, mt_ckpt_read) on a scratch file holding
 * the input, then every accessor over what it read (arrays, attributes, monitor histories).
 * mt_ckpt_read takes a path, and the path is what users give it, so the file route (with its
 * size and superblock checks before HDF5 opens it) is the one fuzzed rather than an in-memory
 * HDF5 file image. The input is written as it is: the seeds are plain HDF5 files without
 * mltrain's integrity header (no user block), so mutations reach libhdf5 as an unverified
 * checkpoint would (h5py's; MLTRAIN_CKPT_REQUIRE_VERIFIED must not be set); inputs that start
 * with the header's magic exercise its length and SHA-256 checks instead. HDF5 itself is the
 * system library (not instrumented): coverage guidance reaches only mltrain's code. Invariant
 * checked: every listed array can be fetched. */
#include "fuzz_common.h"
#include "mltrain/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = mt_fuzz_write_file("ckpt.h5", data, size);
    mt_ckpt *c = NULL;
    if (mt_ckpt_read(&c, path) != MT_OK) return 0;
    for (int32_t i = 0; i < mt_ckpt_n_arrays(c); i++) {
        const char *name = mt_ckpt_array_name(c, i);
        mt_array a = {0};
        mt_status st = mt_ckpt_get_array(c, name, &a);
        MT_FUZZ_CHECK(st == MT_OK, "array '%s' listed but not readable: %s", name,
                      mt_last_error());
        mt_array_clear(&a);
    }
    for (int32_t i = 0; i < mt_ckpt_n_attrs(c); i++) {
        const char *name = mt_ckpt_attr_name(c, i);
        int64_t iv;
        double dv;
        const char *sv;
        switch (mt_ckpt_attr_kind_at(c, i)) {
        case MT_CKPT_ATTR_INT: mt_ckpt_get_int(c, name, &iv); break;
        case MT_CKPT_ATTR_DOUBLE: mt_ckpt_get_double(c, name, &dv); break;
        default: mt_ckpt_get_string(c, name, &sv); break;
        }
    }
    for (int32_t i = 0; i < mt_ckpt_n_monitors(c); i++) {
        const mt_monitor_history *h = mt_ckpt_monitor(c, i);
        for (int32_t j = 0; h && j < h->n; j++) {
            const mt_chan_history *ch = &h->channels[j];
            volatile double sum = 0;
            for (int32_t k = 0; k < ch->n; k++) sum += ch->records[k].value;
            (void)sum;
        }
    }
    mt_ckpt_free(c);
    return 0;
}
