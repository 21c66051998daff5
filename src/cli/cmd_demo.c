/* `mltrain demo`: a short tour of the array runtime on every device present (or one chosen
 * with --device): views, a fused elementwise kernel, a reduction and a matrix product, with
 * each device's results checked against the host's. It is the main job until training lands. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct demo_out {
    double sum_axis0[4];
    double gram[9];
} demo_out;

static int print_array(const char *label, const mt_array *a)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_status st = mt_cli_format_array(a, &sb);
    if (st == MT_OK) printf("%s\n%s\n", label, sb.data);
    mt_strbuf_deinit(&sb);
    return st == MT_OK ? 0 : mt_cli_fail(label);
}

/* z = x * 0.5 + 1 (one fused kernel) */
static mt_status fused_affine(mt_array *z, const mt_array *x)
{
    mt_kexpr e;
    mt_kexpr_init(&e);
    int32_t i0 = mt_kexpr_input(&e, 0, MT_FLOAT32);
    int32_t h = mt_kexpr_const(&e, mt_scalar_f64(0.5), MT_FLOAT32);
    int32_t one = mt_kexpr_const(&e, mt_scalar_f64(1.0), MT_FLOAT32);
    int32_t r = mt_kexpr_binary(&e, MT_SOP_ADD, mt_kexpr_binary(&e, MT_SOP_MUL, i0, h), one);
    mt_status st = r < 0 ? mt_last_status() : mt_kexpr_add_output(&e, r);
    if (st == MT_OK) st = mt_elemwise(&e, 1, &x, &z, 0, NULL);
    mt_kexpr_deinit(&e);
    return st;
}

static int run_on(const char *name, demo_out *out, bool verbose)
{
    mt_device *dev = NULL;
    mt_array x = {0}, xt = {0}, z = {0}, s = {0}, g = {0}, x2 = {0};
    int rc = 1;
    if (mt_device_open(&dev, name) != MT_OK) return mt_cli_fail(name);
    int64_t dims[2] = {3, 4};
    if (mt_array_arange(&x2, dev, MT_FLOAT32, 0, 12, 1) != MT_OK ||
        mt_array_reshape(&x, &x2, 2, dims) != MT_OK) {
        mt_cli_fail("arange/reshape");
        goto done;
    }
    if (mt_array_transpose(&xt, &x, NULL) != MT_OK ||
        mt_array_empty(&z, dev, MT_FLOAT32, 2, dims, 'C') != MT_OK || fused_affine(&z, &x) ||
        mt_array_reduce(&s, &z, MT_REDUCE_SUM, 1, (int32_t[]){0}, false) != MT_OK ||
        mt_array_matmul(&g, &x, &xt) != MT_OK) {
        mt_cli_fail("demo computation");
        goto done;
    }
    if (verbose) {
        printf("== device %s: %s\n", name, mt_device_get_info(dev)->description);
        if (print_array("x = arange(12).reshape(3, 4):", &x) ||
            print_array("x.T (a view, no copy):", &xt) ||
            print_array("z = x * 0.5 + 1 (one fused kernel):", &z) ||
            print_array("z.sum(axis=0):", &s) || print_array("x @ x.T:", &g))
            goto done;
    }
    float sv[4], gv[9];
    if (mt_array_to_host(sv, sizeof sv, &s) || mt_array_to_host(gv, sizeof gv, &g)) {
        mt_cli_fail("reading results");
        goto done;
    }
    for (int i = 0; i < 4; i++) out->sum_axis0[i] = sv[i];
    for (int i = 0; i < 9; i++) out->gram[i] = gv[i];
    mt_mem_stats ms;
    mt_device_mem_stats(dev, &ms);
    if (verbose)
        printf("allocator on %s: %llu bytes in use, peak %llu, %llu of %llu allocations from "
               "the cache\n\n",
               name, (unsigned long long)ms.in_use, (unsigned long long)ms.peak,
               (unsigned long long)ms.cache_hits, (unsigned long long)ms.allocs);
    rc = 0;
done:
    mt_array_clear(&x);
    mt_array_clear(&x2);
    mt_array_clear(&xt);
    mt_array_clear(&z);
    mt_array_clear(&s);
    mt_array_clear(&g);
    mt_device_release(dev);
    return rc;
}

int mt_cli_demo(int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "mltrain demo: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    demo_out ref, got;
    if (run_on("host", &ref, only == NULL || !strcmp(only, "host"))) return 1;
    if (only && !strcmp(only, "host")) return 0;
    if (only) { /* one named device: open errors (unknown, not built) are reported as such */
        if (run_on(only, &got, true)) return 1;
        double worst = 0;
        for (int k = 0; k < 4; k++) worst = fmax(worst, fabs(got.sum_axis0[k] - ref.sum_axis0[k]));
        for (int k = 0; k < 9; k++) worst = fmax(worst, fabs(got.gram[k] - ref.gram[k]));
        printf("%s %s host: max abs difference %g\n", only,
               worst > 1e-4 ? "DOES NOT MATCH" : "matches", worst);
        return worst > 1e-4;
    }
    mt_device_info *infos = NULL;
    int32_t n = 0;
    if (mt_device_list(&infos, &n) != MT_OK) return mt_cli_fail("listing devices");
    int rc = 0;
    for (int32_t i = 0; i < n && rc == 0; i++) {
        if (!strcmp(infos[i].name, "host")) continue;
        if (run_on(infos[i].name, &got, true)) {
            rc = 1;
            break;
        }
        double worst = 0;
        for (int k = 0; k < 4; k++) worst = fmax(worst, fabs(got.sum_axis0[k] - ref.sum_axis0[k]));
        for (int k = 0; k < 9; k++) worst = fmax(worst, fabs(got.gram[k] - ref.gram[k]));
        printf("%s %s host: max abs difference %g\n\n", infos[i].name,
               worst > 1e-4 ? "DOES NOT MATCH" : "matches", worst);
        if (worst > 1e-4) rc = 1;
    }
    mt_free(infos);
    return rc;
}
