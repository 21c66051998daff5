/* The isolated checkpoint reader (src/io/ckpt_isolate.c): every hostile input of
 * fuzz/crashes/ckpt/ (files on which the system libhdf5 crashes, hangs or allocates gigabytes)
 * read through mt_ckpt_read ends in an error naming the file, never a crash; the deadline (a
 * child made to hang by the test hook MLTRAIN_ISOLATE_TEST_CHILD), the other ways a child can
 * end (a signal, abort, a non-zero exit, no result), MLTRAIN_CKPT_ISOLATE=0, a process that
 * ignores SIGCHLD, and that the child neither runs atexit handlers nor leaves a zombie; the
 * child's memory limit (MLTRAIN_ISOLATE_MAX_MB) on the inputs whose headers claim gigabytes;
 * hostile streams from the child (bounded counts, a byte budget, refusals naming the file);
 * and the cost of isolation on a typical MLP checkpoint (printed). The same inputs through
 * `mltrain print-monitor` are in test_cli.c; the runner itself (src/core/isolate.c) is tested
 * in tests/core/test_isolate.c. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "../../src/core/isolate.h"
#include "io_test_util.h"

#ifndef MT_CKPT_HOSTILE_DIR
#error "MT_CKPT_HOSTILE_DIR must name fuzz/crashes/ckpt"
#endif

/* A small valid checkpoint (an MLP's parameters and a monitor). */
static char *write_small(const char *name)
{
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    float w[20 * 10];
    for (int i = 0; i < 200; i++)
        w[i] = (float)xval(i, 0);
    int64_t d[2] = {20, 10};
    MT_CHECK_OK(mt_ckpt_put_array_host(c, "params/h0_W", MT_FLOAT32, 2, d, w));
    MT_CHECK_OK(mt_ckpt_put_int(c, "epochs_seen", 4));
    mt_monitor_history h;
    mt_monitor_history_init(&h, "monitor");
    mt_chan_history *ch = mt_monitor_history_channel(&h, "train_objective", true);
    mt_chan_record r = {0.5, 1, 10, 100, 1.5};
    MT_CHECK_OK(mt_chan_history_append(ch, &r));
    MT_CHECK(mt_monitor_history_channel(&h, "no_records_yet", true) != NULL);
    MT_CHECK_OK(mt_ckpt_put_monitor(c, &h));
    mt_monitor_history_clear(&h);
    char *p = tpath(name);
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    return p;
}

static void check_small(const mt_ckpt *c)
{
    int64_t e = 0;
    MT_CHECK_OK(mt_ckpt_get_int(c, "epochs_seen", &e));
    MT_CHECK_EQ_INT(e, 4);
    MT_CHECK_EQ_INT(mt_ckpt_n_arrays(c), 1);
    MT_CHECK_EQ_INT(mt_ckpt_n_monitors(c), 1);
    const mt_monitor_history *h = mt_ckpt_monitor(c, 0);
    MT_CHECK_EQ_INT(h->n, 2);
    MT_CHECK_EQ_INT(h->channels[0].n, 1);
    MT_CHECK(h->channels[0].records[0].value == 0.5 && h->channels[0].records[0].examples == 100);
    MT_CHECK_EQ_INT(h->channels[1].n, 0);
    const void *data;
    mt_dtype dt;
    int32_t nd;
    int64_t dims[MT_MAX_DIMS];
    MT_CHECK_OK(mt_ckpt_array_info(c, "params/h0_W", &dt, &nd, dims, &data));
    MT_CHECK(dt == MT_FLOAT32 && nd == 2 && dims[0] == 20 && dims[1] == 10);
    for (int i = 0; i < 200; i++)
        MT_CHECK(((const float *)data)[i] == (float)xval(i, 0));
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* No child of this process is left, running or as a zombie. */
static void check_no_children(void)
{
    errno = 0;
    MT_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* Every file of the hostile inputs whose name starts (want_timeouts) or does not start with
 * "timeout": mt_ckpt_read fails cleanly with a message naming the file. */
static void read_hostile(bool want_timeouts)
{
    /* the inputs that hang HDF5 each cost the whole deadline: 0.5 s unless the environment says */
    setenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT", "0.5", 0);
    DIR *d = opendir(MT_CKPT_HOSTILE_DIR);
    MT_CHECK(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if ((strncmp(e->d_name, "timeout", 7) == 0) != want_timeouts) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", MT_CKPT_HOSTILE_DIR, e->d_name);
        mt_ckpt *c = NULL;
        mt_status st = mt_ckpt_read(&c, path);
        printf("%-58s %s: %.200s\n", e->d_name, mt_status_name(st), st ? mt_last_error() : "");
        if (st == MT_OK) mt_test_fail(__FILE__, __LINE__, "'%s' was read as a checkpoint", path);
        MT_CHECK(c == NULL);
        if (!strstr(mt_last_error(), path))
            mt_test_fail(__FILE__, __LINE__, "the message for '%s' does not name it: %s", path,
                         mt_last_error());
        n++;
    }
    closedir(d);
    check_no_children();
    MT_CHECK(n >= (want_timeouts ? 10 : 30));
}

MT_TEST(ckpt_isolated_hostile_inputs)
{
    read_hostile(false);
}

MT_TEST(ckpt_isolated_hostile_timeouts)
{
    read_hostile(true);
}

/* The deadline: a child that hangs is killed, the error names the file and the limit. */
MT_TEST(ckpt_isolated_deadline)
{
    char *p = write_small("hang.h5");
    setenv("MLTRAIN_ISOLATE_TEST_CHILD", "hang", 1);
    setenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT", "0.5", 1);
    mt_ckpt *c = NULL;
    MT_CHECK_ERR(mt_ckpt_read(&c, p), MT_ERR_TIMEOUT,
                 "the HDF5 library did not finish reading it within 0.5 s "
                 "(MLTRAIN_CKPT_ISOLATE_TIMEOUT)");
    MT_CHECK(strstr(mt_last_error(), p) != NULL);
    MT_CHECK(c == NULL);
    check_no_children();
    /* switched off, the child (and its hook) is not used: the file reads in-process */
    setenv("MLTRAIN_CKPT_ISOLATE", "0", 1);
    MT_CHECK_OK(mt_ckpt_read(&c, p));
    check_small(c);
    mt_ckpt_free(c);
    unsetenv("MLTRAIN_CKPT_ISOLATE");
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    unsetenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT");
    MT_CHECK_OK(mt_ckpt_read(&c, p));
    check_small(c);
    mt_ckpt_free(c);
}

/* Every abnormal end of the child is an error naming the file and what happened. */
MT_TEST(ckpt_isolated_child_ends)
{
    char *p = write_small("ends.h5");
    static const struct {
        const char *mode;
        mt_status code;
        const char *needle;
    } cases[] = {
        {"segv", MT_ERR_FORMAT,
         "the HDF5 library crashed (SIGSEGV) while reading it; the file is corrupt or was not "
         "written by mltrain"},
        {"abort", MT_ERR_FORMAT, "the HDF5 library crashed (SIGABRT) while reading it"},
        {"exit3", MT_ERR_FORMAT, "ended with exit status 3"},
        {"silent", MT_ERR_FORMAT, "ended without a result"},
        {"garbage", MT_ERR_FORMAT,
         "sent a malformed result (an array of an impossible dtype or rank)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("MLTRAIN_ISOLATE_TEST_CHILD", cases[i].mode, 1);
        mt_ckpt *c = NULL;
        MT_CHECK_ERR(mt_ckpt_read(&c, p), cases[i].code, cases[i].needle);
        MT_CHECK(strstr(mt_last_error(), p) != NULL);
        MT_CHECK(c == NULL);
    }
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    check_no_children();
}

static char g_atexit_marker[1024];

static void atexit_marker(void)
{
    FILE *f = fopen(g_atexit_marker, "a");
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
}

/* A good file reads the same isolated; the child leaves by _exit (no atexit handler of this
 * process runs in it, no stdio buffer of this process is flushed by it) and is reaped; errors
 * the child finds come back with their status and message. */
MT_TEST(ckpt_isolated_reads_and_reports)
{
    char *p = write_small("good.h5");
    snprintf(g_atexit_marker, sizeof g_atexit_marker, "%s", tpath("atexit.txt"));
    MT_CHECK(atexit(atexit_marker) == 0);
    char *bp = tpath("buffered.txt");
    FILE *bf = fopen(bp, "w");
    MT_CHECK(bf != NULL);
    fputs("once", bf); /* still in the buffer while the children live */
    for (int i = 0; i < 3; i++) {
        mt_ckpt *c = NULL;
        MT_CHECK_OK(mt_ckpt_read(&c, p));
        check_small(c);
        mt_ckpt_free(c);
    }
    MT_CHECK(fclose(bf) == 0);
    char *text = slurp(bp, NULL);
    MT_CHECK_STR_EQ(text, "once");
    mt_free(text);
    struct stat sb;
    MT_CHECK(stat(g_atexit_marker, &sb) != 0);
    check_no_children();
    /* out of memory (the third allocation: in the child and in this process) is ERR_NOMEM */
    mt_ckpt *c = NULL;
    mt_alloc_fail_after(3);
    mt_status st = mt_ckpt_read(&c, p);
    mt_alloc_fail_after(0);
    MT_CHECK_EQ_INT(st, MT_ERR_NOMEM);
    MT_CHECK(c == NULL);
    /* an error found in the child: an HDF5 file that is not a checkpoint (no "format") */
    char *q = tpath("plain.h5");
    char script[2048];
    snprintf(script, sizeof script,
             "import h5py\nwith h5py.File('%s', 'w') as f:\n    f['x'] = [1, 2]\n", q);
    MT_CHECK_EQ_INT(run_python(script, NULL, "h5py", NULL), 0);
    MT_CHECK_ERR(mt_ckpt_read(&c, q), MT_ERR_FORMAT,
                 "is an HDF5 file but not an mltrain checkpoint");
    check_no_children();
}

/* The child's memory limit: inputs whose headers make libhdf5 allocate gigabytes fail cleanly
 * under a 64 MiB limit, saying so (without a limit the first two keep the child filling
 * gigabytes until the deadline; the third maps 3.3 GB before failing); a genuine checkpoint
 * reads under the same limit while this process holds 512 MiB of address space. */
MT_TEST(ckpt_isolated_memory_limit)
{
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    if (mt__isolate_mem_limit(0) == 0) /* tested in tests/core/test_isolate.c */
        MT_SKIP("a sanitizer build: the child has no memory limit");
    static const char *const inputs[] = {"oom-hdf5-H5Fopen-4GiB-object-header",
                                         "oom-hdf5-H5Aread-vlen-string-1.9GB",
                                         "oom-4459cc3484e270cfd8a1b90870463aa7f2494415"};
    char *ballast = mt_malloc((size_t)512 << 20); /* mapped, not touched */
    MT_CHECK(ballast != NULL);
    setenv("MLTRAIN_ISOLATE_MAX_MB", "64", 1);
    setenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT", "20", 1);
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", MT_CKPT_HOSTILE_DIR, inputs[i]);
        mt_ckpt *c = NULL;
        MT_CHECK_ERR(mt_ckpt_read(&c, path), MT_ERR_NOMEM,
                     "the HDF5 library ran out of memory within the limit of 64 MiB while "
                     "reading it (MLTRAIN_ISOLATE_MAX_MB sets the limit); the file is corrupt or "
                     "was not written by mltrain");
        MT_CHECK(strstr(mt_last_error(), path) != NULL);
        MT_CHECK(c == NULL);
    }
    char *p = write_small("limited.h5");
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, p));
    check_small(c);
    mt_ckpt_free(c);
    /* a limit so large that 4 of it overflowed 64 bits (2^42 MiB: 4 x 2^62 bytes wrapped to 0
     * and every array was refused) is clamped, and the file reads */
    setenv("MLTRAIN_ISOLATE_MAX_MB", "4398046511104", 1);
    MT_CHECK_OK(mt_ckpt_read(&c, p));
    check_small(c);
    mt_ckpt_free(c);
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    unsetenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT");
    mt_free(ballast);
    check_no_children();
}

/* Hostile streams (a child whose memory libhdf5 corrupted may send anything; made by the test
 * hook MLTRAIN_ISOLATE_TEST_CHILD=garbage-*): endless attributes, endless empty arrays with long
 * names, string attributes of 200 MiB, a channel announcing 2^26 records, an array the
 * checkpoint API refuses. Each is refused as a malformed result naming the file, quickly
 * (printed), before this process allocates what the stream announces: the counts are bounded,
 * and every decoded byte is charged to 4 times the child's memory limit (1 MiB here; the cases
 * that need a limit are left out in a sanitizer build, which has none). Unbounded, the first
 * three ran until the deadline while this process grew. */
MT_TEST(ckpt_isolated_hostile_streams)
{
    char *p = write_small("streams.h5");
    setenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT", "30", 1);
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    bool limited = mt__isolate_mem_limit(0) != 0;
    setenv("MLTRAIN_ISOLATE_MAX_MB", "1", 1);
    static const struct {
        const char *mode;
        bool needs_limit;
        const char *needle;
    } cases[] = {
        {"garbage-attrs", false, "sent a malformed result (too many attributes)"},
        {"garbage-refused", false,
         "sent a malformed result (an entry the checkpoint refuses: checkpoint: array name "
         "'monitors/W' is under \"monitors/\""},
        {"garbage-arrays", true,
         "sent a malformed result (more data than the reading process's memory limit allows)"},
        {"garbage-strings", true, "(more data than the reading process's memory limit allows)"},
        {"garbage-records", true, "(more data than the reading process's memory limit allows)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].needs_limit && !limited) {
            printf("%-16s left out: no memory limit in a sanitizer build\n", cases[i].mode);
            continue;
        }
        setenv("MLTRAIN_ISOLATE_TEST_CHILD", cases[i].mode, 1);
        mt_ckpt *c = NULL;
        double t0 = mono_s();
        MT_CHECK_ERR(mt_ckpt_read(&c, p), MT_ERR_FORMAT, cases[i].needle);
        printf("%-16s %.2f s: %s\n", cases[i].mode, mono_s() - t0, mt_last_error());
        MT_CHECK(strstr(mt_last_error(), p) != NULL);
        MT_CHECK(c == NULL);
    }
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    unsetenv("MLTRAIN_ISOLATE_MAX_MB");
    unsetenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT");
    check_no_children();
}

/* With SIGCHLD ignored the kernel reaps the child itself: its result still counts. */
MT_TEST(ckpt_isolated_sigchld_ignored)
{
    char *p = write_small("sigchld.h5");
    signal(SIGCHLD, SIG_IGN);
    mt_ckpt *c = NULL;
    MT_CHECK_OK(mt_ckpt_read(&c, p));
    check_small(c);
    mt_ckpt_free(c);
    setenv("MLTRAIN_ISOLATE_TEST_CHILD", "segv", 1);
    MT_CHECK_ERR(mt_ckpt_read(&c, p), MT_ERR_FORMAT, "ended without a result");
    unsetenv("MLTRAIN_ISOLATE_TEST_CHILD");
    signal(SIGCHLD, SIG_DFL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The cost of isolation, measured (printed, not judged: timings belong to bench/RESULTS.md):
 * the median of N loads (MLTRAIN_CKPT_BENCH_N: 3 by default, a check in CTest; 21 to measure)
 * of the checkpoint of jobs/fashion_mnist_mlp.yaml (784-1024-1024-10 with momentum: 3.7 M
 * float32 values, 15 MB, 12 monitor channels of 50 epochs), isolated and in-process,
 * alternating; both give the same checkpoint. */
MT_TEST(ckpt_isolated_overhead)
{
    static const struct {
        const char *name;
        int64_t rows, cols;
    } layers[3] = {{"h0", 784, 1024}, {"h1", 1024, 1024}, {"y", 1024, 10}};
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    for (int l = 0; l < 3; l++) {
        int64_t dw[2] = {layers[l].rows, layers[l].cols}, db[1] = {layers[l].cols};
        size_t n = (size_t)(dw[0] * dw[1]);
        float *w = mt_malloc(n * sizeof *w);
        for (size_t i = 0; i < n; i++)
            w[i] = (float)xval((int64_t)i, l);
        static const char *const kinds[2] = {"params", "optimizer"};
        for (int k = 0; k < 2; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s/%s_W%s", kinds[k], layers[l].name,
                     k ? "_velocity" : "");
            MT_CHECK_OK(mt_ckpt_put_array_host(c, name, MT_FLOAT32, 2, dw, w));
            snprintf(name, sizeof name, "%s/%s_b%s", kinds[k], layers[l].name,
                     k ? "_velocity" : "");
            MT_CHECK_OK(mt_ckpt_put_array_host(c, name, MT_FLOAT32, 1, db, w));
        }
        mt_free(w);
    }
    MT_CHECK_OK(mt_ckpt_put_int(c, "epochs_seen", 50));
    MT_CHECK_OK(mt_ckpt_put_string(c, "model_yaml", "!obj:MLP {layers: [h0, h1, y]}"));
    mt_monitor_history h;
    mt_monitor_history_init(&h, "monitor");
    for (int ci = 0; ci < 12; ci++) {
        char cname[32];
        snprintf(cname, sizeof cname, "channel_%d", ci);
        mt_chan_history *ch = mt_monitor_history_channel(&h, cname, true);
        for (int e = 0; e < 50; e++) {
            mt_chan_record r = {xval(e, ci), e, 100 * e, 6000 * e, 2.5 * e};
            MT_CHECK_OK(mt_chan_history_append(ch, &r));
        }
    }
    MT_CHECK_OK(mt_ckpt_put_monitor(c, &h));
    mt_monitor_history_clear(&h);
    char *p = tpath("mlp.h5");
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    /* MLTRAIN_CKPT_BENCH_RSS_MB: memory this process holds (touched) while loading, as a
     * training process would; fork copies its page tables */
    const char *rs = getenv("MLTRAIN_CKPT_BENCH_RSS_MB");
    size_t rss = rs && atol(rs) > 0 ? (size_t)atol(rs) << 20 : 0;
    char *ballast = rss ? mt_malloc(rss) : NULL;
    MT_CHECK(!rss || ballast);
    if (ballast) memset(ballast, 1, rss);
    const char *ns = getenv("MLTRAIN_CKPT_BENCH_N");
    int n = ns && atoi(ns) > 0 ? atoi(ns) : 3;
    double *t[2] = {mt_calloc((size_t)n, sizeof(double)), mt_calloc((size_t)n, sizeof(double))};
    MT_CHECK(t[0] && t[1]);
    for (int i = 0; i < n; i++) {
        for (int iso = 0; iso < 2; iso++) {
            setenv("MLTRAIN_CKPT_ISOLATE", iso ? "1" : "0", 1);
            double t0 = mono_s();
            MT_CHECK_OK(mt_ckpt_read(&c, p));
            t[iso][i] = mono_s() - t0;
            MT_CHECK_EQ_INT(mt_ckpt_n_arrays(c), 12);
            MT_CHECK_EQ_INT(mt_ckpt_n_monitors(c), 1);
            mt_ckpt_free(c);
        }
    }
    unsetenv("MLTRAIN_CKPT_ISOLATE");
    qsort(t[0], (size_t)n, sizeof(double), cmp_double);
    qsort(t[1], (size_t)n, sizeof(double), cmp_double);
    struct stat sb;
    MT_CHECK(stat(p, &sb) == 0);
    printf("checkpoint of %lld bytes, %zu MiB held, %d loads each: median in-process %.2f ms, "
           "isolated %.2f ms (+%.2f ms, x%.2f); min %.2f / %.2f ms\n",
           (long long)sb.st_size, rss >> 20, n, 1e3 * t[0][n / 2], 1e3 * t[1][n / 2],
           1e3 * (t[1][n / 2] - t[0][n / 2]), t[1][n / 2] / t[0][n / 2], 1e3 * t[0][0],
           1e3 * t[1][0]);
    mt_free(t[0]);
    mt_free(t[1]);
    mt_free(ballast);
    check_no_children();
}
