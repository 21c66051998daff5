/* Fuzz target: the checkpoint reader (io ckpt_hdf5.c, mt_ckpt_read) on a scratch file holding
 * the input, then every accessor over what it read (arrays, attributes, monitor histories).
 * mt_ckpt_read takes a path, and the path is what users give it, so the file route (with its
 * size and superblock checks before HDF5 opens it) is the one fuzzed rather than an in-memory
 * HDF5 file image. The input is written as it is: the seeds are plain HDF5 files without
 * mltrain's integrity header (no user block), so mutations reach libhdf5 as an unverified
 * checkpoint would (h5py's; MLTRAIN_CKPT_REQUIRE_VERIFIED must not be set); inputs that start
 * with the header's magic exercise its length and SHA-256 checks instead. HDF5 itself is the
 * system library (not instrumented): coverage guidance reaches only mltrain's code. The
 * isolated reader's deadline (MLTRAIN_CKPT_ISOLATE_TIMEOUT, 60 s by default) is set to 2 s
 * unless the environment sets it: a file on which libhdf5 loops then ends in the documented
 * timeout error well before libFuzzer's own -timeout (25 s in scripts/fuzz.sh), instead of
 * being reported as a hang of the target. The forked child inherits libFuzzer's sanitizer
 * death callback, which would save the input as a crash of the target whenever a sanitizer
 * report ends the child (libhdf5's memcpy overlap in H5HG_read, for one), although the reader
 * contains it; the child drops that callback (pthread_atfork), so only a failure of this
 * process is a finding. Invariant checked: every listed array can be fetched. */
#include <pthread.h>

#include "fuzz_common.h"
#include "mltrain/io.h"

/* The sanitizers' hook (absent from a build without them: a weak reference is then NULL). */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static void forked_child(void)
{
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        once = 1;
        setenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT", "2", 0);
        pthread_atfork(NULL, NULL, forked_child);
    }
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
