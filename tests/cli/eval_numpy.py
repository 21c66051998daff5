"""`mltrain eval` against NumPy: values, dtypes and shapes of many expressions, exact JSON
round trips (float64, float32, float16, ints, NaN/inf, -0.0), --out files read by np.load,
@file.npy inputs, and --grad against analytic derivatives.

usage: python3 eval_numpy.py MLTRAIN_BINARY TMPDIR      (exits 77 when NumPy is missing)
"""
import json
import math
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    print("numpy is not importable: skipped")
    sys.exit(77)

BIN = sys.argv[1]
TMP = sys.argv[2]
os.makedirs(TMP, exist_ok=True)
failures = []


def run(args):
    p = subprocess.run([BIN, "eval"] + args, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def to_arg(v):
    """A NAME=VALUE literal that reads back exactly (repr of Python floats is exact)."""
    if isinstance(v, np.ndarray):
        return to_arg(v.tolist())
    if isinstance(v, list):
        return "[" + ",".join(to_arg(x) for x in v) + "]"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return str(v)


def from_json(text):
    d = json.loads(text)
    dt = np.dtype(d["dtype"])
    conv = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
    data = [conv.get(x, x) if isinstance(x, str) else x for x in d["data"]]
    return np.array(data, dtype=dt).reshape(d["shape"])


def evaluate(expr, inputs, dtype=None, extra=()):
    args = ["--format", "json"] + list(extra)
    if dtype:
        args += ["--dtype", dtype]
    args.append(expr)
    args += ["%s=%s" % (k, to_arg(v)) for k, v in inputs.items()]
    rc, out, err = run(args)
    if rc != 0:
        raise RuntimeError("mltrain eval %r failed (%d): %s" % (expr, rc, err))
    return from_json(out)


def check(name, got, want, rtol):
    want = np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        failures.append("%s: got %s%s, want %s%s" % (name, got.dtype, got.shape, want.dtype,
                                                     want.shape))
        return
    if want.dtype.kind == "f":
        ok = np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                         atol=0, equal_nan=True)
    else:
        ok = np.array_equal(got, want)
    if not ok:
        failures.append("%s: got %r, want %r" % (name, got, want))


# ---------------------------------------------------------------- values vs NumPy
a = np.array([0.5, -1.25, 3.0])
b = np.array([2.0, 0.75, -4.0])
m = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]])
ia = np.array([7, -3, 12])
ib = np.array([2, 5, -4])
X = {"a": a, "b": b, "m": m}
I = {"ia": ia, "ib": ib}


def sm(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


cases = [
    ("a + a**10", X, lambda: a + a ** 10),
    ("a - b * a / b", X, lambda: a - b * a / b),
    ("-a**2 + b // 0.5 - b % 0.5", X, lambda: -a ** 2 + b // 0.5 - b % 0.5),
    ("exp(a) + log(abs(b)) - sqrt(abs(a)) * tanh(b)", X,
     lambda: np.exp(a) + np.log(np.abs(b)) - np.sqrt(np.abs(a)) * np.tanh(b)),
    ("sin(a) + cos(b) + arctan2(a, b) + arcsin(a / 4)", X,
     lambda: np.sin(a) + np.cos(b) + np.arctan2(a, b) + np.arcsin(a / 4)),
    ("log1p(a * 1e-10) + expm1(b * 1e-10)", X, lambda: np.log1p(a * 1e-10) + np.expm1(b * 1e-10)),
    ("maximum(a, b) - minimum(a, b) + clip(a, -1, 1)", X,
     lambda: np.maximum(a, b) - np.minimum(a, b) + np.clip(a, -1, 1)),
    ("where(a > b, a, b * 2)", X, lambda: np.where(a > b, a, b * 2)),
    ("a if a > 0 else -a", X, lambda: np.where(a > 0, a, -a)),
    ("(a < b) & (b < 2)", X, lambda: (a < b) & (b < 2)),
    ("a < b < 2", X, lambda: (a < b) & (b < 2)),
    ("not a > 0 or b > 0", X, lambda: np.logical_or(~(a > 0), b > 0)),
    ("m @ a", X, lambda: m @ a),
    ("m.T @ m", X, lambda: m.T @ m),
    ("dot(m, m.T)", X, lambda: np.dot(m, m.T)),
    ("m.sum(axis=0) + m.mean(0)", X, lambda: m.sum(axis=0) + m.mean(0)),
    ("m.max(axis=1, keepdims=True) - m", X, lambda: m.max(axis=1, keepdims=True) - m),
    ("m.argmax(axis=1)", X, lambda: m.argmax(axis=1)),
    ("argmin(m)", X, lambda: np.argmin(m)),
    ("prod(m, axis=1)", X, lambda: np.prod(m, axis=1)),
    ("var(m, axis=1) + std(m, ddof=1)", X, lambda: np.var(m, axis=1) + np.std(m, ddof=1)),
    ("all(m > -2, axis=0)", X, lambda: np.all(m > -2, axis=0)),
    ("any(m > 3)", X, lambda: np.any(m > 3)),
    ("logsumexp(m, axis=1)", X, lambda: np.log(np.exp(m).sum(axis=1))),
    ("softmax(m)", X, lambda: sm(m)),
    ("logsoftmax(m, axis=0)", X, lambda: np.log(sm(m, 0))),
    ("sigmoid(a) + softplus(b) + relu(a)", X,
     lambda: 1 / (1 + np.exp(-a)) + np.log1p(np.exp(b)) + np.maximum(a, 0)),
    ("m[1, ::-1]", X, lambda: m[1, ::-1]),
    ("m[:, 1:]", X, lambda: m[:, 1:]),
    ("m[None, ..., 0]", X, lambda: m[None, ..., 0]),
    ("m[:, [2, 0, 2]]", X, lambda: m[:, [2, 0, 2]]),
    ("take(m, [1, 0])", X, lambda: np.take(m, [1, 0])),
    ("m.reshape(3, 2)", X, lambda: m.reshape(3, 2)),
    ("m.transpose(1, 0).flatten()", X, lambda: m.transpose(1, 0).flatten()),
    ("expand_dims(a, 0) + m", X, lambda: np.expand_dims(a, 0) + m),
    ("concatenate([a, b, a], axis=0)", X, lambda: np.concatenate([a, b, a])),
    ("stack([a, b], axis=1)", X, lambda: np.stack([a, b], axis=1)),
    ("split(m, 3, axis=1)[2]", X, lambda: np.split(m, 3, axis=1)[2]),
    ("broadcast_to(a, (2, 3)) * m", X, lambda: np.broadcast_to(a, (2, 3)) * m),
    ("round(m * 1.37, 1)", X, lambda: np.round(m * 1.37, 1)),
    ("floor(a) + ceil(b) + trunc(a)", X, lambda: np.floor(a) + np.ceil(b) + np.trunc(a)),
    ("a.astype(float32) * 3", X, lambda: a.astype(np.float32) * 3),
    ("a.astype('float16') / 3", X, lambda: a.astype(np.float16) / 3),
    ("cast(m, int32) + 1", X, lambda: m.astype(np.int32) + 1),
    ("arange(1, 2, 0.25)", {}, lambda: np.arange(1, 2, 0.25)),
    ("arange(7) % 3", {}, lambda: np.arange(7) % 3),
    ("zeros((2, 2), int8) + ones_like(m[:, :2], dtype=int8)", X,
     lambda: np.zeros((2, 2), np.int8) + np.ones_like(m[:, :2], dtype=np.int8)),
    ("full(3, 1.5) * a", X, lambda: np.full(3, 1.5) * a),
    ("ia // ib + ia % ib", I, lambda: ia // ib + ia % ib),
    ("ia & ib | ia ^ ~ib", I, lambda: ia & ib | ia ^ ~ib),
    ("ia << 2 >> 1", I, lambda: ia << 2 >> 1),
    ("ia / ib", I, lambda: ia / ib),
    ("ia.sum() + ia.mean()", I, lambda: ia.sum() + ia.mean()),
    ("sqrt(abs(ia))", I, lambda: np.sqrt(np.abs(ia))),
    ("ia * 2.5", I, lambda: ia * 2.5),
    ("one_hot(ia % 3, 3)", I, lambda: np.eye(3)[ia % 3]),
    ("[[1, 2], [3, 4]]", {}, lambda: np.array([[1, 2], [3, 4]])),
    ("[a, b]", X, lambda: np.array([a, b])),
    ("pi * e", {}, lambda: np.array(np.pi * np.e)),
    ("2 ** -1 + 7 // -2", {}, lambda: np.array(0.5 - 4)),
]
for expr, inputs, fn in cases:
    want = np.asarray(fn())
    try:
        got = evaluate(expr, inputs, dtype="int64" if inputs is I else None)
    except Exception as exc:  # noqa: BLE001 - report every failure
        failures.append(str(exc))
        continue
    rtol = {np.dtype(np.float16): 1e-3, np.dtype(np.float32): 1e-6}.get(want.dtype, 1e-13)
    check(expr, got, want, rtol)

# float32 inputs: weak literals keep float32 (NEP 50)
a32 = a.astype(np.float32)
got = evaluate("a * 2.5 + 1", {"a": a32}, dtype="float32")
check("float32 weak literals", got, a32 * np.float32(2.5) + np.float32(1), 0)
got = evaluate("x + 1", {"x": np.array([100, 127], dtype=np.int8)}, dtype="int8")
check("int8 wraps", got, np.array([101, -128], dtype=np.int8), 0)

# ---------------------------------------------------------------- exact JSON round trips
rng = np.random.default_rng(1234)
special = [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1 / 3,
           float("inf"), float("-inf"), float("nan"), 123456789.123456789, -1e-300]
vals64 = np.concatenate([np.array(special), rng.standard_normal(40) * 10.0 ** rng.integers(-30, 30, 40)])
got = evaluate("x", {"x": vals64})
if got.dtype != np.float64 or got.tobytes() != vals64.tobytes():
    failures.append("float64 JSON round trip is not exact: %r vs %r" % (got, vals64))
vals32 = np.concatenate([np.array([0.0, -0.0, 1e-45, 3.4028235e38, 0.1, np.inf, np.nan], np.float32),
                         (rng.standard_normal(40) * 10.0 ** rng.integers(-20, 20, 40)).astype(np.float32)])
got = evaluate("x", {"x": [float(v) for v in vals32]}, dtype="float32")
if got.dtype != np.float32 or got.tobytes() != vals32.tobytes():
    failures.append("float32 JSON round trip is not exact: %r vs %r" % (got, vals32))
vals16 = np.array([0.0, -0.0, 6e-08, 65504.0, 0.1, 1 / 3, np.inf, np.nan], np.float16)
got = evaluate("x", {"x": [float(v) for v in vals16]}, dtype="float16")
if got.dtype != np.float16 or got.tobytes() != vals16.tobytes():
    failures.append("float16 JSON round trip is not exact: %r vs %r" % (got, vals16))
i64 = np.array([-9223372036854775808, 9223372036854775807, 0, -1], np.int64)
got = evaluate("x", {"x": i64}, dtype="int64")
check("int64 extremes", got, i64, 0)
u64 = np.array([18446744073709551615, 0], np.uint64)
got = evaluate("x", {"x": u64}, dtype="uint64")
check("uint64 extremes", got, u64, 0)
rc, out, _ = run(["--format", "json", "x > 0", "x=[1,-1]"])
if out.strip() != '{"dtype":"bool","shape":[2],"data":[true,false]}':
    failures.append("bool JSON: %r" % out)
rc, out, _ = run(["--format", "json", "x", "x=-0.0"])
if out.strip() != '{"dtype":"float64","shape":[],"data":[-0.0]}':
    failures.append("0-d JSON: %r" % out)

# ---------------------------------------------------------------- files
npy_out = os.path.join(TMP, "eval_out.npy")
rc, out, err = run(["--format", "json", "--out", npy_out, "m * 2 + 0.1", "m=" + to_arg(m)])
if rc != 0:
    failures.append("--out failed: " + err)
else:
    loaded = np.load(npy_out)
    check("--out file", loaded, m * 2 + 0.1, 0)
    check("--out equals json", from_json(out), loaded, 0)
for arr in [rng.standard_normal((3, 4)).astype(np.float32), np.arange(-5, 7, dtype=np.int16),
            np.asfortranarray(rng.standard_normal((2, 3)))]:
    path = os.path.join(TMP, "in_%s.npy" % arr.dtype)
    np.save(path, arr)
    rc, out, err = run(["--format", "json", "x", "x=@" + path])
    if rc != 0:
        failures.append("@file failed: " + err)
    else:
        check("@file %s" % arr.dtype, from_json(out), arr, 0)

# ---------------------------------------------------------------- gradients
x = np.array([0.5, 1.5, -2.0, 3.25])
g = evaluate("sum(x**3)", {"x": x}, extra=["--grad", "x"])
check("grad x**3", g, 3 * x ** 2, 1e-14)
g = evaluate("tanh(x) * x", {"x": x}, extra=["--grad", "x"])
check("grad tanh(x)*x", g, (1 - np.tanh(x) ** 2) * x + np.tanh(x), 1e-13)
g = evaluate("log(x * x)", {"x": x}, extra=["--grad", "x"])
check("grad log(x*x)", g, 2 / x, 1e-14)
g = evaluate("softmax(x)[0]", {"x": x}, extra=["--grad", "x"])
s = sm(x)
check("grad softmax", g, s[0] * ((np.arange(4) == 0) - s), 1e-12)
g = evaluate("x @ w", {"x": x, "w": np.array([1.0, 2.0, 3.0, 4.0])}, extra=["--grad", "w"])
check("grad matmul", g, x, 0)
g = evaluate("x * 2", {"x": x, "y": 1.0}, extra=["--grad", "y"])
check("grad of an unused input", g, np.array(0.0), 0)

if failures:
    print("%d failures:" % len(failures))
    for f in failures:
        print("  " + f)
    sys.exit(1)
print("all checks passed (%d expressions)" % len(cases))
