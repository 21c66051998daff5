/* Fuzz target: experiment files (config.h) — templating, libyaml parsing, tags, scalar typing,
 * ${VAR} substitution, the limits (depth, size, alias expansion), then validation of every
 * phase against the full component registry exactly as `mltrain JOB.yaml` and `--dry-run` do
 * (mt_job_load: the document is a !obj:Train or a list of them, each validated as "train"),
 * and the mt_cfg_dump round trip. Nothing is built (building reads datasets).
 * The input is the file text. The template parameters of the Pylearn2 tutorials are given
 * (numbers, and save_path), no environment: another `%(name)s` or an unknown `${VAR}` is an
 * error, as for a user who forgot --param. `!include` reads files
 * relative to the scratch directory (the fuzz scripts run with stdin from /dev/null).
 * Invariant checked: the mt_cfg_dump of a loaded document loads back. */
#include "fuzz_common.h"
#include "mltrain/config.h"
#include "mltrain/train.h"

static mt_cfg_registry *registry(void)
{
    static mt_cfg_registry *r;
    if (!r && mt_train_registry_new(&r) != MT_OK) {
        fprintf(stderr, "fuzz_yaml: registry: %s\n", mt_last_error());
        abort();
    }
    return r;
}

static void validate(const mt_cfg_node *root)
{
    const mt_cfg_registry *r = registry();
    if (root->kind == MT_CFG_OBJ) {
        mt_cfg_validate(r, root, "train");
    } else if (root->kind == MT_CFG_LIST) {
        for (int32_t i = 0; i < root->n; i++)
            if (mt_cfg_validate(r, root->items[i], "train") != MT_OK) break;
    } else {
        mt_cfg_validate(r, root, NULL); /* any component anywhere in it */
    }
}

static const mt_cfg_var params[] = {
    {"batch_size", "10"},  {"dim_h0", "8"},           {"dim_h1", "8"},
    {"max_epochs", "1"},   {"monitoring_batches", "1"}, {"nhid", "8"},
    {"nvis", "784"},       {"output_channels_h2", "4"}, {"output_channels_h3", "4"},
    {"sparse_init_h1", "2"}, {"train_stop", "100"},     {"valid_stop", "200"},
    {"test_stop", "100"},  {"save_path", "out"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[600];
    snprintf(name, sizeof name, "%s/job.yaml", mt_fuzz_dir());
    mt_cfg_options o;
    mt_cfg_options_init(&o);
    o.no_environment = true;
    o.n_params = (int32_t)(sizeof params / sizeof params[0]);
    o.params = params;
    mt_cfg_doc *doc = NULL;
    if (mt_cfg_load_string(&doc, (const char *)data, size, name, &o) != MT_OK) return 0;
    const mt_cfg_node *root = mt_cfg_doc_root(doc);
    if (root) {
        validate(root);
        mt_strbuf sb;
        mt_strbuf_init(&sb);
        if (mt_cfg_dump(&sb, root) == MT_OK && sb.data) {
            mt_cfg_doc *again = NULL;
            mt_status st = mt_cfg_load_string(&again, sb.data, sb.len, name, &o);
            MT_FUZZ_CHECK(st == MT_OK, "the dump does not load back: %s\n--- dump:\n%s",
                          mt_last_error(), sb.data);
            mt_cfg_doc_free(again);
        }
        mt_strbuf_deinit(&sb);
    }
    mt_cfg_doc_free(doc);
    return 0;
}
