/* mltrain io: what a training run writes and reads besides datasets: checkpoints (HDF5),
 * monitor logs (JSON lines, CSV, TensorBoard event files), and pictures (PNG weight tiles with
 * libpng, channel plots with cairo).
 *
 * Checkpoints. An mt_ckpt (opaque) is an in-memory collection of
 *   - named host arrays (float32, float64, integers; see Names), '/'-separated HDF5 paths
 *     ("params/h0_W", "optimizer/h0_W_velocity"),
 *   - named attributes: int64, double or string ("epochs_seen", "model_yaml", "job_yaml"),
 *   - the monitor history: channels with one record per monitor call (value, epoch, batches,
 *     examples, seconds), under a monitor name ("monitor"; older pushed monitors keep their
 *     names, e.g. "monitor_stage_0").
 * mt_ckpt_write publishes it atomically as an HDF5 file (a temporary file in the same
 * directory, fsync, rename; a failure, e.g. a full disk, leaves the previous file intact and
 * removes the temporary). mt_ckpt_read checks the format marker and version and reports a
 * missing, truncated or corrupt file as ERR_IO / ERR_FORMAT naming the file and what is wrong.
 * Layout (documented in docs/checkpoints.md, readable by h5py): root attributes
 * "format" = "mltrain-checkpoint", "version" = 1, every attribute as a root attribute; arrays as
 * datasets at their paths; monitor history in group "/monitors/<name>/<channel>" as a
 * compound-free layout: datasets "value", "epoch", "batches", "examples", "seconds" (1-d,
 * one entry per record).
 * Without MT_WITH_HDF5 the write and read calls return ERR_NOT_BUILT.
 *
 * Names. Array names are '/'-separated paths of non-empty components (no leading or trailing
 * '/', no "." or ".."), not under "monitors"; attribute names are any non-empty string except
 * the reserved "format" and "version"; monitor and channel names are one path component (no
 * '/'). Arrays and attributes are separate namespaces. Storable dtypes: float32, float64 and
 * every signed and unsigned integer width; float16, bfloat16 and bool answer ERR_DTYPE (cast
 * first). Integer attributes are int64, double attributes float64, strings variable-length
 * UTF-8; on reading, any integer or float width and fixed-length strings (what h5py may write)
 * are accepted and converted.
 *
 * Threads: mltrain's HDF5 is the parallel (MPI) build, which is not thread-safe; do not call
 * mt_ckpt_write / mt_ckpt_read concurrently with each other or with other HDF5 users. */
#ifndef MLTRAIN_IO_H
#define MLTRAIN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mltrain/core.h"
#include "mltrain/gpuarray.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- monitor history */

typedef struct mt_chan_record {
    double value;
    int64_t epoch, batches, examples;
    double seconds;
} mt_chan_record;

typedef struct mt_chan_history {
    char *name;             /* owned */
    int32_t n, cap;
    mt_chan_record *records; /* owned */
} mt_chan_history;

typedef struct mt_monitor_history {
    char *name;             /* "monitor", "monitor_stage_0", ... (owned) */
    int32_t n, cap;
    mt_chan_history *channels; /* owned, in insertion order */
} mt_monitor_history;

/* Empty history named `name` (NULL: "monitor"); h->name is NULL only when out of memory. */
void mt_monitor_history_init(mt_monitor_history *h, const char *name);
/* Frees everything and zeroes h; a zeroed h and NULL are fine. */
void mt_monitor_history_clear(mt_monitor_history *h);
/* The channel named `name` (created when absent with create=true; NULL otherwise or ENOMEM).
 * Creating a channel may move the others: earlier pointers are valid until then. */
mt_chan_history *mt_monitor_history_channel(mt_monitor_history *h, const char *name,
                                            bool create);
mt_status mt_chan_history_append(mt_chan_history *c, const mt_chan_record *r);
/* Deep copy into dst, which is overwritten as uninitialized storage (clear it first if it held
 * a history); on failure dst is left cleared. */
mt_status mt_monitor_history_copy(mt_monitor_history *dst, const mt_monitor_history *src);
/* Reads RUN_DIR/monitor.jsonl (the format mt_monitor_log writes) into a history named
 * "monitor" (out is overwritten; zeroed on failure). null values read as NaN. ERR_FORMAT
 * "FILE:LINE:COL: ..." for malformed lines; an incomplete last line (a writer that died
 * mid-record) is ignored with a warning. */
mt_status mt_monitor_history_read_jsonl(mt_monitor_history *out, const char *path);

/* ---------------------------------------------------------------- checkpoints */

typedef struct mt_ckpt mt_ckpt; /* opaque */

mt_status mt_ckpt_new(mt_ckpt **out);
void mt_ckpt_free(mt_ckpt *c);
/* Adds (or replaces) an array: copies a's elements (any device; stored C-contiguous). */
mt_status mt_ckpt_put_array(mt_ckpt *c, const char *name, const mt_array *a);
mt_status mt_ckpt_put_int(mt_ckpt *c, const char *name, int64_t v);
mt_status mt_ckpt_put_double(mt_ckpt *c, const char *name, double v);
mt_status mt_ckpt_put_string(mt_ckpt *c, const char *name, const char *v);
/* Adds a copy of a monitor history (replacing one of the same name). */
mt_status mt_ckpt_put_monitor(mt_ckpt *c, const mt_monitor_history *h);
/* Adds (or replaces) an array from C-contiguous host data (copied). */
mt_status mt_ckpt_put_array_host(mt_ckpt *c, const char *name, mt_dtype dt, int32_t ndim,
                                 const int64_t *dims, const void *data);

/* Lookups. ERR_NOT_FOUND (naming the checkpoint's file when read from one, and the entry)
 * when absent; ERR_DTYPE when an attribute has another type. Arrays: a new host array. */
mt_status mt_ckpt_get_array(const mt_ckpt *c, const char *name, mt_array *out);
mt_status mt_ckpt_get_int(const mt_ckpt *c, const char *name, int64_t *out);
mt_status mt_ckpt_get_double(const mt_ckpt *c, const char *name, double *out);
mt_status mt_ckpt_get_string(const mt_ckpt *c, const char *name, const char **out); /* owned by c */
/* Whether an array or an attribute of that name exists. */
bool mt_ckpt_has(const mt_ckpt *c, const char *name);
/* Arrays, attributes and monitors in insertion order (a file read keeps the writer's order;
 * files without creation-order tracking, e.g. from h5py, list in name order). */
int32_t mt_ckpt_n_arrays(const mt_ckpt *c);
const char *mt_ckpt_array_name(const mt_ckpt *c, int32_t i);
int32_t mt_ckpt_n_monitors(const mt_ckpt *c);
const mt_monitor_history *mt_ckpt_monitor(const mt_ckpt *c, int32_t i);
const mt_monitor_history *mt_ckpt_find_monitor(const mt_ckpt *c, const char *name);

/* Like mt_ckpt_get_array, but the new array is on dev (e.g. to resume on an OpenCL device). */
mt_status mt_ckpt_get_array_on(const mt_ckpt *c, const char *name, mt_device *dev,
                               mt_array *out);
/* A borrowed look at a stored array: dtype, ndim, dims (MT_MAX_DIMS entries) and its C-order
 * bytes (valid until the entry is replaced or c freed). Any output may be NULL. */
mt_status mt_ckpt_array_info(const mt_ckpt *c, const char *name, mt_dtype *dtype,
                             int32_t *ndim, int64_t *dims, const void **data);

typedef enum mt_ckpt_attr_kind {
    MT_CKPT_ATTR_INT = 0,
    MT_CKPT_ATTR_DOUBLE,
    MT_CKPT_ATTR_STRING,
    MT_CKPT_ATTR_KIND_COUNT
} mt_ckpt_attr_kind;
int32_t mt_ckpt_n_attrs(const mt_ckpt *c);
const char *mt_ckpt_attr_name(const mt_ckpt *c, int32_t i);
mt_ckpt_attr_kind mt_ckpt_attr_kind_at(const mt_ckpt *c, int32_t i);
/* The file a checkpoint was read from, or NULL for one built in memory. */
const char *mt_ckpt_path(const mt_ckpt *c);

/* Atomic publication (see above): the file is built in memory (HDF5 core driver) and published
 * with mt_file_write_atomic, so peak memory is about twice the checkpoint's size, no reader
 * ever sees a partial file and a full disk cannot upset HDF5. Mode 0644. ERR_IO names the file
 * and the failing step ("write of N bytes failed: File too large"). */
mt_status mt_ckpt_write(const mt_ckpt *c, const char *path);
/* Reads a whole checkpoint into memory. ERR_IO: missing or unreadable file; ERR_FORMAT: empty,
 * not HDF5, truncated or corrupt (with HDF5's own reason), not a checkpoint (no or another
 * "format"), a newer version, an entry of an unsupported type or a malformed monitor. */
mt_status mt_ckpt_read(mt_ckpt **out, const char *path);

/* ---------------------------------------------------------------- monitor logs */

/* Writes every monitor record of a run to RUN_DIR/monitor.jsonl (one JSON object per monitor
 * call: {"epoch":..,"batches":..,"examples":..,"seconds":..,"channels":{name: value}}),
 * RUN_DIR/monitor.csv (columns epoch,batches,examples,seconds, then one per channel in order
 * of first appearance; when a record brings a new channel the file is rewritten atomically
 * with the wider header, older rows get empty cells) and a TensorBoard event file
 * RUN_DIR/events.out.tfevents.<unix time>.<host> (one Event per record holding one scalar
 * summary per channel, tag = channel name, step per tb_step, default the epoch; TFRecord
 * framing with masked CRC32C; the first event carries file_version "brain.Event:2"). Each
 * record is flushed as written. Non-finite values: JSON null, CSV "nan"/"inf"/"-inf",
 * TensorBoard the float value. RUN_DIR is created when missing. */
typedef struct mt_monitor_log mt_monitor_log; /* opaque */

typedef enum mt_tb_step {
    MT_TB_STEP_EPOCH = 0, /* default */
    MT_TB_STEP_BATCHES,
    MT_TB_STEP_EXAMPLES,
    MT_TB_STEP_COUNT
} mt_tb_step;

typedef struct mt_monitor_log_options {
    bool jsonl, csv, tensorboard; /* default all true */
    bool append;                  /* resume: append to existing files (CSV keeps its header;
                                     TensorBoard gets a new event file, as TensorFlow does) */
    mt_tb_step tb_step;           /* what the TensorBoard step counts (default epochs) */
} mt_monitor_log_options;
void mt_monitor_log_options_init(mt_monitor_log_options *o);
/* o NULL: the defaults. ERR_IO naming the file when RUN_DIR or a file cannot be created;
 * ERR_FORMAT when appending to a monitor.csv whose header is not ours. */
mt_status mt_monitor_log_open(mt_monitor_log **out, const char *run_dir,
                              const mt_monitor_log_options *o);
mt_status mt_monitor_log_write(mt_monitor_log *l, int64_t epoch, int64_t batches,
                               int64_t examples, double seconds, int32_t n,
                               const char *const *names, const double *values);
void mt_monitor_log_close(mt_monitor_log *l); /* NULL ok */
/* The event file's path ("" when TensorBoard output is off); valid until close. */
const char *mt_monitor_log_tb_path(const mt_monitor_log *l);

/* CRC32C (Castagnoli) and TensorBoard's mask; exposed for tests. */
uint32_t mt_crc32c(const void *data, size_t n);
uint32_t mt_crc32c_masked(const void *data, size_t n);

/* TensorBoard records built in memory: each mt_tb_record_* call appends one framed Event
 * (TFRecord) to sb; mt_tb_append_records adds them to an event file. With these a program
 * writes the summaries of TensorBoard's HParams dashboard (the `hparams` plugin: a summary
 * with plugin_name "hparams" whose content is a serialized HParamsPluginData, tags
 * "_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"):
 * the experiment (the hyperparameters with their types and domains, the metric tags) in the
 * log directory's top run, and per session (a run directory) its start (the values) and end
 * (the status). Metrics are ordinary scalars of the session's run. */
typedef enum mt_tb_hparam_type {
    MT_TB_HPARAM_FLOAT = 0, /* DATA_TYPE_FLOAT64 */
    MT_TB_HPARAM_STRING,    /* DATA_TYPE_STRING */
    MT_TB_HPARAM_BOOL,      /* DATA_TYPE_BOOL */
} mt_tb_hparam_type;

typedef struct mt_tb_hparam_info {
    const char *name;
    const char *display_name; /* NULL: none */
    const char *description;  /* NULL: none */
    mt_tb_hparam_type type;
    bool interval;            /* FLOAT: the domain is [min, max] */
    double min, max;
    int32_t n_values;         /* > 0: a discrete domain: strings (STRING) or numbers (FLOAT) */
    const char *const *strings;
    const double *numbers;
} mt_tb_hparam_info;

typedef struct mt_tb_metric_info {
    const char *tag;          /* the scalar's tag */
    const char *group;        /* sub-run of the session holding it; NULL/"": the session's run */
    const char *display_name; /* NULL: none */
    const char *description;  /* NULL: none */
} mt_tb_metric_info;

typedef struct mt_tb_hparam_value {
    const char *name;
    mt_tb_hparam_type type;
    double number;            /* FLOAT */
    const char *string;       /* STRING */
    bool boolean;             /* BOOL */
} mt_tb_hparam_value;

typedef enum mt_tb_session_status {
    MT_TB_STATUS_UNKNOWN = 0,
    MT_TB_STATUS_SUCCESS = 1,
    MT_TB_STATUS_FAILURE = 2,
    MT_TB_STATUS_RUNNING = 3,
} mt_tb_session_status;

/* The first event of every file: file_version "brain.Event:2". */
mt_status mt_tb_record_file_version(mt_strbuf *sb);
/* A scalar (simple_value) at `step`. */
mt_status mt_tb_record_scalar(mt_strbuf *sb, int64_t step, const char *tag, double value);
/* The HParams experiment: name and description may be NULL. ERR_INVALID for a nameless
 * hyperparameter or metric. */
mt_status mt_tb_record_hparams_experiment(mt_strbuf *sb, const char *name,
                                          const char *description, double time_created,
                                          int32_t n_hparams, const mt_tb_hparam_info *hparams,
                                          int32_t n_metrics, const mt_tb_metric_info *metrics);
/* A session's start: its hyperparameter values (group_name: sessions with the same group
 * are aggregated; NULL: none, the run's name is used) at start_time (seconds since 1970). */
mt_status mt_tb_record_hparams_session_start(mt_strbuf *sb, const char *group_name,
                                             double start_time, int32_t n,
                                             const mt_tb_hparam_value *values);
mt_status mt_tb_record_hparams_session_end(mt_strbuf *sb, mt_tb_session_status status,
                                           double end_time);
/* Appends the records to the event file `path`, creating it (and starting it with the
 * file_version event) when it is absent or empty. ERR_IO naming the file. */
mt_status mt_tb_append_records(const char *path, const mt_strbuf *records);

/* ---------------------------------------------------------------- pictures */

/* Tiles n filters of shape [rows, cols, channels] (channels 1 or 3) into a grid image (each
 * filter scaled to its own max |value|, mapped to [0, 255] around gray 127.5 as Pylearn2's
 * patch viewer), one pixel of border, and writes a PNG (atomic). */
mt_status mt_png_write_tiles(const char *path, const float *filters, int64_t n, int64_t rows,
                             int64_t cols, int64_t channels);
/* Reads a PNG's size and channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) (for tests). */
mt_status mt_png_info(const char *path, int64_t *width, int64_t *height, int32_t *channels);
/* Reads a PNG's 8-bit pixels, rows top to bottom, `channels` interleaved samples per pixel as
 * mt_png_info reports them; *pixels is freed with mt_free. */
mt_status mt_png_read(const char *path, uint8_t **pixels, int64_t *width, int64_t *height,
                      int32_t *channels);
/* The grid mt_png_write_tiles uses for n tiles: ceil(sqrt(n)) columns, as many rows as
 * needed; the image is grid_cols*(cols+1)+1 by grid_rows*(rows+1)+1 pixels, borders black. */
void mt_png_tile_grid(int64_t n, int64_t *grid_rows, int64_t *grid_cols);

/* Plots channels against epochs (one line each, legend, axes with ticks) into a PNG with cairo
 * (RGB, white background, atomic write). Non-finite values break a line. ERR_NOT_FOUND naming
 * the channel (and the ones present) when a channel is absent; ERR_INVALID below 160x120 or
 * above 10000x10000 pixels. ERR_NOT_BUILT without cairo (libcairo2-dev at configure time). */
mt_status mt_plot_channels(const char *path, const mt_monitor_history *h, int32_t n_channels,
                           const char *const *channels, int32_t width, int32_t height);
/* The same with another x-axis label than "epoch" (NULL: "epoch"); the x values are still
 * the records' epoch fields (a caller may store trial numbers there). */
mt_status mt_plot_channels_xlabel(const char *path, const mt_monitor_history *h,
                                  int32_t n_channels, const char *const *channels,
                                  const char *x_label, int32_t width, int32_t height);

/* Parallel coordinates: one vertical axis per column, one polyline per row. */
typedef enum mt_plot_scale {
    MT_PLOT_LINEAR = 0,
    MT_PLOT_LOG,         /* values > 0; others are treated as absent */
    MT_PLOT_CATEGORICAL, /* values are indices 0..n_labels-1, labels evenly spaced */
} mt_plot_scale;

typedef struct mt_plot_axis {
    const char *name;
    mt_plot_scale scale;
    double lo, hi;              /* LINEAR/LOG: the range to show at least (NaN: the data's) */
    int32_t n_labels;           /* CATEGORICAL */
    const char *const *labels;
} mt_plot_axis;

typedef enum mt_plot_line_style {
    MT_PLOT_LINE_NORMAL = 0, /* coloured by its colour value */
    MT_PLOT_LINE_BEST,       /* coloured, thick, drawn last */
    MT_PLOT_LINE_FAINT,      /* thin light gray, drawn first (e.g. failed or pruned) */
} mt_plot_line_style;

typedef struct mt_parallel_plot {
    int32_t n_axes;
    const mt_plot_axis *axes;
    int32_t n_lines;
    const double *values;     /* n_lines x n_axes, row-major; NaN: no value (the line breaks) */
    const double *color;      /* per line, mapped onto a colour scale (NaN: gray); NULL: none */
    const uint8_t *style;     /* per line mt_plot_line_style; NULL: all NORMAL */
    bool color_low_is_good;   /* the bright (good) end of the scale is the low value */
    const char *color_label;  /* title of the colour bar (NULL: none) */
} mt_parallel_plot;

/* Draws a parallel coordinates plot into a PNG with cairo (atomic write). ERR_INVALID for no
 * axes, a bad size (as mt_plot_channels) or a CATEGORICAL axis without labels; ERR_NOT_BUILT
 * without cairo. */
mt_status mt_plot_parallel(const char *path, const mt_parallel_plot *p, int32_t width,
                           int32_t height);

#ifdef __cplusplus
}
#endif
#endif /* MLTRAIN_IO_H */
