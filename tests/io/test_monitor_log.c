/* Monitor logs: CRC32C against published vectors, the exact JSON lines and CSV text (new
 * channels widen the CSV, resuming appends and drops a partial last line), the JSON lines
 * reader, the TensorBoard event file decoded here by an independent TFRecord/protobuf reader,
 * and read by TensorBoard itself (EventAccumulator; SKIP when tensorboard is not installed). */
#include <stdint.h>

#include "io_test_util.h"

MT_TEST(crc32c_known_vectors)
{
    /* the check value of the CRC catalogue and the iSCSI vectors of RFC 3720 B.4 */
    MT_CHECK(mt_crc32c("123456789", 9) == 0xE3069283u);
    MT_CHECK(mt_crc32c("", 0) == 0);
    uint8_t buf[32];
    memset(buf, 0, 32);
    MT_CHECK(mt_crc32c(buf, 32) == 0x8A9136AAu);
    memset(buf, 0xFF, 32);
    MT_CHECK(mt_crc32c(buf, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    MT_CHECK(mt_crc32c(buf, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    MT_CHECK(mt_crc32c(buf, 32) == 0x113FDB5Cu);
    /* TensorFlow's mask: rotate right by 15, add 0xa282ead8 */
    uint32_t c = 0xE3069283u;
    MT_CHECK(mt_crc32c_masked("123456789", 9) == (uint32_t)(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

static void write_sample_log(const char *dir, const mt_monitor_log_options *o)
{
    mt_monitor_log *l;
    MT_CHECK_OK(mt_monitor_log_open(&l, dir, o));
    const char *n2[2] = {"train_objective", "valid_misclass"};
    double v0[2] = {2.5, 0.125}, v1[2] = {1.75, 0.0625};
    MT_CHECK_OK(mt_monitor_log_write(l, 0, 0, 0, 0.0, 2, n2, v0));
    MT_CHECK_OK(mt_monitor_log_write(l, 1, 100, 6000, 1.25, 2, n2, v1));
    /* a new channel (with a comma and a quote), another order, non-finite values */
    const char *n3[3] = {"lr, \"x\"", "valid_misclass", "train_objective"};
    double v2[3] = {0.01, INFINITY, NAN};
    MT_CHECK_OK(mt_monitor_log_write(l, 2, 200, 12000, 2.5, 3, n3, v2));
    /* a record without one channel */
    const char *n1[1] = {"train_objective"};
    double v3[1] = {-0.5};
    MT_CHECK_OK(mt_monitor_log_write(l, 3, 300, 18000, 3.75, 1, n1, v3));
    MT_CHECK_ERR(mt_monitor_log_write(l, 4, 0, 0, 0, 2, (const char *[]){"a", "a"}, v0),
                 MT_ERR_INVALID, "given twice");
    mt_monitor_log_close(l);
}

static const char want_jsonl[] =
    "{\"epoch\":0,\"batches\":0,\"examples\":0,\"seconds\":0,\"channels\":{\"train_objective\":"
    "2.5,\"valid_misclass\":0.125}}\n"
    "{\"epoch\":1,\"batches\":100,\"examples\":6000,\"seconds\":1.25,\"channels\":{"
    "\"train_objective\":1.75,\"valid_misclass\":0.0625}}\n"
    "{\"epoch\":2,\"batches\":200,\"examples\":12000,\"seconds\":2.5,\"channels\":{"
    "\"lr, \\\"x\\\"\":0.01,\"valid_misclass\":null,\"train_objective\":null}}\n"
    "{\"epoch\":3,\"batches\":300,\"examples\":18000,\"seconds\":3.75,\"channels\":{"
    "\"train_objective\":-0.5}}\n";

static const char want_csv[] =
    "epoch,batches,examples,seconds,train_objective,valid_misclass,\"lr, \"\"x\"\"\"\n"
    "0,0,0,0,2.5,0.125,\n"
    "1,100,6000,1.25,1.75,0.0625,\n"
    "2,200,12000,2.5,nan,inf,0.01\n"
    "3,300,18000,3.75,-0.5,,\n";

MT_TEST(monitor_log_jsonl_and_csv_text)
{
    char *dir = tpath("run/sub"); /* created */
    write_sample_log(dir, NULL);
    char p[1100];
    snprintf(p, sizeof p, "%s/monitor.jsonl", dir);
    char *text = slurp(p, NULL);
    MT_CHECK_STR_EQ(text, want_jsonl);
    mt_free(text);
    snprintf(p, sizeof p, "%s/monitor.csv", dir);
    text = slurp(p, NULL);
    MT_CHECK_STR_EQ(text, want_csv);
    mt_free(text);
    MT_CHECK(!has_temp_files(dir));
    /* the JSON lines read back into a history */
    snprintf(p, sizeof p, "%s/monitor.jsonl", dir);
    mt_monitor_history h;
    MT_CHECK_OK(mt_monitor_history_read_jsonl(&h, p));
    MT_CHECK_STR_EQ(h.name, "monitor");
    MT_CHECK_EQ_INT(h.n, 3);
    MT_CHECK_STR_EQ(h.channels[0].name, "train_objective");
    MT_CHECK_STR_EQ(h.channels[2].name, "lr, \"x\"");
    const mt_chan_history *t = &h.channels[0];
    MT_CHECK_EQ_INT(t->n, 4);
    MT_CHECK(t->records[0].value == 2.5 && t->records[1].value == 1.75);
    MT_CHECK(isnan(t->records[2].value) && t->records[3].value == -0.5);
    MT_CHECK(t->records[3].epoch == 3 && t->records[3].batches == 300);
    MT_CHECK(t->records[3].examples == 18000 && t->records[3].seconds == 3.75);
    MT_CHECK_EQ_INT(h.channels[1].n, 3);
    MT_CHECK(isnan(h.channels[1].records[2].value)); /* inf was written as null */
    MT_CHECK_EQ_INT(h.channels[2].n, 1);
    MT_CHECK(h.channels[2].records[0].value == 0.01 && h.channels[2].records[0].epoch == 2);
    mt_monitor_history_clear(&h);
}

MT_TEST(monitor_log_resume_appends)
{
    char *dir = tpath("run");
    mt_monitor_log_options o;
    mt_monitor_log_options_init(&o);
    MT_CHECK(o.jsonl && o.csv && o.tensorboard && !o.append && o.tb_step == MT_TB_STEP_EPOCH);
    write_sample_log(dir, &o);
    /* a crash mid-record leaves a partial line in both files */
    char pj[1100], pc[1100];
    snprintf(pj, sizeof pj, "%s/monitor.jsonl", dir);
    snprintf(pc, sizeof pc, "%s/monitor.csv", dir);
    FILE *f = fopen(pj, "a");
    fputs("{\"epoch\":4,\"batc", f);
    fclose(f);
    f = fopen(pc, "a");
    fputs("4,40", f);
    fclose(f);
    o.append = true;
    o.tensorboard = false;
    mt_monitor_log *l;
    MT_CHECK_OK(mt_monitor_log_open(&l, dir, &o));
    MT_CHECK_STR_EQ(mt_monitor_log_tb_path(l), "");
    const char *n[2] = {"valid_misclass", "new_chan"};
    double v[2] = {0.5, 7};
    MT_CHECK_OK(mt_monitor_log_write(l, 4, 400, 24000, 5, 2, n, v));
    mt_monitor_log_close(l);
    char *text = slurp(pj, NULL);
    char want[2048];
    snprintf(want, sizeof want,
             "%s{\"epoch\":4,\"batches\":400,\"examples\":24000,\"seconds\":5,"
             "\"channels\":{\"valid_misclass\":0.5,\"new_chan\":7}}\n",
             want_jsonl);
    MT_CHECK_STR_EQ(text, want);
    mt_free(text);
    text = slurp(pc, NULL);
    MT_CHECK_STR_EQ(
        text, "epoch,batches,examples,seconds,train_objective,valid_misclass,\"lr, \"\"x\"\"\","
              "new_chan\n"
              "0,0,0,0,2.5,0.125,,\n"
              "1,100,6000,1.25,1.75,0.0625,,\n"
              "2,200,12000,2.5,nan,inf,0.01,\n"
              "3,300,18000,3.75,-0.5,,,\n"
              "4,400,24000,5,,0.5,,7\n");
    mt_free(text);
    /* a CSV that is not ours is not appended to */
    write_bytes(pc, "a,b\n1,2\n", 8);
    MT_CHECK_ERR(mt_monitor_log_open(&l, dir, &o), MT_ERR_FORMAT, "does not start with the header");
    /* not appending starts afresh */
    o.append = false;
    MT_CHECK_OK(mt_monitor_log_open(&l, dir, &o));
    mt_monitor_log_close(l);
    text = slurp(pc, NULL);
    MT_CHECK_STR_EQ(text, "");
    mt_free(text);
    mt_monitor_log_close(NULL);
}

MT_TEST(jsonl_reader_errors)
{
    char *p = tpath("m.jsonl");
    mt_monitor_history h;
    const char *good =
        "{\"epoch\":0,\"batches\":0,\"examples\":0,\"seconds\":0,\"channels\":{\"a\":1}}\n";
    char buf[512];
    snprintf(buf, sizeof buf,
             "%s{\"epoch\":1,\"batches\":0,\"examples\":0,\"channels\":{\"a\":oops}}\n", good);
    write_bytes(p, buf, strlen(buf));
    MT_CHECK_ERR(mt_monitor_history_read_jsonl(&h, p), MT_ERR_FORMAT, ":2:");
    MT_CHECK(strstr(mt_last_error(), "expected a number or null") != NULL);
    MT_CHECK(h.name == NULL && h.n == 0);
    snprintf(buf, sizeof buf, "%s{\"epoch\":1,\"channels\":{}}\n", good);
    write_bytes(p, buf, strlen(buf));
    MT_CHECK_ERR(mt_monitor_history_read_jsonl(&h, p), MT_ERR_FORMAT, "lacks \"batches\"");
    /* unknown keys are skipped; an incomplete last line is ignored */
    snprintf(buf, sizeof buf,
             "%s\n{\"x\":[1,{\"y\":null}],\"epoch\":1,\"batches\":2,\"examples\":3,"
             "\"channels\":{\"a\":2,\"b\":-1e-3}}\n{\"epoch\":2,\"batches\":4,\"exa",
             good);
    write_bytes(p, buf, strlen(buf));
    MT_CHECK_OK(mt_monitor_history_read_jsonl(&h, p));
    MT_CHECK_EQ_INT(h.n, 2);
    MT_CHECK_EQ_INT(h.channels[0].n, 2);
    MT_CHECK(h.channels[0].records[1].value == 2 && h.channels[0].records[1].examples == 3);
    MT_CHECK(h.channels[1].records[0].value == -1e-3);
    mt_monitor_history_clear(&h);
    MT_CHECK_ERR(mt_monitor_history_read_jsonl(&h, tpath("none.jsonl")), MT_ERR_NOT_FOUND,
                 "none.jsonl");
}

/* ---------------------------------------------------------------- TensorBoard */

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return v;
    }
    mt_test_fail(__FILE__, __LINE__, "bad varint");
}

typedef struct tb_event {
    double wall_time;
    int64_t step;
    char file_version[32];
    int n;
    char tags[8][64];
    float values[8];
} tb_event;

/* Decodes Summary.Value {tag = 1, simple_value = 2}. */
static void decode_value(const uint8_t *p, const uint8_t *end, tb_event *e)
{
    MT_CHECK(e->n < 8);
    while (p < end) {
        uint64_t key = varint(&p, end);
        if (key == ((1 << 3) | 2)) {
            uint64_t n = varint(&p, end);
            MT_CHECK(n < 64 && p + n <= end);
            memcpy(e->tags[e->n], p, n);
            e->tags[e->n][n] = 0;
            p += n;
        } else if (key == ((2 << 3) | 5)) {
            uint32_t bits = (uint32_t)get_le(p, 4);
            memcpy(&e->values[e->n], &bits, 4);
            p += 4;
        } else {
            mt_test_fail(__FILE__, __LINE__, "unexpected Value field key %llu",
                         (unsigned long long)key);
        }
    }
    e->n++;
}

static void decode_event(const uint8_t *p, const uint8_t *end, tb_event *e)
{
    memset(e, 0, sizeof *e);
    while (p < end) {
        uint64_t key = varint(&p, end);
        if (key == ((1 << 3) | 1)) {
            uint64_t bits = get_le(p, 8);
            memcpy(&e->wall_time, &bits, 8);
            p += 8;
        } else if (key == ((2 << 3) | 0)) {
            e->step = (int64_t)varint(&p, end);
        } else if (key == ((3 << 3) | 2)) {
            uint64_t n = varint(&p, end);
            MT_CHECK(n < 32);
            memcpy(e->file_version, p, n);
            p += n;
        } else if (key == ((5 << 3) | 2)) {
            uint64_t n = varint(&p, end);
            const uint8_t *se = p + n;
            MT_CHECK(se <= end);
            while (p < se) {
                uint64_t k = varint(&p, se);
                MT_CHECK(k == ((1 << 3) | 2));
                uint64_t vn = varint(&p, se);
                decode_value(p, p + vn, e);
                p += vn;
            }
        } else {
            mt_test_fail(__FILE__, __LINE__, "unexpected Event field key %llu",
                         (unsigned long long)key);
        }
    }
}

/* Reads every TFRecord of the file, checking lengths and both masked CRCs. */
static int read_events(const char *path, tb_event *ev, int max)
{
    size_t len;
    uint8_t *d = (uint8_t *)slurp(path, &len);
    size_t off = 0;
    int n = 0;
    while (off < len) {
        MT_CHECK(off + 12 <= len && n < max);
        uint64_t rl = get_le(d + off, 8);
        MT_CHECK((uint32_t)get_le(d + off + 8, 4) == mt_crc32c_masked(d + off, 8));
        MT_CHECK(off + 12 + rl + 4 <= len);
        MT_CHECK((uint32_t)get_le(d + off + 12 + rl, 4) == mt_crc32c_masked(d + off + 12, rl));
        decode_event(d + off + 12, d + off + 12 + rl, &ev[n++]);
        off += 12 + rl + 4;
    }
    mt_free(d);
    return n;
}

MT_TEST(tensorboard_event_file_framing)
{
    char *dir = tpath("tb");
    mt_monitor_log_options o;
    mt_monitor_log_options_init(&o);
    o.tb_step = MT_TB_STEP_EXAMPLES;
    write_sample_log(dir, &o);
    /* the name; a second log in the same second gets another file, never the same one */
    mt_monitor_log *l;
    MT_CHECK_OK(mt_monitor_log_open(&l, dir, &o));
    char path[1100];
    snprintf(path, sizeof path, "%s", mt_monitor_log_tb_path(l));
    mt_monitor_log_close(l);
    MT_CHECK(strstr(path, "/events.out.tfevents.") != NULL);
    char host[256];
    gethostname(host, sizeof host);
    MT_CHECK(strstr(path, host) != NULL);
    DIR *dd = opendir(dir);
    int n_files = 0;
    struct dirent *de;
    char first[1100] = "";
    while ((de = readdir(dd)) != NULL)
        if (!strncmp(de->d_name, "events.out.tfevents.", 20)) {
            n_files++;
            if (strcmp(de->d_name, strrchr(path, '/') + 1) != 0)
                snprintf(first, sizeof first, "%s/%s", dir, de->d_name);
        }
    closedir(dd);
    MT_CHECK_EQ_INT(n_files, 2);
    tb_event ev[8];
    int n = read_events(first, ev, 8);
    MT_CHECK_EQ_INT(n, 5);
    MT_CHECK_STR_EQ(ev[0].file_version, "brain.Event:2");
    MT_CHECK(ev[0].wall_time > 1.6e9 && ev[0].n == 0);
    static const int64_t steps[4] = {0, 6000, 12000, 18000};
    for (int i = 1; i < 5; i++) {
        MT_CHECK_EQ_INT(ev[i].step, steps[i - 1]);
        MT_CHECK(ev[i].wall_time >= ev[0].wall_time);
    }
    MT_CHECK_EQ_INT(ev[1].n, 2);
    MT_CHECK_STR_EQ(ev[1].tags[0], "train_objective");
    MT_CHECK(ev[1].values[0] == 2.5f && ev[1].values[1] == 0.125f);
    MT_CHECK_EQ_INT(ev[3].n, 3);
    MT_CHECK_STR_EQ(ev[3].tags[0], "lr, \"x\"");
    MT_CHECK(ev[3].values[0] == 0.01f && isinf(ev[3].values[1]) && isnan(ev[3].values[2]));
    MT_CHECK(ev[4].n == 1 && ev[4].values[0] == -0.5f);
    n = read_events(path, ev, 8); /* the empty second log: just the version event */
    MT_CHECK(n == 1 && !strcmp(ev[0].file_version, "brain.Event:2"));
}

static const char *const tb_script =
    "import sys\n"
    "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n"
    "ea = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0})\n"
    "ea.Reload()\n"
    "for t in sorted(ea.Tags()['scalars']):\n"
    "    for e in ea.Scalars(t):\n"
    "        print('%s|%d|%.6g' % (t, e.step, e.value))\n"
    "print('file_version', ea.file_version)\n";

MT_TEST(tensorboard_reads_event_file)
{
    char *dir = tpath("tbread");
    write_sample_log(dir, NULL); /* steps are epochs */
    char args[1100], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    int rc = run_python(tb_script, args, "tensorboard", &out);
    MT_CHECK_EQ_INT(rc, 0);
    const char *want = "lr, \"x\"|2|0.01\n"
                       "train_objective|0|2.5\n"
                       "train_objective|1|1.75\n"
                       "train_objective|2|nan\n"
                       "train_objective|3|-0.5\n"
                       "valid_misclass|0|0.125\n"
                       "valid_misclass|1|0.0625\n"
                       "valid_misclass|2|inf\n"
                       "file_version 2.0\n";
    if (!strstr(out, want))
        mt_test_fail(__FILE__, __LINE__, "TensorBoard read:\n%s\nwanted:\n%s", out, want);
    mt_free(out);
}
