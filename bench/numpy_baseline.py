#!/usr/bin/python3
"""NumPy / PyTorch baselines for the mltrain benchmarks (issue 2), same sizes and table format.

Run with Debian's interpreter (numpy and torch from apt are importable only there):
    /usr/bin/python3 bench/numpy_baseline.py [--reps N] [--long-reps N]

Measures, on 16M float32 elements (64 MiB arrays) and a 4096x4096 float32 matrix:
  * a copy of 64 MiB (np.copyto) as this process's bandwidth reference (2 x 64 MiB counted),
  * a*b+c (4 x 64 MiB counted): numpy with a temporary, numpy with out=, torch.addcmul(out=),
  * the long expression tanh(x)*sigmoid(x)+exp(-x*x)*0.5-log1p(abs(x)) in numpy and torch
    (torch with 1 and 2 intra-op threads), with its max abs error against float64,
  * float32 sums: full, axis 1 and axis 0 (64 MiB read counted), numpy and torch.
Each row is the median of --reps timed runs after 2 warm-ups. Rows with the same torch thread
count are interleaved round by round like the C benchmarks; each thread-count group repeats the
copy reference, and a row's ratio pairs it with the copy samples of its own group.
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import time

try:
    import numpy as np
except ImportError:
    print("SKIP: numpy is not importable by %s (run with /usr/bin/python3; "
          "scripts/install-deps.sh installs python3-numpy)" % sys.executable)
    sys.exit(77)

try:
    import torch
except ImportError:
    torch = None

N = 16777216
M = 4096
MIB = 1 << 20


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_interleaved(cases, reps, warmup=2):
    """cases: list of (name, fn). Returns {name: [seconds...]}, rounds interleaved."""
    for _ in range(warmup):
        for _, fn in cases:
            fn()
    samples = {name: [] for name, _ in cases}
    for _ in range(reps):
        for name, fn in cases:
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


def header():
    print("| benchmark | implementation | threads | median ms | min-max ms | rate | ratio |")
    print("|---|---|---|---:|---:|---:|---|")


def rate_of(s, work):
    return work / statistics.median(s) / 1e9


def paired(sa, work_a, sb, work_b):
    """Speed of a relative to b: median over rounds of (t_b / t_a) * (work_a / work_b)."""
    return statistics.median([(tb / ta) * (work_a / work_b) for ta, tb in zip(sa, sb)])


def row(bench, impl, threads, s, work=0.0, unit="GB/s", ratio=""):
    med = statistics.median(s)
    rate = "%.2f %s" % (rate_of(s, work), unit) if work > 0 else ""
    print("| %s | %s | %s | %.3f | %.3f-%.3f | %s | %s |"
          % (bench, impl, threads, med * 1e3, min(s) * 1e3, max(s) * 1e3, rate, ratio))
    sys.stdout.flush()


def run_grouped(cases, reps, warmup=2, ref=None):
    """cases: list of (name, fn, torch_threads or None). Cases are run in groups of one torch
    thread count (set once per group: switching it every call perturbs torch's OpenMP pool);
    within a group the rounds are interleaved. The reference case `ref` (if given) is run in
    every group; its samples from the group of t threads are stored as "<ref>@<t>"."""
    groups = {}
    for name, fn, t in cases:
        groups.setdefault(t or 1, []).append((name, fn))
    samples = {}
    for t, group in sorted(groups.items()):
        if torch is not None:
            torch.set_num_threads(t)
        has_ref = ref is not None and any(name == ref[0] for name, _ in group)
        if ref is not None and not has_ref:
            group = [("%s@%d" % (ref[0], t), ref[1])] + group
        got = run_interleaved(group, reps, warmup)
        if has_ref:
            got["%s@%d" % (ref[0], t)] = got[ref[0]]
        samples.update(got)
    if torch is not None:
        torch.set_num_threads(1)
    return samples


def bench_fma(reps):
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, N).astype(np.float32)
    b = rng.uniform(-1, 1, N).astype(np.float32)
    c = rng.uniform(-1, 1, N).astype(np.float32)
    o = np.zeros(N, np.float32)
    dst = np.zeros(N, np.float32)
    copy = ("copy", lambda: np.copyto(dst, a))
    cases = [
        copy + (None,),
        ("np tmp", lambda: a * b + c, None),
        ("np out", lambda: (np.multiply(a, b, out=o), np.add(o, c, out=o)), None),
    ]
    if torch is not None:
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        to = torch.from_numpy(o)
        cases.append(("torch 1T", lambda: torch.addcmul(tc, ta, tb, out=to), 1))
        cases.append(("torch 2T", lambda: torch.addcmul(tc, ta, tb, out=to), 2))
    s = run_grouped(cases, reps, ref=copy)
    nb = N * 4
    cp, traffic = 2.0 * nb, 4.0 * nb
    print("a*b+c: float32, n = %d (%d MiB per array); rate counts 4 x 64 MiB; "
          "copy counts 2 x 64 MiB; ratios are medians of per-round ratios\n" % (N, nb // MIB))
    header()
    row("copy 64 MiB", "np.copyto", "1", s["copy"], cp, ratio="reference")
    for key, impl, thr in [("np tmp", "numpy a*b+c (temporary)", "1"),
                           ("np out", "numpy multiply+add, out=", "1"),
                           ("torch 1T", "torch.addcmul(out=)", "1"),
                           ("torch 2T", "torch.addcmul(out=)", "2")]:
        if key in s:
            r = s["copy@" + thr]
            row("a*b+c f32", impl, thr, s[key], traffic,
                ratio="%.2f of np.copyto" % paired(s[key], traffic, r, cp))
    print()


def long_np(x):
    return np.tanh(x) * (1 / (1 + np.exp(-x))) + np.exp(-x * x) * np.float32(0.5) \
        - np.log1p(np.abs(x))


def long_torch(x):
    return torch.tanh(x) * torch.sigmoid(x) + torch.exp(-x * x) * 0.5 - torch.log1p(torch.abs(x))


def bench_long(reps):
    # Same input law as bench_elemwise (N(0,1)); the generator differs, the timing does not care.
    x = np.random.default_rng(4).standard_normal(N, dtype=np.float32)
    cases = [("numpy", lambda: long_np(x), None)]
    tx = None
    if torch is not None:
        tx = torch.from_numpy(x)
        cases.append(("torch 1T", lambda: long_torch(tx), 1))
        cases.append(("torch 2T", lambda: long_torch(tx), 2))
    s = run_grouped(cases, reps, warmup=1)
    x64 = x.astype(np.float64)
    ref = np.tanh(x64) / (1 + np.exp(-x64)) + np.exp(-x64 * x64) * 0.5 - np.log1p(np.abs(x64))
    errs = {"numpy": float(np.max(np.abs(long_np(x).astype(np.float64) - ref)))}
    if tx is not None:
        errs["torch"] = float(np.max(np.abs(long_torch(tx).numpy().astype(np.float64) - ref)))
    nb = N * 4
    print("long expression tanh(x)*sigmoid(x)+exp(-x*x)*0.5-log1p(abs(x)): float32, "
          "x ~ N(0,1), n = %d, %d reps; rate counts 2 x 64 MiB\n" % (N, reps))
    header()
    row("long expr f32", "numpy", "1", s["numpy"], 2.0 * nb)
    for key, thr in [("torch 1T", "1"), ("torch 2T", "2")]:
        if key in s:
            row("long expr f32", "torch eager", thr, s[key], 2.0 * nb)
    print("\nmax abs error vs float64: " +
          ", ".join("%s %.3g" % (k, v) for k, v in errs.items()) + "\n")


def bench_sum(reps):
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, N).astype(np.float32)
    m = rng.uniform(-1, 1, (M, M)).astype(np.float32)
    dst = np.zeros(N, np.float32)
    copy = ("copy", lambda: np.copyto(dst, x))
    cases = [
        copy + (None,),
        ("np full", lambda: x.sum(), None),
        ("np ax1", lambda: m.sum(axis=1), None),
        ("np ax0", lambda: m.sum(axis=0), None),
    ]
    if torch is not None:
        tx, tm = torch.from_numpy(x), torch.from_numpy(m)
        for t in (1, 2):
            cases.append(("torch %dT full" % t, lambda: tx.sum(), t))
            cases.append(("torch %dT ax1" % t, lambda: tm.sum(dim=1), t))
            cases.append(("torch %dT ax0" % t, lambda: tm.sum(dim=0), t))
    s = run_grouped(cases, reps, ref=copy)
    nb = N * 4
    names = {"full": "sum f32 [%d] -> scalar" % N, "ax1": "sum f32 [%d,%d] axis 1" % (M, M),
             "ax0": "sum f32 [%d,%d] axis 0" % (M, M)}
    print("float32 sums; rate counts the input read once (64 MiB); copy counts 2 x 64 MiB; "
          "ratios are medians of per-round ratios\n")
    header()
    row("copy 64 MiB", "np.copyto", "1", s["copy"], 2.0 * nb, ratio="reference")
    for what in ("full", "ax1", "ax0"):
        key = "np " + what
        row(names[what], "numpy", "1", s[key], nb,
            ratio="%.2f of np.copyto" % paired(s[key], nb, s["copy"], 2.0 * nb))
        for t in (1, 2):
            key = "torch %dT %s" % (t, what)
            if key in s:
                row(names[what], "torch", str(t), s[key], nb,
                    ratio="%.2f of np.copyto" % paired(s[key], nb, s["copy@%d" % t], 2.0 * nb))
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="timed repetitions (median reported)")
    ap.add_argument("--long-reps", type=int, default=5, help="repetitions of the long expression")
    args = ap.parse_args()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    print("## numpy_baseline")
    print("date: %s | cpu: %s | CPUs available: %d | python %s" %
          (now, cpu_model(), len(os.sched_getaffinity(0)), platform.python_version()))
    print("numpy %s | torch %s (default intra-op threads %s) | OPENBLAS_NUM_THREADS=%s" %
          (np.__version__, torch.__version__ if torch else "not importable",
           torch.get_num_threads() if torch else "-",
           os.environ.get("OPENBLAS_NUM_THREADS", "(unset)")))
    print("reps: %d (median reported, rounds interleaved)\n" % args.reps)
    bench_fma(args.reps)
    bench_long(args.long_reps)
    bench_sum(args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
