/* Fuzz target: the sweep journal (journal.jsonl, src/hyperopt/sweep_journal.c and
 * sweep_report.c). The input is the journal's text, written into the scratch directory, which
 * serves as the sweep directory. Both readers of a journal run on it:
 *   - `mltrain sweep-report DIR` (mt_sweep_report, public), the lenient reader;
 *   - the resume replay of a sweep (mt__sw_open + mt__sw_journal_open, the path `mltrain
 *     SWEEP.yaml` takes when the directory exists): every line through the config loader, the
 *     record checks, the trial history and the cut of an incomplete last line. The sweep file
 *     is the two-parameter space of jobs/branin_sweep.yaml (same space hash, so the seed
 *     journals of fuzz/corpus/journal/ from `mltrain jobs/branin_sweep.yaml` pass the header
 *     check) with a channel objective, so opening it compiles nothing.
 * Invariant checked: a journal the replay accepted is accepted again after the replay cut its
 * incomplete last line and appended its "restart" record (what the next resume reads), with
 * the same trials, the same finished trials and the same best trial. */
#include "fuzz_common.h"
#include "mltrain/core.h"
#include "mltrain/hyperopt_run.h"

#include "../src/hyperopt/sweep_impl.h"

static const char sweep_yaml[] =
    "!obj:Sweep {\n"
    "  name: 'fuzz_journal', seed: 7,\n"
    "  params: { x: !uniform [-5, 10], y: !uniform [0, 15] },\n"
    "  train: !obj:Train {\n"
    "    dataset: !obj:FashionMNIST { which_set: 'train', start: 0, stop: 100 },\n"
    "    model: !obj:MLP { nvis: 784, layers: [\n"
    "      !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0.01 } ] },\n"
    "    algorithm: !obj:SGD { batch_size: 10, learning_rate: '${params.x}',\n"
    "      monitoring_dataset: { 'valid': !obj:FashionMNIST { which_set: 'test' } },\n"
    "      termination_criterion: !obj:EpochCounter { max_epochs: '${params.y}' } },\n"
    "  },\n"
    "  objective: { channel: 'valid_objective', mode: min },\n"
    "  search: { algorithm: tpe, max_trials: 100, max_concurrent: 8 },\n"
    "  storage: { fsync: false },\n"
    "}\n";

static void quiet(mt_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)msg;
    (void)user;
}

typedef struct state {
    mt_status st;
    int64_t n_trials, n_finished, best_id;
} state;

/* One resume: open the sweep, replay (and cut, and append to) the journal, close. */
static state resume(const char *sweep_path)
{
    mt_sweep_options o;
    mt_sweep_options_init(&o);
    o.dir = mt_fuzz_dir();
    o.handle_signals = false;
    mt__sweep sw;
    state s = {0};
    s.st = mt__sw_open(&sw, sweep_path, &o);
    if (s.st) {
        fprintf(stderr, "fuzz_journal: the sweep file does not load: %s\n", mt_last_error());
        abort();
    }
    s.st = mt__sw_journal_open(&sw);
    s.n_trials = sw.n_trials;
    s.n_finished = sw.n_finished;
    s.best_id = sw.best_id;
    mt__sw_close(&sw);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *sweep_path;
    if (!sweep_path) {
        mt_log_set_callback(quiet, NULL);
        sweep_path = mt_fuzz_write_file("sweep.yaml", sweep_yaml, sizeof sweep_yaml - 1);
    }
    mt_fuzz_write_file("journal.jsonl", data, size);

    mt_strbuf out;
    mt_strbuf_init(&out);
    mt_sweep_report(mt_fuzz_dir(), 5, NULL, &out);
    mt_strbuf_deinit(&out);

    state a = resume(sweep_path);
    if (a.st == MT_OK) {
        state b = resume(sweep_path);
        MT_FUZZ_CHECK(b.st == MT_OK, "an accepted journal is refused on the next resume: %s",
                      mt_last_error());
        MT_FUZZ_CHECK(a.n_trials == b.n_trials && a.n_finished == b.n_finished &&
                          a.best_id == b.best_id,
                      "the next resume sees another history: %lld/%lld/%lld trials/finished/"
                      "best, then %lld/%lld/%lld",
                      (long long)a.n_trials, (long long)a.n_finished, (long long)a.best_id,
                      (long long)b.n_trials, (long long)b.n_finished, (long long)b.best_id);
    }
    return 0;
}
