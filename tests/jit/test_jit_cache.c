/* Tests of compile-time kernel prediction and batched kernel builds on the host: a training
 * function's first step compiles nothing after mt_function_new, a kernel batch compiles several
 * kernels in one compiler run and publishes each under its own verified cache entry, and an
 * altered entry of such a group is rebuilt, and a group the compiler rejects is compiled kernel
 * by kernel. Each check runs in a child process with its own
 * empty cache directory (the host device is opened only in the children: a thread pool does not
 * survive fork). Without a C compiler (MLTRAIN_NO_CC=1) the same code paths run interpreted and
 * the compile counts are checked to stay zero. */
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mltrain/graph_grad.h"
#include "mltrain/jit.h"
#include "mt_test.h"

static bool have_cc(void)
{
    const char *v = getenv("MLTRAIN_NO_CC");
    return !(v && *v && strcmp(v, "0") != 0);
}

/* A kernel entry: 64 hex digits + ".so". */
static bool entry_name(const char *name)
{
    size_t len = strlen(name);
    if (len != 67 || strcmp(name + 64, ".so") != 0) return false;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", name[i])) return false;
    return true;
}

/* Lists the entries of dir: up to max names (NULL: just count) and their inode numbers. */
static int list_entries(const char *dir, char (*names)[80], ino_t *inodes, int max)
{
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (!entry_name(de->d_name)) continue;
        if (names && n < max) {
            char path[1024];
            struct stat sb;
            snprintf(names[n], 80, "%s", de->d_name);
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            inodes[n] = stat(path, &sb) == 0 ? sb.st_ino : 0;
        }
        n++;
    }
    closedir(dp);
    return n;
}

static void remove_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    char path[1024];
    while (dp && (de = readdir(dp)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (dp) closedir(dp);
    rmdir(dir);
}

static void make_dir(char *dir, size_t len, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, len, "%s/mltrain-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    MT_CHECK(mkdtemp(dir) != NULL);
}

/* Runs child(dir) in a child process with MLTRAIN_CACHE_DIR=dir; its exit status. */
static int run_child(int (*child)(const char *), const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    MT_CHECK(pid >= 0);
    if (pid == 0) {
        setenv("MLTRAIN_CACHE_DIR", dir, 1);
        _exit(child(dir));
    }
    int status = 0;
    MT_CHECK(waitpid(pid, &status, 0) == pid);
    MT_CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "  " __VA_ARGS__);                                                         \
        fprintf(stderr, "\n");                                                                     \
        rc = 1;                                                                                    \
        goto done;                                                                                 \
    } while (0)
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) != MT_OK) FAIL("%s: %s", #expr, mt_last_error());                               \
    } while (0)

/* ---------------------------------------------------------------- the MLP's first step */

enum { NIN = 12, NH = 16, NCLS = 10 };

/* Child of mlp_first_step_compiles_nothing: an MLP NIN-NH-NH-NCLS training function (relu,
 * softmax crossentropy with integer labels, gradients, SGD updates; the batch size unknown) is
 * compiled; its calls on batches of 5 and 7 then compile no kernel. With zero parameters the
 * cost is log(NCLS) and b2's gradient is 1/NCLS - (share of the labels equal to each class). */
static int mlp_child(const char *dir)
{
    int rc = 0;
    mt_device *dev = NULL;
    mt_graph *g = NULL;
    mt_function *f = NULL;
    mt_array P[6] = {{0}}, X = {0}, Y = {0}, out = {0}, b2 = {0};
    TRY(mt_device_open(&dev, "host"));
    TRY(mt_graph_new(&g));
    static const int64_t sizes[4] = {NIN, NH, NH, NCLS};
    int64_t sx[2] = {MT_DIM_UNKNOWN, NIN}, sy[1] = {MT_DIM_UNKNOWN};
    mt_var x = mt_graph_placeholder(g, "x", MT_FLOAT32, 2, sx);
    mt_var y = mt_graph_placeholder(g, "y", MT_INT64, 1, sy);
    mt_var params[6], h = x;
    for (int l = 0; l < 3; l++) {
        int64_t sw[2] = {sizes[l], sizes[l + 1]};
        char nw[8], nb[8];
        snprintf(nw, sizeof nw, "W%d", l);
        snprintf(nb, sizeof nb, "b%d", l);
        params[2 * l] = mt_graph_placeholder(g, nw, MT_FLOAT32, 2, sw);
        params[2 * l + 1] = mt_graph_placeholder(g, nb, MT_FLOAT32, 1, sw + 1);
        h = mt_graph_add(g, mt_graph_matmul(g, h, params[2 * l]), params[2 * l + 1]);
        if (l < 2) h = mt_graph_relu(g, h);
    }
    mt_var cost = mt_graph_mean(g, mt_graph_softmax_crossentropy_labels(g, h, y, 1), 0, NULL,
                                false);
    mt_var grads[6];
    TRY(mt_graph_grad(g, cost, 6, params, grads, NULL));
    mt_update ups[6];
    for (int i = 0; i < 6; i++)
        ups[i] = (mt_update){params[i],
                             mt_graph_sub(g, params[i],
                                          mt_graph_mul(g, mt_graph_literal_float(g, 0.01),
                                                       grads[i]))};
    TRY(mt_graph_status(g));
    int64_t k0, r0, k1, r1, k2, r2;
    mt_host_kernel_counts(&k0, &r0);
    mt_var vars[2] = {x, y};
    TRY(mt_function_new(&f, g, 2, vars, 1, &cost, 6, ups, dev, NULL));
    mt_host_kernel_counts(&k1, &r1);
    int n_new = list_entries(dir, NULL, NULL, 0);
    if (have_cc() && (k1 - k0 < 4 || r1 - r0 < 1 || r1 - r0 > k1 - k0 || n_new != k1 - k0))
        FAIL("mt_function_new compiled %lld kernels in %lld compiler runs, %d cache entries",
             (long long)(k1 - k0), (long long)(r1 - r0), n_new);
    if (!have_cc() && k1 != k0) FAIL("kernels compiled with MLTRAIN_NO_CC=1");
    for (int i = 0; i < 6; i++) {
        const mt_type *t = mt_graph_type(g, params[i]);
        TRY(mt_array_zeros(&P[i], dev, MT_FLOAT32, t->ndim, t->shape));
        TRY(mt_function_set_shared(f, params[i], &P[i]));
    }
    static const int batches[2] = {5, 7};
    for (int c = 0; c < 2; c++) {
        int64_t nb = batches[c], dx[2] = {nb, NIN}, labels[7] = {0, 1, 2, 3, 3, 9, 1};
        mt_array_clear(&X);
        mt_array_clear(&Y);
        mt_array_clear(&b2);
        TRY(mt_array_zeros(&X, dev, MT_FLOAT32, 2, dx));
        TRY(mt_array_random_uniform(&X, 7, (uint64_t)c, -1, 1));
        TRY(mt_array_from_host(&Y, dev, MT_INT64, 1, &nb, labels));
        /* the parameters back to zero: the first call updated them */
        for (int i = 0; i < 6; i++) {
            const mt_type *t = mt_graph_type(g, params[i]);
            mt_array_clear(&P[i]);
            TRY(mt_array_zeros(&P[i], dev, MT_FLOAT32, t->ndim, t->shape));
            TRY(mt_function_set_shared(f, params[i], &P[i]));
        }
        const mt_array *in[2] = {&X, &Y};
        TRY(mt_function_call(f, 2, in, 1, &out));
        mt_host_kernel_counts(&k2, &r2);
        if (k2 != k1 || r2 != r1)
            FAIL("a call on a batch of %d compiled %lld kernels after mt_function_new", (int)nb,
                 (long long)(k2 - k1));
        float cv = 0, bv[NCLS];
        TRY(mt_array_to_host(&cv, sizeof cv, &out));
        mt_array_clear(&out);
        if (fabs(cv - log((double)NCLS)) > 1e-5)
            FAIL("cost %.9g, expected log(%d) = %.9g", cv, NCLS, log((double)NCLS));
        TRY(mt_function_get_shared(f, params[5], &b2));
        TRY(mt_array_to_host(bv, sizeof bv, &b2));
        for (int j = 0; j < NCLS; j++) {
            int cnt = 0;
            for (int i = 0; i < nb; i++) cnt += labels[i] == j;
            double want = -0.01 * (1.0 / NCLS - (double)cnt / (double)nb);
            if (fabs(bv[j] - want) > 1e-7)
                FAIL("batch %d: b2[%d] = %.9g after the step, expected %.9g", (int)nb, j, bv[j],
                     want);
        }
    }
    if (list_entries(dir, NULL, NULL, 0) != n_new) FAIL("the calls added cache entries");
done:
    if (rc) fprintf(stderr, "  (last error: %s)\n", mt_last_error());
    for (int i = 0; i < 6; i++) mt_array_clear(&P[i]);
    mt_array_clear(&X);
    mt_array_clear(&Y);
    mt_array_clear(&out);
    mt_array_clear(&b2);
    mt_function_free(f);
    mt_graph_free(g);
    mt_device_release(dev);
    return rc;
}

MT_TEST(mlp_first_step_compiles_nothing)
{
    char dir[512];
    make_dir(dir, sizeof dir, "predict");
    int rc = run_child(mlp_child, dir);
    remove_dir(dir);
    MT_CHECK_EQ_INT(rc, 0);
}

/* ---------------------------------------------------------------- kernel batches */

enum { NB_EXPR = 3, NX = 6 };

static void make_expr(mt_kexpr *e, int which)
{
    mt_kexpr_init(e);
    int32_t x = mt_kexpr_input(e, 0, MT_FLOAT64), r;
    if (which == 0)
        r = mt_kexpr_binary(e, MT_SOP_ADD,
                            mt_kexpr_binary(e, MT_SOP_MUL, x,
                                            mt_kexpr_const(e, mt_scalar_f64(2), MT_FLOAT64)),
                            mt_kexpr_const(e, mt_scalar_f64(1), MT_FLOAT64));
    else if (which == 1)
        r = mt_kexpr_unary(e, MT_SOP_EXP, mt_kexpr_unary(e, MT_SOP_NEG, x));
    else
        r = mt_kexpr_binary(e, MT_SOP_MUL, mt_kexpr_unary(e, MT_SOP_TANH, x), x);
    mt_kexpr_add_output(e, r);
}

static double expect(int which, double v)
{
    return which == 0 ? v * 2 + 1 : which == 1 ? exp(-v) : tanh(v) * v;
}

/* Runs the NB_EXPR expressions with mt_elemwise and checks their values; 0 when right. */
static int run_exprs(mt_device *dev)
{
    double xv[NX], got[NX];
    for (int i = 0; i < NX; i++) xv[i] = -1.25 + 0.5 * i;
    int64_t n = NX;
    int bad = 0;
    for (int w = 0; w < NB_EXPR; w++) {
        mt_kexpr e;
        make_expr(&e, w);
        mt_array X = {0}, O = {0};
        const mt_array *in[1] = {&X};
        mt_array *out[1] = {&O};
        if (mt_array_from_host(&X, dev, MT_FLOAT64, 1, &n, xv) != MT_OK ||
            mt_array_empty(&O, dev, MT_FLOAT64, 1, &n, 'C') != MT_OK ||
            mt_elemwise(&e, 1, in, out, 0, NULL) != MT_OK ||
            mt_array_to_host(got, sizeof got, &O) != MT_OK) {
            fprintf(stderr, "  expression %d: %s\n", w, mt_last_error());
            bad = 1;
        } else {
            for (int i = 0; i < NX; i++)
                if (fabs(got[i] - expect(w, xv[i])) > 1e-14 * (1 + fabs(got[i]))) bad = 1;
            if (bad) fprintf(stderr, "  expression %d: wrong values\n", w);
        }
        mt_array_clear(&X);
        mt_array_clear(&O);
        mt_kexpr_deinit(&e);
    }
    return bad;
}

/* Child: the three kernels recorded in a batch (requests fail with NOT_BUILT, mt_elemwise runs
 * interpreted meanwhile), then compiled by one compiler run into one file published as three
 * entries; afterwards they load without compiling. */
static int batch_child(const char *dir)
{
    int rc = 0;
    mt_device *dev = NULL;
    TRY(mt_device_open(&dev, "host"));
    mt_err_clear();
    if (mt_kernel_batch_end(0, NULL) != MT_ERR_INVALID) FAIL("end without a batch accepted");
    TRY(mt_kernel_batch_begin());
    if (mt_kernel_batch_begin() != MT_ERR_INVALID || !strstr(mt_last_error(), "already open"))
        FAIL("a second batch on one thread accepted (%s)", mt_last_error());
    mt_dtype dt = MT_FLOAT64;
    int32_t nd = 1;
    int64_t dims[1][MT_MAX_DIMS] = {{MT_DIM_UNKNOWN}}, od[1] = {MT_DIM_UNKNOWN};
    for (int w = 0; w < NB_EXPR; w++) {
        mt_kexpr e;
        make_expr(&e, w);
        mt_status st = mt_elemwise_prebuild(dev, &e, 1, &dt, &nd,
                                            (const int64_t(*)[MT_MAX_DIMS])dims, 1, od, 0);
        mt_kexpr_deinit(&e);
        if (st != (have_cc() ? MT_ERR_NOT_BUILT : MT_OK))
            FAIL("prebuild %d in a batch returned %s (%s)", w, mt_status_name(st), mt_last_error());
    }
    int64_t k0, r0, k1, r1, k2, r2;
    mt_host_kernel_counts(&k0, &r0);
    if (run_exprs(dev)) FAIL("wrong values while the batch is open");
    if (list_entries(dir, NULL, NULL, 0) != 0) FAIL("entries written while the batch is open");
    int32_t nbuilt = -1;
    TRY(mt_kernel_batch_end(1, &nbuilt));
    mt_host_kernel_counts(&k1, &r1);
    char names[8][80];
    ino_t ino[8];
    int n = list_entries(dir, names, ino, 8);
    if (have_cc()) {
        if (nbuilt != NB_EXPR || k1 - k0 != NB_EXPR || r1 - r0 != 1 || n != NB_EXPR)
            FAIL("batch: %d built, %lld compiled in %lld runs, %d entries", (int)nbuilt,
                 (long long)(k1 - k0), (long long)(r1 - r0), n);
        for (int i = 0; i < n; i++) {
            char path[1024];
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            if (stat(path, &sb) != 0 || (sb.st_mode & 0777) != 0600 || sb.st_ino != ino[0])
                FAIL("entry %s is not the group's file with mode 0600", names[i]);
        }
    } else if (nbuilt != 0 || k1 != k0 || n != 0) {
        FAIL("kernels compiled with MLTRAIN_NO_CC=1");
    }
    if (mt_kernel_batch_end(0, NULL) != MT_ERR_INVALID) FAIL("a batch ended twice");
    if (run_exprs(dev)) FAIL("wrong values from the group's kernels");
    mt_host_kernel_counts(&k2, &r2);
    if (k2 != k1) FAIL("%lld kernels compiled after the batch", (long long)(k2 - k1));
done:
    if (rc) fprintf(stderr, "  (last error: %s)\n", mt_last_error());
    mt_device_release(dev);
    return rc;
}

/* Child after one entry of the group was altered (which alters the file all three names
 * share): each kernel is found invalid, rebuilt on its own and right. */
static int rebuild_child(const char *dir)
{
    int rc = 0;
    mt_device *dev = NULL;
    int64_t k0, k1;
    TRY(mt_device_open(&dev, "host"));
    mt_host_kernel_counts(&k0, NULL);
    if (run_exprs(dev)) FAIL("wrong values after an entry was altered");
    mt_host_kernel_counts(&k1, NULL);
    char names[8][80];
    ino_t ino[8];
    int n = list_entries(dir, names, ino, 8);
    if (k1 - k0 != NB_EXPR || n != NB_EXPR || ino[0] == ino[1] || ino[1] == ino[2])
        FAIL("after the alteration: %lld compiled, %d entries", (long long)(k1 - k0), n);
done:
    mt_device_release(dev);
    return rc;
}

MT_TEST(kernel_batch_compiles_a_group_in_one_run)
{
    char dir[512];
    make_dir(dir, sizeof dir, "batch");
    int rc = run_child(batch_child, dir);
    if (rc == 0 && have_cc()) {
        char names[8][80], path[1024];
        ino_t ino[8];
        MT_CHECK_EQ_INT(list_entries(dir, names, ino, 8), NB_EXPR);
        snprintf(path, sizeof path, "%s/%s", dir, names[1]);
        FILE *fp = fopen(path, "r+b");
        MT_CHECK(fp != NULL);
        MT_CHECK(fseek(fp, 200, SEEK_SET) == 0);
        int c = fgetc(fp);
        MT_CHECK(fseek(fp, 200, SEEK_SET) == 0);
        fputc(c ^ 0x5a, fp);
        fclose(fp);
        rc = run_child(rebuild_child, dir);
    }
    remove_dir(dir);
    MT_CHECK_EQ_INT(rc, 0);
}

/* Child with a compiler that rejects any source holding more than one kernel: the batch's
 * group fails, its kernels are then compiled one by one, each into its own entry. */
static int fallback_child(const char *dir)
{
    int rc = 0;
    mt_device *dev = NULL;
    TRY(mt_device_open(&dev, "host"));
    TRY(mt_kernel_batch_begin());
    mt_dtype dt = MT_FLOAT64;
    int32_t nd = 1;
    int64_t dims[1][MT_MAX_DIMS] = {{4}}, od[1] = {4};
    for (int w = 0; w < NB_EXPR; w++) {
        mt_kexpr e;
        make_expr(&e, w);
        mt_status st = mt_elemwise_prebuild(dev, &e, 1, &dt, &nd,
                                            (const int64_t(*)[MT_MAX_DIMS])dims, 1, od, 0);
        mt_kexpr_deinit(&e);
        if (st != MT_ERR_NOT_BUILT) FAIL("prebuild %d returned %s", w, mt_status_name(st));
    }
    int64_t k0, r0, k1, r1, k2;
    mt_host_kernel_counts(&k0, &r0);
    int32_t nbuilt = -1;
    TRY(mt_kernel_batch_end(1, &nbuilt));
    mt_host_kernel_counts(&k1, &r1);
    char names[8][80];
    ino_t ino[8];
    int n = list_entries(dir, names, ino, 8);
    if (nbuilt != NB_EXPR || k1 - k0 != NB_EXPR || r1 - r0 != NB_EXPR + 1 || n != NB_EXPR ||
        ino[0] == ino[1] || ino[1] == ino[2] || ino[0] == ino[2])
        FAIL("fallback: %d built, %lld compiled in %lld runs, %d entries", (int)nbuilt,
             (long long)(k1 - k0), (long long)(r1 - r0), n);
    if (run_exprs(dev)) FAIL("wrong values");
    mt_host_kernel_counts(&k2, NULL);
    if (k2 != k1) FAIL("%lld kernels compiled after the batch", (long long)(k2 - k1));
done:
    if (rc) fprintf(stderr, "  (last error: %s)\n", mt_last_error());
    mt_device_release(dev);
    return rc;
}

MT_TEST(kernel_batch_rejected_group_compiles_one_by_one)
{
    if (!have_cc()) MT_SKIP("no host C compiler (MLTRAIN_NO_CC)");
    if (access("/bin/sh", X_OK) != 0) MT_SKIP("no /bin/sh for the compiler wrapper");
    char dir[512], tool[600], cache[600];
    make_dir(dir, sizeof dir, "fallback");
    snprintf(tool, sizeof tool, "%s/cc-one-kernel", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    MT_CHECK(mkdir(cache, 0700) == 0);
    FILE *fp = fopen(tool, "w");
    MT_CHECK(fp != NULL);
    const char *cc = getenv("MLTRAIN_CC");
    fprintf(fp, "#!/bin/sh\n"
                "for a in \"$@\"; do case \"$a\" in *.c)\n"
                "  if [ \"$(grep -c '^/\\* kernel ' \"$a\")\" -gt 1 ]; then\n"
                "    echo 'several kernels refused' >&2; exit 1; fi;; esac; done\n"
                "exec %s \"$@\"\n", cc && *cc ? cc : "cc");
    fclose(fp);
    MT_CHECK(chmod(tool, 0700) == 0);
    setenv("MLTRAIN_CC", tool, 1);
    int rc = run_child(fallback_child, cache);
    remove_dir(cache);
    remove_dir(dir);
    MT_CHECK_EQ_INT(rc, 0);
}
