/* The monitor log of a run: every monitor record goes to RUN_DIR/monitor.jsonl, monitor.csv and
 * a TensorBoard event file, each flushed as written, so a run can be watched (tail, a
 * spreadsheet, TensorBoard) while it trains and survives a crash up to its last record.
 *
 * CSV: the header is epoch,batches,examples,seconds and then the channels in order of first
 * appearance. A record that brings a new channel widens the file: it is rewritten atomically
 * with the new header and empty cells in the older rows (rare: channels are normally all known
 * at the first record). Resuming (append) reads the existing header back.
 *
 * TensorBoard: a TFRecord file (per record: uint64 length, masked CRC32C of those 8 bytes, the
 * data, masked CRC32C of the data; little-endian) of Event protocol buffers, encoded here by
 * hand: Event { double wall_time = 1; int64 step = 2; string file_version = 3;
 * Summary summary = 5 }, Summary { repeated Value value = 1 }, Value { string tag = 1;
 * float simple_value = 2 }. The first event carries file_version "brain.Event:2", which makes
 * TensorBoard purge nothing on out-of-order steps (only on an explicit restart event). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "io_impl.h"

struct mt_monitor_log {
    mt_monitor_log_options o;
    char *jsonl_path, *csv_path, *tb_path;
    FILE *jsonl, *csv, *tb;
    int32_t n_cols, cap_cols;
    char **cols;     /* CSV channel columns (after the 4 counters) */
    bool csv_header; /* the CSV file has its header line */
};

/* ---------------------------------------------------------------- formatting helpers */

const char *mt__fmt_double(double v, char *buf, size_t len)
{
    if (isnan(v))
        snprintf(buf, len, "nan");
    else if (isinf(v))
        snprintf(buf, len, v > 0 ? "inf" : "-inf");
    else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, len, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
    return buf;
}

void mt__json_append_string(mt_strbuf *sb, const char *s)
{
    mt_strbuf_append(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"')
            mt_strbuf_append(sb, "\\\"");
        else if (*p == '\\')
            mt_strbuf_append(sb, "\\\\");
        else if (*p == '\n')
            mt_strbuf_append(sb, "\\n");
        else if (*p == '\t')
            mt_strbuf_append(sb, "\\t");
        else if (*p == '\r')
            mt_strbuf_append(sb, "\\r");
        else if (*p < 0x20)
            mt_strbuf_appendf(sb, "\\u%04x", *p);
        else
            mt_strbuf_appendn(sb, (const char *)p, 1);
    }
    mt_strbuf_append(sb, "\"");
}

/* RFC 4180 field: quoted when it holds a comma, quote or line break. */
static void csv_append_field(mt_strbuf *sb, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        mt_strbuf_append(sb, s);
        return;
    }
    mt_strbuf_append(sb, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"') mt_strbuf_append(sb, "\"");
        mt_strbuf_appendn(sb, p, 1);
    }
    mt_strbuf_append(sb, "\"");
}

static char *join_path(const char *dir, const char *name)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb, "%s/%s", dir, name);
    if (mt_strbuf_status(&sb) != MT_OK) {
        mt_strbuf_deinit(&sb);
        return NULL;
    }
    return mt_strbuf_take(&sb);
}

static mt_status write_out(FILE *f, const char *path, const mt_strbuf *sb)
{
    if (fwrite(sb->data, 1, sb->len, f) != sb->len || fflush(f) != 0)
        return mt_err_errno(errno, "monitor log: cannot write '%s'", path);
    return MT_OK;
}

/* ---------------------------------------------------------------- CSV */

static mt_status add_col(mt_monitor_log *l, const char *name)
{
    if (l->n_cols == l->cap_cols) {
        int32_t cap = l->cap_cols ? l->cap_cols * 2 : 16;
        char **nc = mt_realloc(l->cols, (size_t)cap * sizeof *nc);
        if (!nc) return mt_err_prefix(MT_ERR_NOMEM, "monitor log: ");
        l->cols = nc;
        l->cap_cols = cap;
    }
    if (!(l->cols[l->n_cols] = mt_strdup(name)))
        return mt_err_prefix(MT_ERR_NOMEM, "monitor log: ");
    l->n_cols++;
    return MT_OK;
}

/* Parses the header line of an existing CSV (resume): the 4 counters, then channels. */
static mt_status csv_read_header(mt_monitor_log *l, const char *text)
{
    static const char *const fixed[4] = {"epoch", "batches", "examples", "seconds"};
    mt_strbuf field;
    mt_strbuf_init(&field);
    const char *p = text;
    mt_status st = MT_OK;
    for (int32_t i = 0; st == MT_OK; i++) {
        mt_strbuf_clear(&field);
        mt_strbuf_appendn(&field, "", 0);
        if (*p == '"') {
            for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
                if (*p == '"') p++;
                mt_strbuf_appendn(&field, p, 1);
            }
            if (*p == '"') p++;
        } else {
            size_t n = strcspn(p, ",\r\n");
            mt_strbuf_appendn(&field, p, n);
            p += n;
        }
        if ((st = mt_strbuf_status(&field)) != MT_OK) break;
        if (i < 4 && strcmp(field.data, fixed[i]) != 0)
            st = mt_err_set(MT_ERR_FORMAT,
                            "monitor log: '%s' does not start with the header "
                            "epoch,batches,examples,seconds (column %d is '%s'); cannot append",
                            l->csv_path, (int)i + 1, field.data);
        else if (i >= 4)
            st = add_col(l, field.data);
        if (*p != ',') break;
        p++;
    }
    mt_strbuf_deinit(&field);
    return st;
}

static void csv_header(const mt_monitor_log *l, mt_strbuf *sb)
{
    mt_strbuf_append(sb, "epoch,batches,examples,seconds");
    for (int32_t i = 0; i < l->n_cols; i++) {
        mt_strbuf_append(sb, ",");
        csv_append_field(sb, l->cols[i]);
    }
    mt_strbuf_append(sb, "\n");
}

/* Rewrites the CSV with the current (wider) header; old rows get n_new empty cells. */
static mt_status csv_widen(mt_monitor_log *l, int32_t n_new)
{
    fclose(l->csv);
    l->csv = NULL;
    char *text = NULL;
    size_t len;
    mt_status st = mt_file_read_all(l->csv_path, &text, &len, 0);
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    if (st == MT_OK) {
        csv_header(l, &sb);
        const char *p = strchr(text, '\n');
        p = p ? p + 1 : text + len;
        while (*p) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            mt_strbuf_appendn(&sb, p, n);
            for (int32_t k = 0; k < n_new; k++)
                mt_strbuf_append(&sb, ",");
            mt_strbuf_append(&sb, "\n");
            p += n + (e ? 1 : 0);
        }
        st = mt_strbuf_status(&sb);
    }
    if (st == MT_OK) st = mt_file_write_atomic(l->csv_path, sb.data, sb.len, 0644);
    mt_strbuf_deinit(&sb);
    mt_free(text);
    if (!(l->csv = fopen(l->csv_path, "a")) && st == MT_OK)
        st = mt_err_errno(errno, "monitor log: cannot reopen '%s'", l->csv_path);
    return st;
}

static mt_status csv_write(mt_monitor_log *l, int64_t epoch, int64_t batches, int64_t examples,
                           double seconds, int32_t n, const char *const *names,
                           const double *values)
{
    int32_t n_new = 0;
    for (int32_t i = 0; i < n; i++) {
        bool known = false;
        for (int32_t k = 0; k < l->n_cols && !known; k++)
            known = !strcmp(l->cols[k], names[i]);
        if (known) continue;
        mt_status st = add_col(l, names[i]);
        if (st != MT_OK) return st;
        n_new++;
    }
    if (n_new > 0 && l->csv_header) {
        mt_status st = csv_widen(l, n_new);
        if (st != MT_OK) return st;
    }
    char num[40];
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    if (!l->csv_header) csv_header(l, &sb);
    mt_strbuf_appendf(&sb, "%lld,%lld,%lld,%s", (long long)epoch, (long long)batches,
                      (long long)examples, mt__fmt_double(seconds, num, sizeof num));
    for (int32_t k = 0; k < l->n_cols; k++) {
        mt_strbuf_append(&sb, ",");
        for (int32_t i = 0; i < n; i++)
            if (!strcmp(l->cols[k], names[i])) {
                mt_strbuf_append(&sb, mt__fmt_double(values[i], num, sizeof num));
                break;
            }
    }
    mt_strbuf_append(&sb, "\n");
    mt_status st = mt_strbuf_status(&sb);
    if (st == MT_OK) st = write_out(l->csv, l->csv_path, &sb);
    if (st == MT_OK) l->csv_header = true;
    mt_strbuf_deinit(&sb);
    return st;
}

/* ---------------------------------------------------------------- TensorBoard */

void mt__pb_varint(mt_strbuf *sb, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    mt_strbuf_appendn(sb, (const char *)b, n);
}

void mt__pb_tag(mt_strbuf *sb, uint32_t field, uint32_t wire)
{
    mt__pb_varint(sb, ((uint64_t)field << 3) | wire);
}

void mt__pb_bytes(mt_strbuf *sb, uint32_t field, const void *data, size_t n)
{
    mt__pb_tag(sb, field, 2);
    mt__pb_varint(sb, n);
    mt_strbuf_appendn(sb, data, n);
}

void mt__put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

double mt__wall_time(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* Event header: wall_time (field 1, fixed64 double) and step (field 2, varint). */
void mt__pb_event_head(mt_strbuf *ev, int64_t step)
{
    double wt = mt__wall_time();
    uint64_t bits;
    memcpy(&bits, &wt, 8);
    uint8_t b[8];
    mt__put_le(b, bits, 8);
    mt__pb_tag(ev, 1, 1);
    mt_strbuf_appendn(ev, (const char *)b, 8);
    mt__pb_tag(ev, 2, 0);
    mt__pb_varint(ev, (uint64_t)step);
}

void mt__tb_frame(mt_strbuf *out, const mt_strbuf *ev)
{
    uint8_t head[12], tail[4];
    mt__put_le(head, ev->len, 8);
    mt__put_le(head + 8, mt_crc32c_masked(head, 8), 4);
    mt__put_le(tail, mt_crc32c_masked(ev->data, ev->len), 4);
    mt_strbuf_appendn(out, (const char *)head, 12);
    mt_strbuf_appendn(out, ev->data ? ev->data : "", ev->len);
    mt_strbuf_appendn(out, (const char *)tail, 4);
}

/* Frames one serialized Event as a TFRecord and writes it. */
static mt_status tb_write_record(mt_monitor_log *l, const mt_strbuf *ev)
{
    mt_status st = mt_strbuf_status(ev);
    if (st != MT_OK) return st;
    mt_strbuf rec;
    mt_strbuf_init(&rec);
    mt__tb_frame(&rec, ev);
    st = mt_strbuf_status(&rec);
    if (st == MT_OK && (fwrite(rec.data, 1, rec.len, l->tb) != rec.len || fflush(l->tb) != 0))
        st = mt_err_errno(errno, "monitor log: cannot write '%s'", l->tb_path);
    mt_strbuf_deinit(&rec);
    return st;
}

static mt_status tb_write(mt_monitor_log *l, int64_t step, int32_t n, const char *const *names,
                          const double *values)
{
    mt_strbuf ev, summary, value;
    mt_strbuf_init(&ev);
    mt_strbuf_init(&summary);
    mt_strbuf_init(&value);
    for (int32_t i = 0; i < n; i++) {
        mt_strbuf_clear(&value);
        mt__pb_bytes(&value, 1, names[i], strlen(names[i]));
        float f = (float)values[i];
        uint32_t bits;
        memcpy(&bits, &f, 4);
        uint8_t b[4];
        mt__put_le(b, bits, 4);
        mt__pb_tag(&value, 2, 5);
        mt_strbuf_appendn(&value, (const char *)b, 4);
        mt__pb_bytes(&summary, 1, value.data, value.len);
    }
    mt__pb_event_head(&ev, step);
    mt__pb_bytes(&ev, 5, summary.len ? summary.data : "", summary.len);
    mt_status st = mt_strbuf_status(&summary);
    if (st == MT_OK) st = mt_strbuf_status(&value);
    if (st == MT_OK) st = tb_write_record(l, &ev);
    mt_strbuf_deinit(&ev);
    mt_strbuf_deinit(&summary);
    mt_strbuf_deinit(&value);
    return st;
}

/* Creates RUN_DIR/events.out.tfevents.<time>.<host>[.k] (never overwriting one) and writes the
 * file_version event. */
static mt_status tb_open(mt_monitor_log *l, const char *dir)
{
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *h = host; *h; h++)
        if (*h == '/') *h = '_';
    long long now = (long long)time(NULL);
    int fd = -1;
    for (int k = 0; k < 1000 && fd < 0; k++) {
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        mt_strbuf_appendf(&sb, "%s/events.out.tfevents.%010lld.%s", dir, now, host);
        if (k > 0) mt_strbuf_appendf(&sb, ".%d", k);
        if (mt_strbuf_status(&sb) != MT_OK) {
            mt_strbuf_deinit(&sb);
            return mt_err_prefix(MT_ERR_NOMEM, "monitor log: ");
        }
        mt_free(l->tb_path);
        l->tb_path = mt_strbuf_take(&sb);
        fd = open(l->tb_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return mt_err_errno(errno, "monitor log: cannot create '%s'", l->tb_path);
    }
    if (fd < 0) return mt_err_set(MT_ERR_IO, "monitor log: too many event files in '%s'", dir);
    if (!(l->tb = fdopen(fd, "wb"))) {
        int e = errno;
        close(fd);
        return mt_err_errno(e, "monitor log: cannot open '%s'", l->tb_path);
    }
    mt_strbuf ev;
    mt_strbuf_init(&ev);
    mt__pb_event_head(&ev, 0);
    static const char version[] = "brain.Event:2";
    mt__pb_bytes(&ev, 3, version, sizeof version - 1);
    mt_status st = tb_write_record(l, &ev);
    mt_strbuf_deinit(&ev);
    return st;
}

/* ---------------------------------------------------------------- the log */

void mt_monitor_log_options_init(mt_monitor_log_options *o)
{
    memset(o, 0, sizeof *o);
    o->jsonl = o->csv = o->tensorboard = true;
    o->append = false;
    o->tb_step = MT_TB_STEP_EPOCH;
}

/* Resuming after a crash: cuts a partial last line (a record written halfway) so that the
 * next record starts on a line of its own. */
static mt_status drop_partial_line(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? MT_OK : mt_err_errno(errno, "cannot open '%s'", path);
    struct stat sb;
    mt_status st = MT_OK;
    if (fstat(fd, &sb) != 0) st = mt_err_errno(errno, "cannot stat '%s'", path);
    off_t end = st == MT_OK ? sb.st_size : 0;
    char ch = '\n';
    while (end > 0 && pread(fd, &ch, 1, end - 1) == 1 && ch != '\n')
        end--;
    if (st == MT_OK && end < sb.st_size) {
        mt_log(MT_LOG_WARN, "monitor log: dropping a partial last line of '%s' (%lld bytes)", path,
               (long long)(sb.st_size - end));
        if (ftruncate(fd, end) != 0) st = mt_err_errno(errno, "cannot truncate '%s'", path);
    }
    close(fd);
    return st;
}

static mt_status open_csv(mt_monitor_log *l, bool append)
{
    struct stat sb;
    if (append) {
        mt_status st = drop_partial_line(l->csv_path);
        if (st != MT_OK) return mt_err_prefix(st, "monitor log: ");
    }
    if (append && stat(l->csv_path, &sb) == 0 && sb.st_size > 0) {
        char *text;
        size_t len;
        mt_status st = mt_file_read_all(l->csv_path, &text, &len, 0);
        if (st != MT_OK) return st;
        st = csv_read_header(l, text);
        mt_free(text);
        if (st != MT_OK) return st;
        l->csv_header = true;
    }
    if (!(l->csv = fopen(l->csv_path, append ? "a" : "w")))
        return mt_err_errno(errno, "monitor log: cannot open '%s'", l->csv_path);
    return MT_OK;
}

mt_status mt_monitor_log_open(mt_monitor_log **out, const char *run_dir,
                              const mt_monitor_log_options *o)
{
    *out = NULL;
    mt_monitor_log_options def;
    if (!o) {
        mt_monitor_log_options_init(&def);
        o = &def;
    }
    if ((unsigned)o->tb_step >= MT_TB_STEP_COUNT)
        return mt_err_set(MT_ERR_INVALID, "monitor log: bad tb_step %d", (int)o->tb_step);
    mt_status st = mt_mkdirs(run_dir, 0755);
    if (st != MT_OK) return mt_err_prefix(st, "monitor log: ");
    mt_monitor_log *l = mt_calloc(1, sizeof *l);
    if (!l) return mt_err_prefix(MT_ERR_NOMEM, "monitor log: ");
    l->o = *o;
    l->jsonl_path = join_path(run_dir, "monitor.jsonl");
    l->csv_path = join_path(run_dir, "monitor.csv");
    if (!l->jsonl_path || !l->csv_path) st = mt_err_prefix(MT_ERR_NOMEM, "monitor log: ");
    if (st == MT_OK && o->jsonl && o->append) st = drop_partial_line(l->jsonl_path);
    if (st == MT_OK && o->jsonl && !(l->jsonl = fopen(l->jsonl_path, o->append ? "a" : "w")))
        st = mt_err_errno(errno, "monitor log: cannot open '%s'", l->jsonl_path);
    if (st == MT_OK && o->csv) st = open_csv(l, o->append);
    if (st == MT_OK && o->tensorboard) st = tb_open(l, run_dir);
    if (st != MT_OK) {
        mt_monitor_log_close(l);
        return st;
    }
    *out = l;
    return MT_OK;
}

static mt_status jsonl_write(mt_monitor_log *l, int64_t epoch, int64_t batches, int64_t examples,
                             double seconds, int32_t n, const char *const *names,
                             const double *values)
{
    char num[40];
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_strbuf_appendf(&sb,
                      "{\"epoch\":%lld,\"batches\":%lld,\"examples\":%lld,\"seconds\":%s,"
                      "\"channels\":{",
                      (long long)epoch, (long long)batches, (long long)examples,
                      isfinite(seconds) ? mt__fmt_double(seconds, num, sizeof num) : "null");
    for (int32_t i = 0; i < n; i++) {
        if (i) mt_strbuf_append(&sb, ",");
        mt__json_append_string(&sb, names[i]);
        mt_strbuf_append(&sb, ":");
        mt_strbuf_append(&sb,
                         isfinite(values[i]) ? mt__fmt_double(values[i], num, sizeof num) : "null");
    }
    mt_strbuf_append(&sb, "}}\n");
    mt_status st = mt_strbuf_status(&sb);
    if (st == MT_OK) st = write_out(l->jsonl, l->jsonl_path, &sb);
    mt_strbuf_deinit(&sb);
    return st;
}

mt_status mt_monitor_log_write(mt_monitor_log *l, int64_t epoch, int64_t batches, int64_t examples,
                               double seconds, int32_t n, const char *const *names,
                               const double *values)
{
    if (n < 0 || (n > 0 && (!names || !values)))
        return mt_err_set(MT_ERR_INVALID, "monitor log: bad record (%d channels)", (int)n);
    for (int32_t i = 0; i < n; i++) {
        if (!names[i] || !*names[i])
            return mt_err_set(MT_ERR_INVALID, "monitor log: channel %d has no name", (int)i);
        for (int32_t k = 0; k < i; k++)
            if (!strcmp(names[i], names[k]))
                return mt_err_set(MT_ERR_INVALID, "monitor log: channel '%s' given twice",
                                  names[i]);
    }
    mt_status st = MT_OK;
    if (l->jsonl) st = jsonl_write(l, epoch, batches, examples, seconds, n, names, values);
    if (st == MT_OK && l->csv)
        st = csv_write(l, epoch, batches, examples, seconds, n, names, values);
    int64_t step = l->o.tb_step == MT_TB_STEP_BATCHES    ? batches
                   : l->o.tb_step == MT_TB_STEP_EXAMPLES ? examples
                                                         : epoch;
    if (st == MT_OK && l->tb) st = tb_write(l, step, n, names, values);
    return st;
}

const char *mt_monitor_log_tb_path(const mt_monitor_log *l)
{
    return l && l->tb_path ? l->tb_path : "";
}

void mt_monitor_log_close(mt_monitor_log *l)
{
    if (!l) return;
    if (l->jsonl) fclose(l->jsonl);
    if (l->csv) fclose(l->csv);
    if (l->tb) fclose(l->tb);
    for (int32_t i = 0; i < l->n_cols; i++)
        mt_free(l->cols[i]);
    mt_free(l->cols);
    mt_free(l->jsonl_path);
    mt_free(l->csv_path);
    mt_free(l->tb_path);
    mt_free(l);
}
