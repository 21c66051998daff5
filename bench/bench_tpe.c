/* TPE quality benchmark: mltrain's TPE and random search on Branin and Hartmann6 written as
 * expression objectives, `evals` evaluations per run, seeds 0..seeds-1. For every run it prints
 * one JSON line {"impl": "mltrain", "problem", "algo", "seed", "regret": [best-so-far regret
 * after each evaluation], "suggest_ms": mean time per suggestion}. bench/tpe_hyperopt.py runs
 * hyperopt on the same problems and budgets and prints both side by side (bench/RESULTS.md).
 *
 *   bench_tpe [--problem branin|hartmann6|all] [--algo tpe|random|all] [--seeds 30]
 *             [--first-seed 0] [--evals 200] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/hyperopt/hpo_objectives.h"
#include "mltrain/hyperopt.h"

#define BRANIN_MIN 0.397887357729738160
#define HARTMANN6_MIN -3.32236801141551

static const char *const branin_space = "{x: !uniform [-5, 10], y: !uniform [0, 15]}";
static const char *const h6_space =
    "{x1: !uniform [0, 1], x2: !uniform [0, 1], x3: !uniform [0, 1], x4: !uniform [0, 1],"
    " x5: !uniform [0, 1], x6: !uniform [0, 1]}";

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_tpe: %s: %s\n", what, mt_last_error());
    return 1;
}

static int run(const char *problem, mt_hpo_algorithm algo, int seed, int evals)
{
    bool branin = strcmp(problem, "branin") == 0;
    const char *space_text = branin ? branin_space : h6_space;
    mt_strbuf expr;
    mt_strbuf_init(&expr);
    if (branin)
        mt_strbuf_append(&expr, hpo_branin_expr);
    else
        hpo_hartmann6_expr(&expr);
    double fmin_ = branin ? BRANIN_MIN : HARTMANN6_MIN;
    mt_cfg_options co;
    mt_cfg_options_init(&co);
    co.no_environment = true;
    mt_cfg_doc *doc = NULL;
    mt_hpo_space *s = NULL;
    mt_hpo_expr *e = NULL;
    mt_hpo_sampler *sm = NULL;
    mt_hpo_history *h = NULL;
    mt_hpo_point p = {0};
    int rc = 0;
    if (mt_cfg_load_string(&doc, space_text, strlen(space_text), "space", &co) ||
        mt_hpo_space_extract(&s, mt_cfg_doc_root(doc), NULL, NULL) ||
        mt_hpo_expr_new(&e, s, expr.data) || mt_hpo_history_new(&h, s) ||
        mt_hpo_point_init(&p, s)) {
        rc = fail("setup");
        goto done;
    }
    mt_hpo_sampler_options so;
    mt_hpo_sampler_options_init(&so);
    so.algorithm = algo;
    so.seed = (uint64_t)seed;
    if (mt_hpo_sampler_new(&sm, s, &so)) {
        rc = fail("sampler");
        goto done;
    }
    printf("{\"impl\": \"mltrain\", \"problem\": \"%s\", \"algo\": \"%s\", \"seed\": %d, "
           "\"regret\": [",
           problem, mt_hpo_algorithm_name(algo), seed);
    double best = 1e300, t_suggest = 0;
    for (int i = 0; i < evals; i++) {
        double t0 = now(), y;
        if (mt_hpo_sampler_suggest(sm, h, i, &p)) {
            rc = fail("suggest");
            goto done;
        }
        t_suggest += now() - t0;
        if (mt_hpo_expr_eval(e, &p, &y) || mt_hpo_history_add(h, i, &p) ||
            mt_hpo_history_finish(h, i, MT_HPO_OK, y)) {
            rc = fail("evaluate");
            goto done;
        }
        if (y < best) best = y;
        printf("%s%.10g", i ? ", " : "", best - fmin_);
    }
    printf("], \"suggest_ms\": %.4f}\n", 1e3 * t_suggest / evals);
    fflush(stdout);
done:
    mt_hpo_point_clear(&p);
    mt_hpo_history_free(h);
    mt_hpo_sampler_free(sm);
    mt_hpo_expr_free(e);
    mt_hpo_space_free(s);
    mt_cfg_doc_free(doc);
    mt_strbuf_deinit(&expr);
    return rc;
}

int main(int argc, char **argv)
{
    const char *problem = "all", *algo = "all";
    int seeds = 30, evals = 200, first = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--problem") && i + 1 < argc)
            problem = argv[++i];
        else if (!strcmp(argv[i], "--algo") && i + 1 < argc)
            algo = argv[++i];
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--first-seed") && i + 1 < argc)
            first = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--evals") && i + 1 < argc)
            evals = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_tpe [--problem branin|hartmann6|all] "
                            "[--algo tpe|random|all] [--seeds N] [--first-seed S] [--evals N]\n");
            return 2;
        }
    }
    const char *problems[] = {"branin", "hartmann6"};
    const mt_hpo_algorithm algos[] = {MT_HPO_ALGO_TPE, MT_HPO_ALGO_RANDOM};
    for (int pi = 0; pi < 2; pi++) {
        if (strcmp(problem, "all") && strcmp(problem, problems[pi])) continue;
        for (int ai = 0; ai < 2; ai++) {
            if (strcmp(algo, "all") && strcmp(algo, mt_hpo_algorithm_name(algos[ai]))) continue;
            for (int seed = first; seed < first + seeds; seed++)
                if (run(problems[pi], algos[ai], seed, evals)) return 1;
        }
    }
    return 0;
}
