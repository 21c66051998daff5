/* The io commands: `print-monitor` (a checkpoint's counters and the last value of every channel,
 * like Pylearn2's print_monitor.py; --all prints every record as a table), `show-weights` (the
 * first layer's filters as a tiled PNG, found through the checkpoint's first_weights*
 * attributes) and `plot` (learning curves from a checkpoint's monitor or RUN_DIR/monitor.jsonl).
 * Usage errors exit 2, failures 1 with the library's message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cmd_io.h"
#include "mltrain/io.h"

static int usage_error(const char *cmd, const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "mltrain %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: %s\n", usage);
    return 2;
}

/* The command's one positional argument: an option it does not know (`unknown`, the message with
 * '%s' for it) or a second argument is a usage error (exit code 2); 0 when arg became *out. */
static int positional(const char *cmd, const char *usage, const char *unknown, const char *arg,
                      const char **out)
{
    if (arg[0] == '-') return usage_error(cmd, usage, unknown, arg);
    if (*out) return usage_error(cmd, usage, "unexpected argument '%s'", arg);
    *out = arg;
    return 0;
}

/* ---------------------------------------------------------------- print-monitor */

static const char PRINT_USAGE[] = "mltrain print-monitor CKPT [--all]";

static int cmp_names(const void *a, const void *b)
{
    const mt_chan_history *x = *(const mt_chan_history *const *)a;
    const mt_chan_history *y = *(const mt_chan_history *const *)b;
    return strcmp(x->name, y->name);
}

/* The latest record of the monitor (most batches, then examples, then epochs). */
static const mt_chan_record *latest(const mt_monitor_history *h)
{
    const mt_chan_record *best = NULL;
    for (int32_t i = 0; i < h->n; i++) {
        if (h->channels[i].n == 0) continue;
        const mt_chan_record *r = &h->channels[i].records[h->channels[i].n - 1];
        if (!best || r->batches > best->batches ||
            (r->batches == best->batches && r->examples > best->examples) ||
            (r->batches == best->batches && r->examples == best->examples &&
             r->epoch > best->epoch))
            best = r;
    }
    return best;
}

static int cmp_records(const void *a, const void *b)
{
    const mt_chan_record *x = a, *y = b;
    if (x->batches != y->batches) return x->batches < y->batches ? -1 : 1;
    if (x->examples != y->examples) return x->examples < y->examples ? -1 : 1;
    if (x->epoch != y->epoch) return x->epoch < y->epoch ? -1 : 1;
    return 0;
}

/* --all: one row per monitor call (the union of the channels' records, matched on the
 * counters), one column per channel; '-' where a channel has no value for that call. */
static int print_all(const mt_monitor_history *h)
{
    int64_t total = 0;
    for (int32_t i = 0; i < h->n; i++)
        total += h->channels[i].n;
    mt_chan_record *rows = malloc((size_t)(total ? total : 1) * sizeof *rows);
    if (!rows) {
        fprintf(stderr, "mltrain print-monitor: out of memory\n");
        return 1;
    }
    int64_t nr = 0;
    for (int32_t i = 0; i < h->n; i++)
        for (int32_t k = 0; k < h->channels[i].n; k++)
            rows[nr++] = h->channels[i].records[k];
    qsort(rows, (size_t)nr, sizeof *rows, cmp_records);
    int64_t u = 0;
    for (int64_t i = 0; i < nr; i++)
        if (u == 0 || cmp_records(&rows[u - 1], &rows[i]) != 0) rows[u++] = rows[i];
    printf("%6s %9s %11s %10s", "epoch", "batches", "examples", "seconds");
    for (int32_t c = 0; c < h->n; c++)
        printf("  %14s", h->channels[c].name);
    printf("\n");
    for (int64_t i = 0; i < u; i++) {
        printf("%6lld %9lld %11lld %10.4g", (long long)rows[i].epoch, (long long)rows[i].batches,
               (long long)rows[i].examples, rows[i].seconds);
        for (int32_t c = 0; c < h->n; c++) {
            const mt_chan_history *ch = &h->channels[c];
            int width = (int)strlen(ch->name) > 14 ? (int)strlen(ch->name) : 14;
            const mt_chan_record *hit = NULL;
            for (int32_t k = 0; k < ch->n && !hit; k++)
                if (cmp_records(&ch->records[k], &rows[i]) == 0) hit = &ch->records[k];
            if (hit)
                printf("  %*.10g", width, hit->value);
            else
                printf("  %*s", width, "-");
        }
        printf("\n");
    }
    free(rows);
    return 0;
}

static int print_monitor(const mt_monitor_history *h, bool all, bool header)
{
    if (header) printf("monitor %s:\n", h->name);
    const mt_chan_record *last = latest(h);
    if (!last) {
        printf("no records\n");
        return 0;
    }
    printf("epochs seen: %lld\n", (long long)last->epoch);
    printf("batches seen: %lld\n", (long long)last->batches);
    printf("examples seen: %lld\n", (long long)last->examples);
    printf("time trained: %.6g s\n", last->seconds);
    if (all) return print_all(h);
    const mt_chan_history **sorted = malloc((size_t)h->n * sizeof *sorted);
    if (!sorted) {
        fprintf(stderr, "mltrain print-monitor: out of memory\n");
        return 1;
    }
    for (int32_t i = 0; i < h->n; i++)
        sorted[i] = &h->channels[i];
    qsort(sorted, (size_t)h->n, sizeof *sorted, cmp_names);
    for (int32_t i = 0; i < h->n; i++)
        if (sorted[i]->n > 0)
            printf("%s : %.10g\n", sorted[i]->name, sorted[i]->records[sorted[i]->n - 1].value);
    free(sorted);
    return 0;
}

int mt_cli_print_monitor(int argc, char **argv)
{
    const char *path = NULL;
    bool all = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--all"))
            all = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s\nPrints a checkpoint's epochs, batches and examples seen, the "
                   "training time and the last value of every monitor channel;\n--all prints "
                   "every record.\n",
                   PRINT_USAGE);
            return 0;
        } else {
            int rc =
                positional("print-monitor", PRINT_USAGE, "unknown option '%s'", argv[i], &path);
            if (rc) return rc;
        }
    }
    if (!path) return usage_error("print-monitor", PRINT_USAGE, "%s", "missing CKPT");
    mt_ckpt *c;
    if (mt_ckpt_read(&c, path) != MT_OK) return mt_cli_fail("print-monitor");
    int rc = 0;
    int32_t nm = mt_ckpt_n_monitors(c);
    if (nm == 0) printf("%s has no monitor history\n", path);
    /* the current monitor first, then older pushed ones */
    const mt_monitor_history *cur = mt_ckpt_find_monitor(c, "monitor");
    if (cur) rc = print_monitor(cur, all, nm > 1);
    for (int32_t i = 0; i < nm && rc == 0; i++) {
        const mt_monitor_history *h = mt_ckpt_monitor(c, i);
        if (h == cur) continue;
        if (cur || i > 0) printf("\n");
        rc = print_monitor(h, all, nm > 1);
    }
    mt_ckpt_free(c);
    return rc;
}

/* ---------------------------------------------------------------- show-weights */

static const char SHOW_USAGE[] = "mltrain show-weights CKPT -o OUT.png [--max N]";

typedef struct filters {
    float *data;
    int64_t n, rows, cols, chans;
} filters;

/* Reads an int attribute that the training loop stores; a clear message when absent. */
static mt_status need_int(const mt_ckpt *c, const char *name, int64_t *out)
{
    mt_status st = mt_ckpt_get_int(c, name, out);
    if (st == MT_ERR_NOT_FOUND)
        return mt_err_set(st,
                          "checkpoint '%s' has no integer attribute '%s' (the input's "
                          "rows, cols and channels, stored by the training loop)",
                          mt_ckpt_path(c), name);
    if (st == MT_OK && *out <= 0)
        return mt_err_set(MT_ERR_FORMAT, "checkpoint '%s': attribute '%s' is %lld", mt_ckpt_path(c),
                          name, (long long)*out);
    return st;
}

/* W as float32 in C order. */
static mt_status weights_f32(const mt_ckpt *c, const char *name, int32_t *nd, int64_t *dims,
                             float **out)
{
    mt_dtype dt;
    const void *data;
    mt_status st = mt_ckpt_array_info(c, name, &dt, nd, dims, &data);
    if (st != MT_OK) return st;
    if (dt != MT_FLOAT32 && dt != MT_FLOAT64)
        return mt_err_set(MT_ERR_DTYPE, "checkpoint '%s': weights '%s' are %s, not float",
                          mt_ckpt_path(c), name, mt_dtype_name(dt));
    int64_t n = 1;
    for (int32_t d = 0; d < *nd; d++)
        n *= dims[d];
    *out = malloc((size_t)(n ? n : 1) * sizeof **out);
    if (!*out) return mt_err_set(MT_ERR_NOMEM, "show-weights: out of memory");
    mt_dtype_convert(*out, MT_FLOAT32, 4, data, dt, (ptrdiff_t)mt_dtype_size(dt), (size_t)n);
    return MT_OK;
}

/* Filters as [n, rows, cols, chans]; channel counts other than 1 and 3 are shown one gray tile
 * per (filter, channel). Dense W is [rows*cols*chans, units] (a column is an image in
 * (row, col, channel) order); conv W is [units, chans, rows, cols]. */
static mt_status make_filters(filters *f, const float *w, int64_t units, int64_t rows, int64_t cols,
                              int64_t chans, bool conv)
{
    bool split = chans != 1 && chans != 3;
    f->n = split ? units * chans : units;
    f->rows = rows;
    f->cols = cols;
    f->chans = split ? 1 : chans;
    f->data = malloc((size_t)(f->n * rows * cols * f->chans) * sizeof *f->data);
    if (!f->data) return mt_err_set(MT_ERR_NOMEM, "show-weights: out of memory");
    for (int64_t k = 0; k < units; k++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                for (int64_t ch = 0; ch < chans; ch++) {
                    /* dense: W[(r*cols + c)*chans + ch, k]; conv: W[k, ch, r, c] */
                    float v = conv ? w[((k * chans + ch) * rows + r) * cols + c]
                                   : w[((r * cols + c) * chans + ch) * units + k];
                    int64_t t = split ? k * chans + ch : k;
                    int64_t cc = split ? 0 : ch;
                    f->data[((t * rows + r) * cols + c) * f->chans + cc] = v;
                }
    return MT_OK;
}

static mt_status load_filters(const mt_ckpt *c, filters *f)
{
    const char *name, *layout;
    mt_status st = mt_ckpt_get_string(c, "first_weights", &name);
    if (st == MT_ERR_NOT_FOUND)
        return mt_err_set(st,
                          "checkpoint '%s' has no attribute 'first_weights' (the name of the "
                          "first layer's weights, stored by the training loop)",
                          mt_ckpt_path(c));
    if (st == MT_OK) st = mt_ckpt_get_string(c, "first_weights_layout", &layout);
    if (st == MT_ERR_NOT_FOUND)
        return mt_err_set(st,
                          "checkpoint '%s' has no attribute 'first_weights_layout' "
                          "(\"dense\" or \"conv\")",
                          mt_ckpt_path(c));
    if (st != MT_OK) return st;
    int32_t nd;
    int64_t dims[MT_MAX_DIMS];
    float *w = NULL;
    if (!strcmp(layout, "dense")) {
        int64_t rows, cols, chans;
        if ((st = need_int(c, "input_rows", &rows)) != MT_OK) return st;
        if ((st = need_int(c, "input_cols", &cols)) != MT_OK) return st;
        if ((st = need_int(c, "input_channels", &chans)) != MT_OK) return st;
        if ((st = weights_f32(c, name, &nd, dims, &w)) != MT_OK) return st;
        if (nd != 2 || dims[0] != rows * cols * chans)
            st = mt_err_set(MT_ERR_SHAPE,
                            "checkpoint '%s': dense weights '%s' should be [input_dim = %lld x "
                            "%lld x %lld, units], not %d-d with %lld rows",
                            mt_ckpt_path(c), name, (long long)rows, (long long)cols,
                            (long long)chans, (int)nd, (long long)(nd ? dims[0] : 0));
        if (st == MT_OK) st = make_filters(f, w, dims[1], rows, cols, chans, false);
    } else if (!strcmp(layout, "conv")) {
        if ((st = weights_f32(c, name, &nd, dims, &w)) != MT_OK) return st;
        if (nd != 4)
            st = mt_err_set(MT_ERR_SHAPE,
                            "checkpoint '%s': conv weights '%s' should be [out, in, kh, kw], "
                            "not %d-d",
                            mt_ckpt_path(c), name, (int)nd);
        if (st == MT_OK) st = make_filters(f, w, dims[0], dims[2], dims[3], dims[1], true);
    } else {
        st = mt_err_set(MT_ERR_FORMAT,
                        "checkpoint '%s': first_weights_layout is '%s'; expected \"dense\" or "
                        "\"conv\"",
                        mt_ckpt_path(c), layout);
    }
    free(w);
    return st;
}

int mt_cli_show_weights(int argc, char **argv)
{
    const char *path = NULL, *out = NULL;
    long long max = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--max") && i + 1 < argc) {
            char *end;
            max = strtoll(argv[++i], &end, 10);
            if (*end || max <= 0)
                return usage_error("show-weights", SHOW_USAGE,
                                   "--max: '%s' is not a positive "
                                   "integer",
                                   argv[i]);
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s\nTiles the first layer's filters (named by the checkpoint's "
                   "first_weights attributes) into a PNG.\n",
                   SHOW_USAGE);
            return 0;
        } else {
            int rc = positional("show-weights", SHOW_USAGE, "unknown option or missing value '%s'",
                                argv[i], &path);
            if (rc) return rc;
        }
    }
    if (!path) return usage_error("show-weights", SHOW_USAGE, "%s", "missing CKPT");
    if (!out) return usage_error("show-weights", SHOW_USAGE, "%s", "missing -o OUT.png");
    mt_ckpt *c;
    if (mt_ckpt_read(&c, path) != MT_OK) return mt_cli_fail("show-weights");
    filters f = {0};
    mt_status st = load_filters(c, &f);
    mt_ckpt_free(c);
    if (st != MT_OK) return mt_cli_fail("show-weights");
    if (max > 0 && f.n > max) f.n = max;
    st = mt_png_write_tiles(out, f.data, f.n, f.rows, f.cols, f.chans);
    free(f.data);
    if (st != MT_OK) return mt_cli_fail("show-weights");
    int64_t w, h;
    int32_t ch;
    if (mt_png_info(out, &w, &h, &ch) != MT_OK) return mt_cli_fail("show-weights");
    printf("wrote %s: %lld filters of %lldx%lld%s, %lldx%lld pixels\n", out, (long long)f.n,
           (long long)f.rows, (long long)f.cols, f.chans == 3 ? " RGB" : "", (long long)w,
           (long long)h);
    return 0;
}

/* ---------------------------------------------------------------- plot */

static const char PLOT_USAGE[] =
    "mltrain plot RUN_DIR|CKPT -o OUT.png [--channels a,b,...] [--monitor NAME] [--size WxH]";

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The history to plot: RUN_DIR/monitor.jsonl for a directory, else a checkpoint's monitor. */
static mt_status load_history(const char *src, const char *monitor, mt_monitor_history *h)
{
    struct stat sb;
    if (stat(src, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/monitor.jsonl", src);
        return mt_monitor_history_read_jsonl(h, p);
    }
    mt_ckpt *c;
    mt_status st = mt_ckpt_read(&c, src);
    if (st != MT_OK) return st;
    const mt_monitor_history *m = mt_ckpt_find_monitor(c, monitor ? monitor : "monitor");
    if (!m && !monitor && mt_ckpt_n_monitors(c) > 0) m = mt_ckpt_monitor(c, 0);
    if (!m)
        st = mt_err_set(MT_ERR_NOT_FOUND, "checkpoint '%s' has no monitor history%s%s%s", src,
                        monitor ? " named '" : "", monitor ? monitor : "", monitor ? "'" : "");
    else
        st = mt_monitor_history_copy(h, m);
    mt_ckpt_free(c);
    return st;
}

/* Splits "a,b,c" into names (pointers into the modified copy). */
static int32_t split_names(char *list, const char **names, int32_t max)
{
    int32_t n = 0;
    for (char *tok = strtok(list, ","); tok && n < max; tok = strtok(NULL, ","))
        if (*tok) names[n++] = tok;
    return n;
}

int mt_cli_plot(int argc, char **argv)
{
    const char *src = NULL, *out = NULL, *monitor = NULL;
    char *chan_list = NULL;
    int width = 800, height = 500;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--channels") && i + 1 < argc)
            chan_list = argv[++i];
        else if (!strcmp(argv[i], "--monitor") && i + 1 < argc)
            monitor = argv[++i];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            char tail;
            if (sscanf(argv[++i], "%dx%d%c", &width, &height, &tail) != 2)
                return usage_error("plot", PLOT_USAGE, "--size: expected WxH, got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s\nPlots monitor channels against epochs (default: the channels "
                   "ending in _objective and _misclass).\n",
                   PLOT_USAGE);
            return 0;
        } else {
            int rc = positional("plot", PLOT_USAGE, "unknown option or missing value '%s'", argv[i],
                                &src);
            if (rc) return rc;
        }
    }
    if (!src) return usage_error("plot", PLOT_USAGE, "%s", "missing RUN_DIR or CKPT");
    if (!out) return usage_error("plot", PLOT_USAGE, "%s", "missing -o OUT.png");
    mt_monitor_history h;
    if (load_history(src, monitor, &h) != MT_OK) return mt_cli_fail("plot");
    const char *names[64];
    int32_t n = 0;
    char *copy = chan_list ? strdup(chan_list) : NULL;
    if (copy) {
        n = split_names(copy, names, 64);
    } else {
        for (int32_t i = 0; i < h.n && n < 64; i++)
            if (ends_with(h.channels[i].name, "_objective") ||
                ends_with(h.channels[i].name, "_misclass"))
                names[n++] = h.channels[i].name;
    }
    int rc = 0;
    if (n == 0) {
        fprintf(stderr, "mltrain: error: plot: no channels to plot in '%s' (%s; channels:", src,
                chan_list ? "--channels is empty" : "none ends in _objective or _misclass");
        for (int32_t i = 0; i < h.n; i++)
            fprintf(stderr, "%s %s", i ? "," : "", h.channels[i].name);
        fprintf(stderr, "%s)\n", h.n ? "" : " none");
        rc = 1;
    } else if (mt_plot_channels(out, &h, n, names, width, height) != MT_OK) {
        rc = mt_cli_fail("plot");
    } else {
        printf("wrote %s: %d channel%s, %dx%d pixels\n", out, (int)n, n == 1 ? "" : "s", width,
               height);
    }
    free(copy);
    mt_monitor_history_clear(&h);
    return rc;
}
