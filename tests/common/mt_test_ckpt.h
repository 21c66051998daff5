/* For tests that link the train and io modules: running a job file, and comparing the arrays of
 * two checkpoints byte for byte (bit-identical resume and data-parallel checks). Header-only,
 * so mt_testlib itself depends on neither. */
#ifndef MT_TEST_CKPT_H
#define MT_TEST_CKPT_H

#include <stdlib.h>
#include <string.h>

#include "mltrain/io.h"
#include "mltrain/train.h"
#include "mt_test.h"

/* mt_job_load + mt_job_run of the job file at path with options o (res may be NULL). */
static inline mt_status mt_test_run_job(const char *path, const mt_train_options *o,
                                        mt_train_result *res)
{
    mt_job *job = NULL;
    mt_status st = mt_job_load(&job, path, o);
    if (st) return st;
    mt_train_result r;
    memset(&r, 0, sizeof(r));
    st = mt_job_run(job, res ? res : &r);
    mt_job_free(job);
    return st;
}

/* Every array of a whose name starts with p1 (or p2, when not NULL) equals b's array of that
 * name, byte for byte (a failure names it); returns how many were compared. */
static inline int32_t mt_test_ckpt_same_arrays(const mt_ckpt *a, const mt_ckpt *b,
                                               const char *p1, const char *p2)
{
    int32_t compared = 0;
    for (int32_t i = 0; i < mt_ckpt_n_arrays(a); i++) {
        const char *name = mt_ckpt_array_name(a, i);
        if (strncmp(name, p1, strlen(p1)) && (!p2 || strncmp(name, p2, strlen(p2)))) continue;
        mt_array x, y;
        memset(&x, 0, sizeof(x));
        memset(&y, 0, sizeof(y));
        MT_CHECK_OK(mt_ckpt_get_array(a, name, &x));
        MT_CHECK_OK(mt_ckpt_get_array(b, name, &y));
        size_t n = mt_array_nbytes(&x);
        MT_CHECK_EQ_INT(n, mt_array_nbytes(&y));
        char *hx = malloc(n ? n : 1), *hy = malloc(n ? n : 1);
        MT_CHECK(hx && hy);
        MT_CHECK_OK(mt_array_to_host(hx, n, &x));
        MT_CHECK_OK(mt_array_to_host(hy, n, &y));
        if (memcmp(hx, hy, n) != 0) mt_test_fail(__FILE__, __LINE__, "%s differs", name);
        free(hx);
        free(hy);
        mt_array_clear(&x);
        mt_array_clear(&y);
        compared++;
    }
    return compared;
}

#endif
