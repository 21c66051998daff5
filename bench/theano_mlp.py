#!/usr/bin/env python3
"""Theano baseline for bench_train's MLP cases: one SGD+momentum training step of an MLP (ReLU
hidden layers, softmax cross-entropy with integer labels), float32, on the CPU, measured the way
bench/torch_mlp.py measures PyTorch.

Each step does what mltrain's training loop does per batch: take the next minibatch of a
shuffled epoch (a new permutation every 64 batches) from an in-memory synthetic dataset of 64
batches (uniform [0, 1) inputs, uniform integer labels), forward, the softmax NLL (written as
T.nnet.categorical_crossentropy(T.nnet.softmax(.)) so that Theano's rewrites fuse it into
CrossentropySoftmaxArgmax1HotWithBias and its Dx op), gradients, Pylearn2's Momentum rule
(v = mu v - lr g; p = p + v; mu 0.5, lr 0.01) as shared-variable updates, and the read of the
cost. Parameters start as Pylearn2's irange 0.05 (weights uniform in [-0.05, 0.05], biases 0).
The function is compiled in mode FAST_RUN with the cvm linker, OpenMP off, 1 BLAS thread
(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS) unless --threads says otherwise.

Variants, timed in the same rounds (each round runs a block of steps of each, in turn; a
round's sample is the median step of its block):
  a        the batch gathered in numpy by index (X[idx], Y[idx]) and passed to the function, as
           torch_mlp.py and mltrain's bench_train do;
  a_trust  the same function with trust_input = True (no input checks or conversions);
  b        Theano's tutorial style: the dataset in shared variables, givens x = X[idx],
           y = Y[idx] (the gather is a node of the graph), the function takes only idx;
  b_trust  b with trust_input = True.
The compile time of each theano.function call is printed (cold when the compile directory is
empty, e.g. with --fresh-cache; warm otherwise). step_b is compiled after step_a in the same
process and reuses the C modules step_a loaded, as does the second case of a run of both, so
only the first compile of a process is the time a user waits.

usage:
  theano_mlp.py [--model 784,100,10 --batch 32] [--rounds 7] [--steps 500] [--threads 1]
                [--fresh-cache] [--show-graph]
  Without --model it runs both cases of bench_train: 784,100,10 batch 32 (500 steps a block)
  and 784,1024,1024,10 batch 128 (30 steps a block).
theano_mlp.py --serve MODEL BATCH THREADS [cpu]
  coprocess in torch_mlp.py's protocol, so that bench_train runs Theano in its PyTorch slot,
  in the same interleaved rounds as mltrain (its rows then read "PyTorch theano ..."):
    bench_train --case mlp_small --python /opt/theano-venv/bin/python \
                --script bench/theano_mlp.py
  prints "ready" after compiling and warming up, then answers every "run N" with
  "times t1 ... tN" (ms). The variant is THEANO_BENCH_VARIANT (a, a_trust, b, b_trust;
  default a).

Environment: Theano 1.0.5 predates numpy 1.24; the shim below restores the removed numpy
aliases it uses (np.bool, np.complex) before theano is imported. Install (outside the
repository), as used to measure:
  /usr/bin/python3 -m venv /opt/theano-venv
  /opt/theano-venv/bin/pip install "Theano==1.0.5" "numpy==1.24.4" "scipy<1.12"
  /opt/theano-venv/bin/python bench/theano_mlp.py
Needs g++ and OpenBLAS (libopenblas.so, linked with blas.ldflags=-lopenblas; Theano 1.0.5
spells its flags with dots). THEANO_FLAGS given in the environment are kept; the defaults
below fill in only what it does not set. The compile directory defaults to
/tmp/theano-bench-<uid> (never the repository)."""
import argparse
import os
import sys
import tempfile
import time


def parse_args():
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--serve":
        if sys.argv[5:] not in ([], ["cpu"]):
            sys.exit("theano_mlp.py: only the cpu device is supported")
        return argparse.Namespace(serve=True, model=sys.argv[2], batch=int(sys.argv[3]),
                                  threads=int(sys.argv[4]), fresh_cache=False, show_graph=False,
                                  warmup=20, variants=os.environ.get("THEANO_BENCH_VARIANT", "a"))
    ap = argparse.ArgumentParser(description="Theano MLP training-step baseline")
    ap.add_argument("--model", help="layer sizes, e.g. 784,100,10 (default: both cases)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=None, help="steps per block and variant")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", default="a,a_trust,b,b_trust")
    ap.add_argument("--fresh-cache", action="store_true",
                    help="compile into a new empty directory (cold compile time), removed after")
    ap.add_argument("--show-graph", action="store_true", help="debugprint the compiled step")
    a = ap.parse_args()
    a.serve = False
    return a


ARGS = parse_args()

# Threads and Theano flags must be set before numpy / theano are imported.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)
if ARGS.fresh_cache:
    import atexit
    import shutil

    COMPILEDIR = tempfile.mkdtemp(prefix="theano-bench-cold-")
    # registered before theano is imported, so it runs after theano's own exit handler
    atexit.register(shutil.rmtree, COMPILEDIR, True)
else:
    COMPILEDIR = os.path.join(tempfile.gettempdir(), "theano-bench-%d" % os.getuid())
_flags = [f for f in os.environ.get("THEANO_FLAGS", "").split(",") if f]
_set = {f.split("=", 1)[0] for f in _flags}
for _k, _val in (("base_compiledir", COMPILEDIR), ("blas.ldflags", "-lopenblas"),
                 ("openmp", "True" if ARGS.threads > 1 else "False"), ("floatX", "float32"),
                 ("mode", "FAST_RUN"), ("linker", "cvm"), ("device", "cpu")):
    if _k not in _set:
        _flags.append("%s=%s" % (_k, _val))
os.environ["THEANO_FLAGS"] = ",".join(_flags)

# ---- shims for Theano 1.0.5 under numpy 1.24 (only what it uses: scalar/basic.py builds ops
# with getattr(np, "bool") and calls np.complex; both aliases were removed in numpy 1.24). Python
# 3.11's removals (inspect.getargspec, collections.Callable...) are not reached by this script.
import numpy as np  # noqa: E402

for _n, _t in (("bool", bool), ("complex", complex)):
    if _n not in np.__dict__:
        setattr(np, _n, _t)

_t0 = time.perf_counter()
import theano  # noqa: E402
import theano.tensor as T  # noqa: E402

IMPORT_S = time.perf_counter() - _t0


class Case:
    """Model, data, compiled functions and per-variant iterators for one (sizes, batch)."""

    def __init__(self, sizes, batch):
        self.sizes, self.batch = sizes, batch
        rng = np.random.RandomState(0)
        n = 64 * batch
        self.X = rng.uniform(0, 1, (n, sizes[0])).astype(np.float32)
        self.Y = rng.randint(0, sizes[-1], n).astype(np.int32)
        self.params, self.vels = [], []
        for i in range(len(sizes) - 1):
            W = rng.uniform(-0.05, 0.05, (sizes[i], sizes[i + 1])).astype(np.float32)
            b = np.zeros(sizes[i + 1], np.float32)
            self.params += [theano.shared(W, "W%d" % i), theano.shared(b, "b%d" % i)]
        self.vels = [theano.shared(np.zeros_like(p.get_value()), "v_" + p.name)
                     for p in self.params]
        self.compile_s = {}
        x, y = T.fmatrix("x"), T.ivector("y")
        cost = self.cost(x, y)
        grads = T.grad(cost, self.params)
        mu, lr = np.float32(0.5), np.float32(0.01)
        updates = []
        for p, v, g in zip(self.params, self.vels, grads):
            v_new = mu * v - lr * g
            updates += [(v, v_new), (p, p + v_new)]
        t0 = time.perf_counter()
        self.fa = theano.function([x, y], cost, updates=updates, name="step_a")
        self.compile_s["a"] = time.perf_counter() - t0
        Xs = theano.shared(self.X, "X_data")
        Ys = theano.shared(self.Y, "Y_data")
        idx = T.ivector("idx")
        t0 = time.perf_counter()
        self.fb = theano.function([idx], cost, updates=updates,
                                  givens={x: Xs[idx], y: Ys[idx]}, name="step_b")
        self.compile_s["b"] = time.perf_counter() - t0
        self.iters = {}

    def cost(self, x, y):
        h = x
        nl = len(self.params) // 2
        for i in range(nl):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            z = T.dot(h, W) + b
            h = T.nnet.relu(z) if i + 1 < nl else T.nnet.softmax(z)
        return T.mean(T.nnet.categorical_crossentropy(h, y))

    def next_idx(self, key):
        """Next batch of a shuffled epoch (new permutation when the epoch ends)."""
        st = self.iters.get(key)
        n = self.X.shape[0]
        if st is None or st[1] + self.batch > n:
            st = [np.random.permutation(n).astype(np.int32), 0]
            self.iters[key] = st
        i = st[0][st[1]:st[1] + self.batch]
        st[1] += self.batch
        return i

    def set_trust(self, variant):
        """The _trust variants are the same compiled functions with trust_input set."""
        trust = variant.endswith("_trust")
        self.fa.trust_input = trust
        self.fb.trust_input = trust

    def step(self, variant):
        idx = self.next_idx(variant)
        if variant[0] == "a":
            return self.fa(self.X[idx], self.Y[idx])
        return self.fb(idx)

    def timed(self, variant, steps):
        ms = []
        pc = time.perf_counter
        for _ in range(steps):
            t0 = pc()
            self.step(variant)
            ms.append((pc() - t0) * 1e3)
        return ms


def median(v):
    s = sorted(v)
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


def op_summary(f):
    names = {}
    for node in f.maker.fgraph.toposort():
        nm = type(node.op).__name__
        if nm == "Elemwise" and hasattr(node.op.scalar_op, "name"):
            nm = "Elemwise"
        names[nm] = names.get(nm, 0) + 1
    return ", ".join("%s x%d" % (k, v) if v > 1 else k for k, v in sorted(names.items()))


def run_case(sizes, batch, rounds, steps, variants):
    title = "MLP %s batch %d" % ("-".join(map(str, sizes)), batch)
    case = Case(sizes, batch)
    print("== %s" % title)
    print("compile: step_a %.2f s, step_b %.2f s" % (case.compile_s["a"], case.compile_s["b"]))
    print("ops a: %s" % op_summary(case.fa))
    print("ops b: %s" % op_summary(case.fb))
    if ARGS.show_graph:
        theano.printing.debugprint(case.fa)
    # sanity: a and b compute the same step from the same state and batch
    saved = [p.get_value() for p in case.params + case.vels]
    i0 = np.arange(batch, dtype=np.int32)
    ca = float(case.fa(case.X[i0], case.Y[i0]))
    for p, s in zip(case.params + case.vels, saved):
        p.set_value(s)
    cb = float(case.fb(i0))
    print("check: first cost a %.6f b %.6f (ln %d = %.4f)" % (ca, cb, sizes[-1],
                                                              np.log(sizes[-1])))
    if abs(ca - cb) > 1e-5 * max(1.0, abs(ca)):
        print("error: variants a and b disagree", file=sys.stderr)
        sys.exit(1)
    for v in variants:
        case.set_trust(v)
        for _ in range(ARGS.warmup):
            case.step(v)
    samples = {v: [] for v in variants}
    means = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            time.sleep(0.02)
            case.set_trust(v)
            ms = case.timed(v, steps)
            samples[v].append(median(ms))
            means[v].append(sum(ms) / len(ms))
    case.set_trust("a")
    last = float(case.step("a"))
    print("cost after training: %.4f" % last)
    print("%d rounds x %d steps; per variant: median over rounds of the round's median step "
          "[min-max over rounds], mean step" % (rounds, steps))
    for v in variants:
        s = samples[v]
        print("theano_%-8s %9.4f ms  [%.4f-%.4f]  mean %.4f ms" % (v, median(s), min(s), max(s),
                                                                    median(means[v])))
    sys.stdout.flush()


def serve():
    """bench_train's coprocess protocol (see torch_mlp.py)."""
    variant = ARGS.variants
    if variant not in ("a", "a_trust", "b", "b_trust"):
        sys.exit("unknown variant %r" % variant)
    case = Case([int(v) for v in ARGS.model.split(",")], ARGS.batch)
    case.set_trust(variant)
    for _ in range(ARGS.warmup):
        case.step(variant)
    print("ready theano %s %s threads %d (compile %.1f s)" % (
        theano.__version__, variant, ARGS.threads, case.compile_s["a" if variant[0] == "a"
                                                                  else "b"]), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2 or parts[0] != "run":
            print("error: expected 'run N', got %r" % line, flush=True)
            continue
        ms = case.timed(variant, int(parts[1]))
        print("times " + " ".join("%.5f" % v for v in ms), flush=True)


def main():
    if ARGS.serve:
        serve()
        return
    print("theano %s, numpy %s, python %s; import %.2f s" % (
        theano.__version__, np.__version__, sys.version.split()[0], IMPORT_S))
    print("THEANO_FLAGS=%s" % os.environ["THEANO_FLAGS"])
    print("threads %d (OMP/OPENBLAS_NUM_THREADS); blas.ldflags %r; load average %s" % (
        ARGS.threads, theano.config.blas.ldflags,
        " ".join("%.2f" % x for x in os.getloadavg())))
    variants = [v for v in ARGS.variants.split(",") if v]
    for v in variants:
        if v not in ("a", "a_trust", "b", "b_trust"):
            sys.exit("unknown variant %r" % v)
    if ARGS.model:
        cases = [([int(s) for s in ARGS.model.split(",")], ARGS.batch or 32,
                  ARGS.steps or 500)]
    else:
        cases = [([784, 100, 10], 32, ARGS.steps or 500),
                 ([784, 1024, 1024, 10], 128, ARGS.steps or 30)]
    for sizes, batch, steps in cases:
        run_case(sizes, batch, ARGS.rounds, steps, variants)


if __name__ == "__main__":
    main()
