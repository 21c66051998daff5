/* TensorBoard records built in memory (io.h, mt_tb_record_*): scalars and the summaries of the
 * HParams dashboard, hand-encoded like the monitor log's events (monitor_log.c's protobuf and
 * TFRecord helpers). The field numbers are those of TensorBoard's protos:
 *   Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5 }
 *   Summary { repeated Value value = 1 }
 *   Summary.Value { string tag = 1; float simple_value = 2; TensorProto tensor = 8;
 *                   SummaryMetadata metadata = 9 }
 *   SummaryMetadata { PluginData plugin_data = 1; DataClass data_class = 4 (TENSOR = 2) }
 *   PluginData { string plugin_name = 1; bytes content = 2 }
 *   HParamsPluginData { int32 version = 1 (0); oneof { Experiment experiment = 2;
 *                       SessionStartInfo session_start_info = 3; SessionEndInfo
 *                       session_end_info = 4 } }
 *   Experiment { string description = 1; double time_created_secs = 3;
 *                repeated HParamInfo hparam_infos = 4; repeated MetricInfo metric_infos = 5;
 *                string name = 6 }
 *   HParamInfo { string name = 1; string display_name = 2; string description = 3;
 *                DataType type = 4 (STRING 1, BOOL 2, FLOAT64 3);
 *                oneof { ListValue domain_discrete = 5; Interval domain_interval = 6 } }
 *   Interval { double min_value = 1; double max_value = 2 }
 *   MetricInfo { MetricName name = 1; string display_name = 3; string description = 4 }
 *   MetricName { string group = 1; string tag = 2 }
 *   SessionStartInfo { map<string, google.protobuf.Value> hparams = 1 (entries: key = 1,
 *                      value = 2); string group_name = 4; double start_time_secs = 5 }
 *   SessionEndInfo { Status status = 1; double end_time_secs = 2 }
 *   google.protobuf.Value { double number_value = 2; string string_value = 3;
 *                           bool bool_value = 4 }, ListValue { repeated Value values = 1 }
 * The hparams summaries carry the plugin's null tensor (DT_FLOAT of shape [0]) as TensorBoard's
 * own writer does. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io_impl.h"

#define TAG_EXPERIMENT "_hparams_/experiment"
#define TAG_SESSION_START "_hparams_/session_start_info"
#define TAG_SESSION_END "_hparams_/session_end_info"

static void pb_string(mt_strbuf *sb, uint32_t field, const char *s)
{
    if (s && *s) mt__pb_bytes(sb, field, s, strlen(s));
}

static void pb_double(mt_strbuf *sb, uint32_t field, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    uint8_t b[8];
    mt__put_le(b, bits, 8);
    mt__pb_tag(sb, field, 1);
    mt_strbuf_appendn(sb, (const char *)b, 8);
}

static void pb_message(mt_strbuf *sb, uint32_t field, const mt_strbuf *m)
{
    mt__pb_bytes(sb, field, m->data ? m->data : "", m->len);
}

/* Frames Event{head, summary{value}} into sb. */
static mt_status append_event(mt_strbuf *sb, int64_t step, const mt_strbuf *value)
{
    mt_strbuf summary, ev;
    mt_strbuf_init(&summary);
    mt_strbuf_init(&ev);
    pb_message(&summary, 1, value);
    mt__pb_event_head(&ev, step);
    pb_message(&ev, 5, &summary);
    mt_status st = mt_strbuf_status(value);
    if (st == MT_OK) st = mt_strbuf_status(&summary);
    if (st == MT_OK) st = mt_strbuf_status(&ev);
    if (st == MT_OK) mt__tb_frame(sb, &ev);
    if (st == MT_OK) st = mt_strbuf_status(sb);
    mt_strbuf_deinit(&summary);
    mt_strbuf_deinit(&ev);
    return st == MT_OK ? MT_OK : mt_err_prefix(st, "tensorboard record: ");
}

/* A Summary.Value of the hparams plugin whose content is HParamsPluginData{version 0, data}. */
static mt_status append_hparams(mt_strbuf *sb, const char *tag, uint32_t data_field,
                                const mt_strbuf *data)
{
    mt_strbuf content, plugin, meta, value;
    mt_strbuf_init(&content);
    mt_strbuf_init(&plugin);
    mt_strbuf_init(&meta);
    mt_strbuf_init(&value);
    pb_message(&content, data_field, data); /* version 0 is the default: not written */
    pb_string(&plugin, 1, "hparams");
    pb_message(&plugin, 2, &content);
    pb_message(&meta, 1, &plugin);
    mt__pb_tag(&meta, 4, 0);
    mt__pb_varint(&meta, 2); /* DATA_CLASS_TENSOR */
    static const char null_tensor[] = {0x08, 0x01, 0x12, 0x02, 0x12, 0x00};
    pb_string(&value, 1, tag);
    mt__pb_bytes(&value, 8, null_tensor, sizeof null_tensor);
    pb_message(&value, 9, &meta);
    mt_status st = mt_strbuf_status(data);
    if (st == MT_OK) st = mt_strbuf_status(&content);
    if (st == MT_OK) st = mt_strbuf_status(&plugin);
    if (st == MT_OK) st = mt_strbuf_status(&meta);
    if (st == MT_OK)
        st = append_event(sb, 0, &value);
    else
        st = mt_err_prefix(st, "tensorboard record: ");
    mt_strbuf_deinit(&content);
    mt_strbuf_deinit(&plugin);
    mt_strbuf_deinit(&meta);
    mt_strbuf_deinit(&value);
    return st;
}

/* The end of every hparams record: appends the summary of `data` (HParamsPluginData field
 * data_field) when the scratch buffers a and b it was built with (either may be NULL) hold no
 * failure, else fails with the prefix `what`; frees data, a and b. */
static mt_status finish_hparams(mt_strbuf *sb, const char *tag, uint32_t data_field,
                                mt_strbuf *data, mt_strbuf *a, mt_strbuf *b, const char *what)
{
    mt_status st = a ? mt_strbuf_status(a) : MT_OK;
    if (st == MT_OK && b) st = mt_strbuf_status(b);
    if (st == MT_OK)
        st = append_hparams(sb, tag, data_field, data);
    else
        st = mt_err_prefix(st, "%s", what);
    mt_strbuf_deinit(data);
    if (a) mt_strbuf_deinit(a);
    if (b) mt_strbuf_deinit(b);
    return st;
}

mt_status mt_tb_record_file_version(mt_strbuf *sb)
{
    mt_strbuf ev;
    mt_strbuf_init(&ev);
    mt__pb_event_head(&ev, 0);
    pb_string(&ev, 3, "brain.Event:2");
    mt_status st = mt_strbuf_status(&ev);
    if (st == MT_OK) mt__tb_frame(sb, &ev);
    if (st == MT_OK) st = mt_strbuf_status(sb);
    mt_strbuf_deinit(&ev);
    return st == MT_OK ? MT_OK : mt_err_prefix(st, "tensorboard record: ");
}

mt_status mt_tb_record_scalar(mt_strbuf *sb, int64_t step, const char *tag, double value)
{
    if (!tag || !*tag) return mt_err_set(MT_ERR_INVALID, "tensorboard scalar: no tag");
    mt_strbuf v;
    mt_strbuf_init(&v);
    pb_string(&v, 1, tag);
    float f = (float)value;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint8_t b[4];
    mt__put_le(b, bits, 4);
    mt__pb_tag(&v, 2, 5);
    mt_strbuf_appendn(&v, (const char *)b, 4);
    mt_status st = append_event(sb, step, &v);
    mt_strbuf_deinit(&v);
    return st;
}

/* google.protobuf.Value of a number, string or bool. */
static void pb_value(mt_strbuf *sb, mt_tb_hparam_type type, double number, const char *string,
                     bool boolean)
{
    if (type == MT_TB_HPARAM_STRING) {
        const char *s = string ? string : "";
        mt__pb_bytes(sb, 3, s, strlen(s)); /* an empty string is still the string kind */
    } else if (type == MT_TB_HPARAM_BOOL) {
        mt__pb_tag(sb, 4, 0);
        mt__pb_varint(sb, boolean ? 1 : 0);
    } else {
        pb_double(sb, 2, number);
    }
}

static void hparam_info(mt_strbuf *sb, const mt_tb_hparam_info *h)
{
    pb_string(sb, 1, h->name);
    pb_string(sb, 2, h->display_name);
    pb_string(sb, 3, h->description);
    mt__pb_tag(sb, 4, 0);
    mt__pb_varint(sb, h->type == MT_TB_HPARAM_STRING ? 1 : h->type == MT_TB_HPARAM_BOOL ? 2 : 3);
    mt_strbuf dom, v;
    mt_strbuf_init(&dom);
    mt_strbuf_init(&v);
    if (h->type == MT_TB_HPARAM_BOOL) {
        for (int b = 0; b < 2; b++) {
            mt_strbuf_clear(&v);
            pb_value(&v, MT_TB_HPARAM_BOOL, 0, NULL, b == 1);
            pb_message(&dom, 1, &v);
        }
        pb_message(sb, 5, &dom);
    } else if (h->n_values > 0) {
        for (int32_t i = 0; i < h->n_values; i++) {
            mt_strbuf_clear(&v);
            pb_value(&v, h->type, h->numbers ? h->numbers[i] : NAN, h->strings ? h->strings[i] : "",
                     false);
            pb_message(&dom, 1, &v);
        }
        pb_message(sb, 5, &dom);
    } else if (h->type == MT_TB_HPARAM_FLOAT && h->interval) {
        pb_double(&dom, 1, h->min);
        pb_double(&dom, 2, h->max);
        pb_message(sb, 6, &dom);
    }
    if (mt_strbuf_status(&dom) != MT_OK || mt_strbuf_status(&v) != MT_OK) sb->failed = true;
    mt_strbuf_deinit(&dom);
    mt_strbuf_deinit(&v);
}

mt_status mt_tb_record_hparams_experiment(mt_strbuf *sb, const char *name, const char *description,
                                          double time_created, int32_t n_hparams,
                                          const mt_tb_hparam_info *hparams, int32_t n_metrics,
                                          const mt_tb_metric_info *metrics)
{
    for (int32_t i = 0; i < n_hparams; i++)
        if (!hparams[i].name || !*hparams[i].name)
            return mt_err_set(MT_ERR_INVALID, "hparams experiment: hyperparameter %d has no name",
                              (int)i);
    for (int32_t i = 0; i < n_metrics; i++)
        if (!metrics[i].tag || !*metrics[i].tag)
            return mt_err_set(MT_ERR_INVALID, "hparams experiment: metric %d has no tag", (int)i);
    mt_strbuf ex, item, mn;
    mt_strbuf_init(&ex);
    mt_strbuf_init(&item);
    mt_strbuf_init(&mn);
    pb_string(&ex, 1, description);
    pb_double(&ex, 3, time_created);
    for (int32_t i = 0; i < n_hparams; i++) {
        mt_strbuf_clear(&item);
        hparam_info(&item, &hparams[i]);
        pb_message(&ex, 4, &item);
    }
    for (int32_t i = 0; i < n_metrics; i++) {
        mt_strbuf_clear(&item);
        mt_strbuf_clear(&mn);
        pb_string(&mn, 1, metrics[i].group);
        pb_string(&mn, 2, metrics[i].tag);
        pb_message(&item, 1, &mn);
        pb_string(&item, 3, metrics[i].display_name);
        pb_string(&item, 4, metrics[i].description);
        pb_message(&ex, 5, &item);
    }
    pb_string(&ex, 6, name);
    return finish_hparams(sb, TAG_EXPERIMENT, 2, &ex, &item, &mn, "hparams experiment: ");
}

mt_status mt_tb_record_hparams_session_start(mt_strbuf *sb, const char *group_name,
                                             double start_time, int32_t n,
                                             const mt_tb_hparam_value *values)
{
    for (int32_t i = 0; i < n; i++)
        if (!values[i].name || !*values[i].name)
            return mt_err_set(MT_ERR_INVALID, "hparams session: value %d has no name", (int)i);
    mt_strbuf info, entry, v;
    mt_strbuf_init(&info);
    mt_strbuf_init(&entry);
    mt_strbuf_init(&v);
    for (int32_t i = 0; i < n; i++) {
        const mt_tb_hparam_value *x = &values[i];
        mt_strbuf_clear(&entry);
        mt_strbuf_clear(&v);
        pb_string(&entry, 1, x->name);
        pb_value(&v, x->type, x->number, x->string, x->boolean);
        pb_message(&entry, 2, &v);
        pb_message(&info, 1, &entry);
    }
    pb_string(&info, 4, group_name);
    pb_double(&info, 5, start_time);
    return finish_hparams(sb, TAG_SESSION_START, 3, &info, &entry, &v, "hparams session: ");
}

mt_status mt_tb_record_hparams_session_end(mt_strbuf *sb, mt_tb_session_status status,
                                           double end_time)
{
    if ((unsigned)status > MT_TB_STATUS_RUNNING)
        return mt_err_set(MT_ERR_INVALID, "hparams session: bad status %d", (int)status);
    mt_strbuf info;
    mt_strbuf_init(&info);
    mt__pb_tag(&info, 1, 0);
    mt__pb_varint(&info, (uint64_t)status);
    pb_double(&info, 2, end_time);
    return finish_hparams(sb, TAG_SESSION_END, 4, &info, NULL, NULL, "hparams session: ");
}

mt_status mt_tb_append_records(const char *path, const mt_strbuf *records)
{
    mt_status st = mt_strbuf_status(records);
    if (st != MT_OK) return mt_err_prefix(st, "event file '%s': ", path);
    struct stat sb;
    bool fresh = stat(path, &sb) != 0 || sb.st_size == 0;
    mt_strbuf all;
    mt_strbuf_init(&all);
    if (fresh) st = mt_tb_record_file_version(&all);
    if (st == MT_OK) mt_strbuf_appendn(&all, records->data ? records->data : "", records->len);
    if (st == MT_OK) st = mt_strbuf_status(&all);
    FILE *f = st == MT_OK ? fopen(path, "ab") : NULL;
    if (st == MT_OK && !f) st = mt_err_errno(errno, "cannot open event file '%s'", path);
    if (f) {
        if (fwrite(all.data, 1, all.len, f) != all.len || fflush(f) != 0)
            st = mt_err_errno(errno, "cannot write event file '%s'", path);
        if (fclose(f) != 0 && st == MT_OK)
            st = mt_err_errno(errno, "cannot write event file '%s'", path);
    }
    mt_strbuf_deinit(&all);
    return st;
}
