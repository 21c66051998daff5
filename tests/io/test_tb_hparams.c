/* TensorBoard HParams records (mt_tb_record_*): an experiment in a log directory's top run and
 * two sessions in sub-runs, read back by TensorBoard itself (EventAccumulator, the hparams
 * plugin's own HParamsPluginData proto and metadata parsers; SKIP when tensorboard is not
 * installed): names, types, domains, values, the metric tags, the status, the scalars. Also
 * the argument checks and that appending to an existing file adds no second file_version. */
#include <stdint.h>

#include "io_test_util.h"

static void write_log(const char *dir)
{
    static const char *const acts[3] = {"relu", "tanh", "Maxout"};
    static const double layers[3] = {1, 2, 4};
    mt_tb_hparam_info hp[4] = {
        {.name = "lr",
         .display_name = "params.lr",
         .description = "loguniform [0.001, 0.3]",
         .type = MT_TB_HPARAM_FLOAT,
         .interval = true,
         .min = 0.001,
         .max = 0.3},
        {.name = "act", .type = MT_TB_HPARAM_STRING, .n_values = 3, .strings = acts},
        {.name = "layers", .type = MT_TB_HPARAM_FLOAT, .n_values = 3, .numbers = layers},
        {.name = "bn", .type = MT_TB_HPARAM_BOOL},
    };
    mt_tb_metric_info m[2] = {{"sweep/objective", NULL, "objective", "best valid error"},
                              {"valid_err", "", NULL, NULL}};
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    MT_CHECK_OK(mt_tb_record_file_version(&sb));
    MT_CHECK_OK(mt_tb_record_hparams_experiment(&sb, "demo sweep", "a test", 1.7e9, 4, hp, 2, m));
    char path[1200];
    snprintf(path, sizeof path, "%s/events.out.tfevents.0000000000.hparams", dir);
    MT_CHECK_OK(mt_mkdirs(dir, 0755));
    MT_CHECK_OK(mt_file_write_atomic(path, sb.data, sb.len, 0644));
    /* session a: succeeded; session b: failed, act has an empty string, bn true */
    for (int s = 0; s < 2; s++) {
        char run[1100];
        snprintf(run, sizeof run, "%s/trial_%d", dir, s);
        MT_CHECK_OK(mt_mkdirs(run, 0755));
        snprintf(path, sizeof path, "%s/events.out.tfevents.0000000000.hparams", run);
        mt_tb_hparam_value v[4] = {
            {.name = "lr", .type = MT_TB_HPARAM_FLOAT, .number = s ? 0.25 : 0.0125},
            {.name = "act", .type = MT_TB_HPARAM_STRING, .string = s ? "" : "tanh"},
            {.name = "layers", .type = MT_TB_HPARAM_FLOAT, .number = 4},
            {.name = "bn", .type = MT_TB_HPARAM_BOOL, .boolean = s == 1},
        };
        mt_strbuf_clear(&sb);
        MT_CHECK_OK(mt_tb_record_hparams_session_start(&sb, s ? "g1" : NULL, 1.7e9 + s, 4, v));
        MT_CHECK_OK(mt_tb_append_records(path, &sb)); /* a new file: version first */
        mt_strbuf_clear(&sb);
        if (!s) MT_CHECK_OK(mt_tb_record_scalar(&sb, 3, "sweep/objective", 0.375));
        MT_CHECK_OK(mt_tb_record_hparams_session_end(
            &sb, s ? MT_TB_STATUS_FAILURE : MT_TB_STATUS_SUCCESS, 1.7e9 + 60));
        MT_CHECK_OK(mt_tb_append_records(path, &sb)); /* appended: no second version */
    }
    mt_strbuf_deinit(&sb);
}

MT_TEST(hparams_argument_checks)
{
    mt_strbuf sb;
    mt_strbuf_init(&sb);
    mt_tb_hparam_info bad = {.name = ""};
    MT_CHECK_ERR(mt_tb_record_hparams_experiment(&sb, NULL, NULL, 0, 1, &bad, 0, NULL),
                 MT_ERR_INVALID, "hyperparameter 0 has no name");
    mt_tb_metric_info nom = {NULL, NULL, NULL, NULL};
    MT_CHECK_ERR(mt_tb_record_hparams_experiment(&sb, NULL, NULL, 0, 0, NULL, 1, &nom),
                 MT_ERR_INVALID, "metric 0 has no tag");
    mt_tb_hparam_value v = {.name = NULL};
    MT_CHECK_ERR(mt_tb_record_hparams_session_start(&sb, NULL, 0, 1, &v), MT_ERR_INVALID,
                 "no name");
    MT_CHECK_ERR(mt_tb_record_hparams_session_end(&sb, (mt_tb_session_status)7, 0), MT_ERR_INVALID,
                 "bad status");
    MT_CHECK_ERR(mt_tb_record_scalar(&sb, 0, "", 1), MT_ERR_INVALID, "no tag");
    MT_CHECK_EQ_INT((int64_t)sb.len, 0);
    mt_strbuf_deinit(&sb);
}

static const char *const hp_script =
    "import sys, os\n"
    "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n"
    "from tensorboard.plugins.hparams import metadata, plugin_data_pb2, api_pb2\n"
    "def load(d):\n"
    "    ea = EventAccumulator(d, size_guidance={'scalars': 0, 'tensors': 0})\n"
    "    ea.Reload()\n"
    "    return ea\n"
    "def val(v):\n"
    "    k = v.WhichOneof('kind')\n"
    "    return repr(getattr(v, k))\n"
    "top = load(sys.argv[1])\n"
    "c = top.PluginTagToContent('hparams')\n"
    "print('top tags', sorted(c))\n"
    "ex = metadata.parse_experiment_plugin_data(c['_hparams_/experiment'])\n"
    "print('experiment', ex.name, '|', ex.description, ex.time_created_secs)\n"
    "for h in ex.hparam_infos:\n"
    "    dom = h.WhichOneof('domain')\n"
    "    if dom == 'domain_interval':\n"
    "        d = '[%g, %g]' % (h.domain_interval.min_value, h.domain_interval.max_value)\n"
    "    elif dom == 'domain_discrete':\n"
    "        d = ' '.join(val(v) for v in h.domain_discrete.values)\n"
    "    else:\n"
    "        d = '-'\n"
    "    print('hparam', h.name, '|', h.display_name, '|', h.description, '|',\n"
    "          api_pb2.DataType.Name(h.type), '|', d)\n"
    "for m in ex.metric_infos:\n"
    "    print('metric', repr(m.name.group), m.name.tag, '|', m.display_name, '|', m.description)\n"
    "for run in ('trial_0', 'trial_1'):\n"
    "    ea = load(os.path.join(sys.argv[1], run))\n"
    "    print(run, 'file_version', ea.file_version)\n"
    "    c = ea.PluginTagToContent('hparams')\n"
    "    s = metadata.parse_session_start_info_plugin_data(c['_hparams_/session_start_info'])\n"
    "    print(run, 'group', repr(s.group_name), s.start_time_secs)\n"
    "    for k in sorted(s.hparams):\n"
    "        print(run, 'value', k, val(s.hparams[k]))\n"
    "    e = metadata.parse_session_end_info_plugin_data(c['_hparams_/session_end_info'])\n"
    "    print(run, 'end', api_pb2.Status.Name(e.status), e.end_time_secs)\n"
    "    for t in ea.Tags()['scalars']:\n"
    "        for x in ea.Scalars(t):\n"
    "            print(run, 'scalar', t, x.step, x.value)\n"
    "    raw = plugin_data_pb2.HParamsPluginData.FromString(c['_hparams_/session_end_info'])\n"
    "    print(run, 'version', raw.version)\n";

MT_TEST(hparams_read_by_tensorboard)
{
    char *dir = tpath("hparams");
    write_log(dir);
    char args[1100], *out;
    snprintf(args, sizeof args, "'%s'", dir);
    int rc = run_python(hp_script, args, "tensorboard", &out);
    MT_CHECK_EQ_INT(rc, 0);
    static const char *const want[] = {
        "top tags ['_hparams_/experiment']\n",
        "experiment demo sweep | a test 1700000000.0\n",
        "hparam lr | params.lr | loguniform [0.001, 0.3] | DATA_TYPE_FLOAT64 | [0.001, 0.3]\n",
        "hparam act |  |  | DATA_TYPE_STRING | 'relu' 'tanh' 'Maxout'\n",
        "hparam layers |  |  | DATA_TYPE_FLOAT64 | 1.0 2.0 4.0\n",
        "hparam bn |  |  | DATA_TYPE_BOOL | False True\n",
        "metric '' sweep/objective | objective | best valid error\n",
        "metric '' valid_err |  | \n",
        "trial_0 file_version 2.0\n",
        "trial_0 group '' 1700000000.0\n",
        "trial_0 value act 'tanh'\n",
        "trial_0 value bn False\n",
        "trial_0 value layers 4.0\n",
        "trial_0 value lr 0.0125\n",
        "trial_0 end STATUS_SUCCESS 1700000060.0\n",
        "trial_0 scalar sweep/objective 3 0.375\n",
        "trial_0 version 0\n",
        "trial_1 group 'g1' 1700000001.0\n",
        "trial_1 value act ''\n",
        "trial_1 value bn True\n",
        "trial_1 value lr 0.25\n",
        "trial_1 end STATUS_FAILURE 1700000060.0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(out, want[i]))
            mt_test_fail(__FILE__, __LINE__, "TensorBoard read:\n%s\nmissing line:\n%s", out,
                         want[i]);
    MT_CHECK(strstr(out, "trial_1 scalar") == NULL);
    mt_free(out);
}

/* The file_version event starts a new file only; appends add just their records. */
MT_TEST(hparams_append_starts_file_once)
{
    char *dir = tpath("hpappend");
    write_log(dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/trial_0/events.out.tfevents.0000000000.hparams", dir);
    size_t len;
    char *d = slurp(path, &len);
    int n = 0;
    for (size_t i = 0; i + 13 <= len; i++)
        n += memcmp(d + i, "brain.Event:2", 13) == 0;
    mt_free(d);
    MT_CHECK_EQ_INT(n, 1);
    MT_CHECK_ERR(mt_tb_append_records(tpath("no/such/dir/x.tfevents"), &(mt_strbuf){0}), MT_ERR_IO,
                 "no/such/dir");
}
