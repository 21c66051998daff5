/* ckpt_diff: compares two mltrain checkpoints read with the io module, for the data-parallel
 * tests (mpi_train.sh). Every array under params/ and optimizer/ of A must exist in B with the
 * same dtype and shape; without --tol they must be equal byte for byte, with --tol T the
 * largest |a - b| of each array must be at most T * max(1, max |a|). --channels also compares
 * the "monitor" histories: the same channels (time channels excepted) with the same number of
 * records, values equal (or within --channel-tol relative). Prints the largest difference per
 * array and a verdict. Exit 0 equal, 1 different, 2 usage or read error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mltrain/gpuarray.h"
#include "mltrain/io.h"

static bool compared(const char *name)
{
    return !strncmp(name, "params/", 7) || !strncmp(name, "optimizer/", 10);
}

static double value_at(const void *data, mt_dtype dt, int64_t i)
{
    if (dt == MT_FLOAT32) return (double)((const float *)data)[i];
    if (dt == MT_FLOAT64) return ((const double *)data)[i];
    return NAN;
}

/* 0 equal (within tol), 1 different, 2 error. */
static int compare_array(const mt_ckpt *a, const mt_ckpt *b, const char *name, double tol)
{
    mt_array x, y;
    memset(&x, 0, sizeof(x));
    memset(&y, 0, sizeof(y));
    if (mt_ckpt_get_array(a, name, &x)) {
        fprintf(stderr, "ckpt_diff: %s\n", mt_last_error());
        return 2;
    }
    if (mt_ckpt_get_array(b, name, &y)) {
        printf("%s: missing in B\n", name);
        mt_array_clear(&x);
        return 1;
    }
    int rc = 0;
    int64_t n = mt_array_size(&x);
    size_t bytes = (size_t)n * mt_dtype_size(x.dtype);
    void *dx = malloc(bytes + 1), *dy = malloc(bytes + 1);
    if (x.dtype != y.dtype || x.ndim != y.ndim || n != mt_array_size(&y)) {
        printf("%s: dtype or shape differs\n", name);
        rc = 1;
    } else if (!dx || !dy || mt_array_to_host(dx, bytes, &x) || mt_array_to_host(dy, bytes, &y)) {
        fprintf(stderr, "ckpt_diff: reading %s failed\n", name);
        rc = 2;
    } else {
        double maxd = 0, maxa = 0;
        int64_t ndiff = 0;
        for (int64_t i = 0; i < n; i++) {
            double u = value_at(dx, x.dtype, i), v = value_at(dy, y.dtype, i);
            double d = fabs(u - v);
            if (isnan(u) != isnan(v)) d = INFINITY;
            if (d > maxd) maxd = d;
            if (fabs(u) > maxa) maxa = fabs(u);
        }
        ndiff = memcmp(dx, dy, bytes) != 0;
        bool ok = tol > 0 ? maxd <= tol * fmax(1.0, maxa) : !ndiff;
        printf("%-40s %-8s max|a-b| %.3g (max|a| %.3g)%s\n", name,
               ndiff ? (ok ? "close" : "DIFFERS") : "equal", maxd, maxa,
               ok ? "" : " <- outside tolerance");
        rc = ok ? 0 : 1;
    }
    free(dx);
    free(dy);
    mt_array_clear(&x);
    mt_array_clear(&y);
    return rc;
}

static bool is_time_channel(const char *name)
{
    return strstr(name, "seconds") != NULL;
}

static int compare_channels(const mt_ckpt *a, const mt_ckpt *b, double tol)
{
    const mt_monitor_history *ha = mt_ckpt_find_monitor(a, "monitor");
    const mt_monitor_history *hb = mt_ckpt_find_monitor(b, "monitor");
    if (!ha || !hb) {
        printf("monitor: missing in %s\n", ha ? "B" : "A");
        return 1;
    }
    int rc = 0, n = 0;
    for (int32_t i = 0; i < ha->n; i++) {
        const mt_chan_history *ca = &ha->channels[i];
        if (is_time_channel(ca->name)) continue;
        const mt_chan_history *cb = NULL;
        for (int32_t j = 0; j < hb->n && !cb; j++)
            if (!strcmp(hb->channels[j].name, ca->name)) cb = &hb->channels[j];
        if (!cb || cb->n != ca->n) {
            printf("channel %s: %s\n", ca->name, cb ? "record counts differ" : "missing in B");
            rc = 1;
            continue;
        }
        double maxr = 0;
        bool exact = true;
        for (int32_t r = 0; r < ca->n; r++) {
            double u = ca->records[r].value, v = cb->records[r].value;
            if (u == v || (isnan(u) && isnan(v))) continue;
            exact = false;
            double rel = fabs(u - v) / fmax(1e-30, fmax(fabs(u), fabs(v)));
            if (rel > maxr) maxr = rel;
        }
        bool ok = exact || (tol > 0 && maxr <= tol);
        printf("channel %-32s %-8s %d records, max relative difference %.3g%s\n", ca->name,
               exact ? "equal" : ok ? "close" : "DIFFERS", (int)ca->n, maxr,
               ok ? "" : " <- outside tolerance");
        if (!ok) rc = 1;
        n++;
    }
    if (n == 0) {
        printf("monitor: no channels to compare\n");
        rc = 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *pa = NULL, *pb = NULL;
    double tol = 0, ctol = 0;
    bool channels = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tol") && i + 1 < argc)
            tol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--channel-tol") && i + 1 < argc)
            ctol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--channels"))
            channels = true;
        else if (!pa)
            pa = argv[i];
        else if (!pb)
            pb = argv[i];
        else
            pa = NULL, i = argc;
    }
    if (!pa || !pb) {
        fprintf(stderr, "usage: ckpt_diff A.ckpt B.ckpt [--tol T] [--channels] [--channel-tol T]\n");
        return 2;
    }
    mt_ckpt *a = NULL, *b = NULL;
    if (mt_ckpt_read(&a, pa) || mt_ckpt_read(&b, pb)) {
        fprintf(stderr, "ckpt_diff: %s\n", mt_last_error());
        mt_ckpt_free(a);
        return 2;
    }
    int rc = 0, n = 0;
    for (int32_t i = 0; i < mt_ckpt_n_arrays(a) && rc < 2; i++) {
        const char *name = mt_ckpt_array_name(a, i);
        if (!compared(name)) continue;
        int r = compare_array(a, b, name, tol);
        if (r > rc) rc = r;
        n++;
    }
    if (n == 0) {
        printf("no params/ or optimizer/ arrays in %s\n", pa);
        rc = rc ? rc : 1;
    }
    if (channels && rc < 2) {
        int r = compare_channels(a, b, ctol);
        if (r > rc) rc = r;
    }
    printf("%s\n", rc == 0 ? "SAME" : rc == 1 ? "DIFFERENT" : "ERROR");
    mt_ckpt_free(a);
    mt_ckpt_free(b);
    return rc;
}
