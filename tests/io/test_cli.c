/* The io commands of the mltrain binary on checkpoints and run logs written here through the io
 * API: print-monitor (last values and --all), show-weights (dense and conv layouts, checked
 * pixel by pixel against the weights), plot (checkpoint and RUN_DIR, default and named
 * channels) and their error messages and exit codes, and print-monitor on every hostile
 * checkpoint of fuzz/crashes/ckpt/ (an error naming the file, never a crash). */
#include "io_test_util.h"

#ifndef MT_MLTRAIN_EXE
#error "MT_MLTRAIN_EXE must name the mltrain binary"
#endif
#ifndef MT_CKPT_HOSTILE_DIR
#error "MT_CKPT_HOSTILE_DIR must name fuzz/crashes/ckpt"
#endif

/* Runs `mltrain ARGS 2>&1`; returns the exit code, output in *out (mt_free). */
static int run_mltrain(const char *args, char **out)
{
    char cmd[4096];
    char *o = tpath("cli.out");
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>&1", MT_MLTRAIN_EXE, args, o);
    int rc = system(cmd);
    *out = slurp(o, NULL);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

#define CHECK_HAS(text, needle)                                                                    \
    do {                                                                                           \
        if (!strstr((text), (needle)))                                                             \
            mt_test_fail(__FILE__, __LINE__, "output lacks '%s':\n%s", (needle), (text));          \
    } while (0)

/* A checkpoint with a monitor of 4 records (epochs 0..3) on 3 channels, plus first-layer
 * weights: dense [rows*cols*chans, units] or conv [units, chans, rows, cols]. */
static char *write_ckpt(const char *name, const char *layout, int64_t units, int64_t rows,
                        int64_t cols, int64_t chans, bool with_attrs)
{
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    mt_monitor_history h;
    mt_monitor_history_init(&h, "monitor");
    const char *names[3] = {"valid_y_misclass", "train_objective", "learning_rate"};
    for (int ci = 0; ci < 3; ci++) {
        mt_chan_history *ch = mt_monitor_history_channel(&h, names[ci], true);
        for (int e = 0; e < 4; e++) {
            mt_chan_record r = {ci == 2 ? 0.01 : (4 - e) * (ci + 1) * 0.125, e, e * 50, e * 3000,
                                e * 2.5};
            MT_CHECK_OK(mt_chan_history_append(ch, &r));
        }
    }
    MT_CHECK_OK(mt_ckpt_put_monitor(c, &h));
    mt_monitor_history_clear(&h);
    int64_t n = units * rows * cols * chans;
    float *w = mt_malloc((size_t)n * sizeof *w);
    for (int64_t i = 0; i < n; i++)
        w[i] = (float)xval(i, 0);
    bool conv = !strcmp(layout, "conv");
    int64_t dd[2] = {rows * cols * chans, units}, dc[4] = {units, chans, rows, cols};
    MT_CHECK_OK(
        mt_ckpt_put_array_host(c, "params/h0_W", MT_FLOAT32, conv ? 4 : 2, conv ? dc : dd, w));
    mt_free(w);
    if (with_attrs) {
        MT_CHECK_OK(mt_ckpt_put_string(c, "first_weights", "params/h0_W"));
        MT_CHECK_OK(mt_ckpt_put_string(c, "first_weights_layout", layout));
        MT_CHECK_OK(mt_ckpt_put_int(c, "input_rows", rows));
        MT_CHECK_OK(mt_ckpt_put_int(c, "input_cols", cols));
        MT_CHECK_OK(mt_ckpt_put_int(c, "input_channels", chans));
    }
    char *p = tpath(name);
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    return p;
}

MT_TEST(cli_print_monitor)
{
    char *p = write_ckpt("m.h5", "dense", 2, 2, 2, 1, true);
    char args[1200], *out;
    snprintf(args, sizeof args, "print-monitor '%s'", p);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    MT_CHECK_STR_EQ(out, "epochs seen: 3\n"
                         "batches seen: 150\n"
                         "examples seen: 9000\n"
                         "time trained: 7.5 s\n"
                         "learning_rate : 0.01\n"
                         "train_objective : 0.25\n"
                         "valid_y_misclass : 0.125\n");
    mt_free(out);
    snprintf(args, sizeof args, "print-monitor --all '%s'", p);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    CHECK_HAS(out, "valid_y_misclass");
    /* one row per record: epoch 2 has batches 100, examples 6000, values 0.25, 0.5, 0.01 */
    CHECK_HAS(out, " epoch   batches    examples    seconds  valid_y_misclass  train_objective"
                   "   learning_rate\n");
    CHECK_HAS(out, "\n     2       100        6000          5              0.25              0.5"
                   "            0.01\n");
    CHECK_HAS(out, "\n     0         0           0          0               0.5                1"
                   "            0.01\n");
    mt_free(out);
}

MT_TEST(cli_print_monitor_errors)
{
    char args[1200], *out;
    snprintf(args, sizeof args, "print-monitor '%s'", tpath("missing.h5"));
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "mltrain: error: print-monitor: ERR_IO: cannot read checkpoint");
    CHECK_HAS(out, "missing.h5': No such file or directory");
    mt_free(out);
    char *junk = tpath("junk.h5");
    write_bytes(junk, "hello", 5);
    snprintf(args, sizeof args, "print-monitor '%s'", junk);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "is not an HDF5 file");
    mt_free(out);
    MT_CHECK_EQ_INT(run_mltrain("print-monitor", &out), 2);
    CHECK_HAS(out, "missing CKPT");
    mt_free(out);
    MT_CHECK_EQ_INT(run_mltrain("print-monitor a.h5 --bogus", &out), 2);
    CHECK_HAS(out, "unknown option '--bogus'");
    mt_free(out);
    /* a checkpoint without a monitor */
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_new(&c));
    char *p = tpath("nomon.h5");
    MT_CHECK_OK(mt_ckpt_write(c, p));
    mt_ckpt_free(c);
    snprintf(args, sizeof args, "print-monitor '%s'", p);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    CHECK_HAS(out, "has no monitor history");
    mt_free(out);
}

/* Checks tile t of the written image against filter values vals[rows*cols] (gray). */
static void check_tile(const uint8_t *pix, int64_t w, int64_t gc, int64_t t, int64_t rows,
                       int64_t cols, const double *vals)
{
    double mx = 0;
    for (int64_t i = 0; i < rows * cols; i++)
        mx = fmax(mx, fabs(vals[i]));
    int64_t y0 = 1 + (t / gc) * (rows + 1), x0 = 1 + (t % gc) * (cols + 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            int want = (int)lround(127.5 + 127.5 * vals[r * cols + c] / mx);
            MT_CHECK_EQ_INT(pix[(y0 + r) * w + x0 + c], want);
        }
}

MT_TEST(cli_show_weights_dense)
{
    int64_t units = 7, rows = 6, cols = 5;
    char *p = write_ckpt("dense.h5", "dense", units, rows, cols, 1, true);
    char *png = tpath("w.png");
    char args[2400], *out;
    snprintf(args, sizeof args, "show-weights '%s' -o '%s'", p, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    CHECK_HAS(out, "7 filters of 6x5");
    mt_free(out);
    uint8_t *pix;
    int64_t w, h;
    int32_t ch;
    MT_CHECK_OK(mt_png_read(png, &pix, &w, &h, &ch));
    /* 7 tiles: 3 columns x 3 rows of 6x5 with borders */
    MT_CHECK(w == 3 * 6 + 1 && h == 3 * 7 + 1 && ch == 1);
    double vals[30];
    for (int64_t k = 0; k < units; k++) { /* column k of W [30, 7] is tile k */
        for (int64_t i = 0; i < rows * cols; i++)
            vals[i] = (float)xval(i * units + k, 0);
        check_tile(pix, w, 3, k, rows, cols, vals);
    }
    mt_free(pix);
    /* --max */
    snprintf(args, sizeof args, "show-weights '%s' -o '%s' --max 4", p, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    mt_free(out);
    MT_CHECK_OK(mt_png_info(png, &w, &h, &ch));
    MT_CHECK(w == 2 * 6 + 1 && h == 2 * 7 + 1);
}

MT_TEST(cli_show_weights_conv)
{
    /* RGB filters: [4, 3, 3, 2] -> 4 colour tiles of 3x2 */
    char *p = write_ckpt("conv.h5", "conv", 4, 3, 2, 3, true);
    char *png = tpath("c.png");
    char args[2400], *out;
    snprintf(args, sizeof args, "show-weights '%s' -o '%s'", p, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    CHECK_HAS(out, "4 filters of 3x2 RGB");
    mt_free(out);
    uint8_t *pix;
    int64_t w, h;
    int32_t ch;
    MT_CHECK_OK(mt_png_read(png, &pix, &w, &h, &ch));
    MT_CHECK(w == 2 * 3 + 1 && h == 2 * 4 + 1 && ch == 3);
    /* filter 3, channel 1 (green), pixel (2, 1) = W[3, 1, 2, 1] */
    double mx = 0;
    for (int i = 0; i < 18; i++)
        mx = fmax(mx, fabs((float)xval(3 * 18 + i, 0)));
    double v = (float)xval(((3 * 3 + 1) * 3 + 2) * 2 + 1, 0);
    int64_t y = 1 + 1 * 4 + 2, x = 1 + 1 * 3 + 1;
    MT_CHECK_EQ_INT(pix[(y * w + x) * 3 + 1], lround(127.5 + 127.5 * v / mx));
    mt_free(pix);
    /* 2 input channels: one gray tile per (filter, channel) */
    p = write_ckpt("conv2.h5", "conv", 3, 2, 2, 2, true);
    snprintf(args, sizeof args, "show-weights '%s' -o '%s'", p, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    CHECK_HAS(out, "6 filters of 2x2");
    mt_free(out);
}

MT_TEST(cli_show_weights_errors)
{
    char *p = write_ckpt("noattr.h5", "dense", 2, 2, 2, 1, false);
    char args[2400], *out;
    snprintf(args, sizeof args, "show-weights '%s' -o '%s'", p, tpath("x.png"));
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "has no attribute 'first_weights' (the name of the first layer's weights");
    mt_free(out);
    /* attributes that disagree with the weights' shape */
    mt_ckpt *c;
    MT_CHECK_OK(mt_ckpt_read(&c, write_ckpt("bad.h5", "dense", 2, 2, 2, 1, true)));
    MT_CHECK_OK(mt_ckpt_put_int(c, "input_rows", 3));
    MT_CHECK_OK(mt_ckpt_write(c, p));
    MT_CHECK_OK(mt_ckpt_put_string(c, "first_weights_layout", "sparse"));
    char *p2 = tpath("bad2.h5");
    MT_CHECK_OK(mt_ckpt_write(c, p2));
    mt_ckpt_free(c);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "should be [input_dim = 3 x 2 x 1, units], not 2-d with 4 rows");
    mt_free(out);
    snprintf(args, sizeof args, "show-weights '%s' -o '%s'", p2, tpath("x.png"));
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "first_weights_layout is 'sparse'");
    mt_free(out);
    snprintf(args, sizeof args, "show-weights '%s'", p2);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 2);
    CHECK_HAS(out, "missing -o OUT.png");
    mt_free(out);
}

static void check_png_size(const char *png, int64_t want_w, int64_t want_h)
{
    int64_t w, h;
    int32_t ch;
    uint8_t *pix;
    MT_CHECK_OK(mt_png_read(png, &pix, &w, &h, &ch));
    MT_CHECK(w == want_w && h == want_h && ch >= 3);
    int64_t nonwhite = 0;
    for (int64_t i = 0; i < w * h; i++)
        nonwhite += pix[i * ch] < 200 || pix[i * ch + 1] < 200 || pix[i * ch + 2] < 200;
    MT_CHECK(nonwhite > 1000);
    mt_free(pix);
}

MT_TEST(cli_plot)
{
    char *p = write_ckpt("p.h5", "dense", 2, 2, 2, 1, true);
    char *png = tpath("curves.png");
    char args[2400], *out;
    snprintf(args, sizeof args, "plot '%s' -o '%s'", p, png);
    int rc = run_mltrain(args, &out);
#if !MT_HAVE_CAIRO_TEST
    MT_CHECK_EQ_INT(rc, 1);
    CHECK_HAS(out, "ERR_NOT_BUILT");
    mt_free(out);
    MT_SKIP("cairo not built in (plot answers ERR_NOT_BUILT, checked)");
#endif
    MT_CHECK_EQ_INT(rc, 0);
    CHECK_HAS(out, "2 channels, 800x500 pixels"); /* the _misclass and _objective ones */
    mt_free(out);
    check_png_size(png, 800, 500);
    snprintf(args, sizeof args, "plot '%s' -o '%s' --channels learning_rate --size 400x300", p,
             png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    CHECK_HAS(out, "1 channel, 400x300 pixels");
    mt_free(out);
    check_png_size(png, 400, 300);
    /* a run directory's monitor.jsonl */
    char *dir = tpath("run");
    mt_monitor_log *l;
    MT_CHECK_OK(mt_monitor_log_open(&l, dir, NULL));
    const char *names[2] = {"train_objective", "valid_y_nll"};
    for (int e = 0; e < 5; e++) {
        double v[2] = {1.0 / (e + 1), 2.0 / (e + 1)};
        MT_CHECK_OK(mt_monitor_log_write(l, e, e * 10, e * 100, e, 2, names, v));
    }
    mt_monitor_log_close(l);
    snprintf(args, sizeof args, "plot '%s' -o '%s'", dir, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    CHECK_HAS(out, "1 channel, 800x500");
    mt_free(out);
    check_png_size(png, 800, 500);
    snprintf(args, sizeof args, "plot '%s' -o '%s' --channels train_objective,valid_y_nll", dir,
             png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 0);
    mt_free(out);
    /* errors */
    snprintf(args, sizeof args, "plot '%s' -o '%s' --channels nope", p, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "no channel 'nope' (it has: valid_y_misclass, train_objective, learning_rate)");
    mt_free(out);
    snprintf(args, sizeof args, "plot '%s' -o '%s' --monitor other", p, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "has no monitor history named 'other'");
    mt_free(out);
    snprintf(args, sizeof args, "plot '%s' -o '%s'", tpath("empty_run"), png);
    MT_CHECK_OK(mt_mkdirs(tpath("empty_run"), 0755));
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 1);
    CHECK_HAS(out, "monitor.jsonl");
    mt_free(out);
    snprintf(args, sizeof args, "plot '%s' -o '%s' --size 12", p, png);
    MT_CHECK_EQ_INT(run_mltrain(args, &out), 2);
    CHECK_HAS(out, "--size: expected WxH");
    mt_free(out);
}

/* Every hostile input of fuzz/crashes/ckpt/ (files on which libhdf5 crashes, hangs or allocates
 * gigabytes, docs/security.md "Checkpoints"): `print-monitor` exits 1 with an error naming the
 * file, never with a signal. want_timeouts picks the inputs named timeout-* (0.5 s each). */
static void print_monitor_hostile(bool want_timeouts)
{
    setenv("MLTRAIN_CKPT_ISOLATE_TIMEOUT", "0.5", 0);
    DIR *d = opendir(MT_CKPT_HOSTILE_DIR);
    MT_CHECK(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if ((strncmp(e->d_name, "timeout", 7) == 0) != want_timeouts) continue;
        char path[2048], args[2200], *out;
        snprintf(path, sizeof path, "%s/%s", MT_CKPT_HOSTILE_DIR, e->d_name);
        snprintf(args, sizeof args, "print-monitor '%s'", path);
        int rc = run_mltrain(args, &out);
        if (rc != 1)
            mt_test_fail(__FILE__, __LINE__,
                         "print-monitor '%s' exited with %d (128: a signal):\n%s", path, rc, out);
        CHECK_HAS(out, "mltrain: error: print-monitor: ERR_");
        CHECK_HAS(out, path);
        mt_free(out);
        n++;
    }
    closedir(d);
    MT_CHECK(n >= (want_timeouts ? 10 : 30));
}

MT_TEST(cli_print_monitor_hostile_inputs)
{
    print_monitor_hostile(false);
}

MT_TEST(cli_print_monitor_hostile_timeouts)
{
    print_monitor_hostile(true);
}
