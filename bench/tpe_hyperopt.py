#!/usr/bin/env python3
"""mltrain's TPE against hyperopt's, side by side (issue 7 benchmark).

Runs hyperopt (PyPI, `scripts/install-deps.sh --with-python`) with tpe.suggest and rand.suggest
on Branin and Hartmann6, and mltrain's bench_tpe on the same problems, budget and number of
seeds; prints the median best-so-far regret (best loss so far minus the known optimum) after
20/50/100/200 evaluations with the interquartile range at the end, and whether mltrain's TPE
median is within 10% of hyperopt's (or better). Seeds differ in meaning (NumPy's generator vs
mltrain's Philox streams), so only the distributions over seeds are comparable.

    python3 bench/tpe_hyperopt.py --bench build/bench/bench_tpe [--seeds 30] [--first-seed 0]
                                  [--evals 200]
"""
import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np

BRANIN_MIN = 0.397887357729738160
HARTMANN6_MIN = -3.32236801141551

A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
              [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
P = np.array([[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
              [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
              [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
              [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]])
C = np.array([1.0, 1.2, 3.0, 3.2])


def branin(d):
    x, y = d["x"], d["y"]
    return ((y - 5.1 / (4 * math.pi ** 2) * x ** 2 + 5 * x / math.pi - 6) ** 2
            + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10)


def hartmann6(d):
    x = np.array([d["x%d" % (j + 1)] for j in range(6)])
    return float(-np.sum(C * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


def hyperopt_runs(problem, algo, seeds, evals, first):
    from hyperopt import Trials, fmin, hp, rand, tpe
    if problem == "branin":
        space = {"x": hp.uniform("x", -5, 10), "y": hp.uniform("y", 0, 15)}
        fn, fmin_ = branin, BRANIN_MIN
    else:
        space = {"x%d" % (j + 1): hp.uniform("x%d" % (j + 1), 0, 1) for j in range(6)}
        fn, fmin_ = hartmann6, HARTMANN6_MIN
    suggest = tpe.suggest if algo == "tpe" else rand.suggest
    out = []
    for seed in range(first, first + seeds):
        trials = Trials()
        t0 = time.perf_counter()
        fmin(fn, space, algo=suggest, max_evals=evals, trials=trials,
             rstate=np.random.default_rng(seed), show_progressbar=False)
        dt = time.perf_counter() - t0
        out.append((np.minimum.accumulate(np.array(trials.losses())) - fmin_, 1e3 * dt / evals))
    return out


def summary(curves, evals):
    r = np.array([c for c, _ in curves])
    marks = [m for m in (20, 50, 100, 200) if m <= evals] or [evals]
    med = [float(np.median(r[:, m - 1])) for m in marks]
    q1, q3 = np.percentile(r[:, evals - 1], [25, 75])
    return marks, med, (float(q1), float(q3)), float(np.mean([t for _, t in curves]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default="build/bench/bench_tpe")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--evals", type=int, default=200)
    args = ap.parse_args()
    import logging
    logging.getLogger("hyperopt").setLevel(logging.ERROR)

    out = subprocess.run([args.bench, "--seeds", str(args.seeds), "--first-seed",
                          str(args.first_seed), "--evals", str(args.evals)],
                         check=True, capture_output=True, text=True).stdout
    ml = {}
    for line in out.splitlines():
        d = json.loads(line)
        ml.setdefault((d["problem"], d["algo"]), []).append((np.array(d["regret"]), d["suggest_ms"]))

    print("median best-so-far regret over %d seeds (%d..%d), %d evaluations (IQR at the end); "
          "ms per evaluation (hyperopt: whole fmin loop; mltrain: suggest only)" %
          (args.seeds, args.first_seed, args.first_seed + args.seeds - 1, args.evals))
    ok = True
    hyper_tpe = {}
    for problem in ("branin", "hartmann6"):
        rows = {}
        for algo in ("tpe", "random"):
            runs = hyperopt_runs(problem, algo, args.seeds, args.evals, args.first_seed)
            if algo == "tpe":
                hyper_tpe[problem] = runs
            rows[("hyperopt", algo)] = summary(runs, args.evals)
            rows[("mltrain", algo)] = summary(ml[(problem, algo)], args.evals)
        marks = rows[("mltrain", "tpe")][0]
        print("\n%s" % problem)
        print("  %-17s %s   IQR@%d            ms/eval" %
              ("", "  ".join("@%-8d" % m for m in marks), args.evals))
        for key in (("hyperopt", "tpe"), ("mltrain", "tpe"), ("hyperopt", "random"),
                    ("mltrain", "random")):
            _, med, iqr, ms = rows[key]
            print("  %-17s %s   %.4f-%.4f   %.3f" % (
                "%s %s" % key, "  ".join("%-9.4f" % v for v in med), iqr[0], iqr[1], ms))
        h, m = rows[("hyperopt", "tpe")][1][-1], rows[("mltrain", "tpe")][1][-1]
        ratio = m / h if h > 0 else float("inf")
        verdict = "PASS" if m <= 1.10 * h else "FAIL"
        ok = ok and verdict == "PASS"
        # bootstrap over seeds: how far the ratio of medians moves with the seed sample
        rng = np.random.default_rng(0)
        rh = np.array([c[-1] for c, _ in hyper_tpe[problem]])
        rm = np.array([c[-1] for c, _ in ml[(problem, "tpe")]])
        boot = [np.median(rng.choice(rm, rm.size)) / np.median(rng.choice(rh, rh.size))
                for _ in range(2000)]
        lo, hi = np.percentile(boot, [5, 95])
        print("  mltrain/hyperopt TPE median regret at %d: %.3f (bootstrap 90%% interval "
              "%.2f-%.2f; target <= 1.10): %s" % (args.evals, ratio, lo, hi, verdict))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
