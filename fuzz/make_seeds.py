#!/usr/bin/python3
"""Writes the generated part of the fuzz seed corpus (fuzz/corpus/<name>/): small .npy, IDX,
CIFAR-10 and checkpoint files, expression strings from the parser's tests, and experiment
files from jobs/ and the Pylearn2 conformance set. Needs numpy and h5py (Debian: python3-numpy,
python3-h5py). Deterministic: rerunning gives the same files. Usage: fuzz/make_seeds.py."""
import gzip
import io
import os
import re
import shutil
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
rng = np.random.RandomState(8)


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()


def make_npy():
    arrays = {
        "f4_2d": rng.rand(4, 3).astype("<f4"),
        "f8_1d": rng.rand(5),
        "i8_labels": np.arange(4, dtype="<i8") % 3,
        "u1_3d": (rng.rand(2, 3, 4) * 255).astype("u1"),
        "i2_be": np.arange(6, dtype=">i2").reshape(2, 3),
        "f4_fortran": np.asfortranarray(rng.rand(3, 4).astype("<f4")),
        "b1": np.array([True, False, True]),
        "f2": np.arange(4, dtype="<f2"),
        "empty": np.zeros((0, 3), dtype="<f4"),
        "scalar": np.array(3.5),
        "b01c_4d": rng.rand(2, 2, 2, 3).astype("<f4"),
        "u8": np.arange(3, dtype="<u8"),
        "i4_col": np.arange(4, dtype="<i4").reshape(4, 1),
    }
    for name, a in arrays.items():
        out("npy", name + ".npy", npy_bytes(a))
    out("npy", "v2_f4.npy", npy_bytes(rng.rand(2, 2).astype("<f4"), (2, 0)))
    out("npy", "v3_f8.npy", npy_bytes(rng.rand(3), (3, 0)))
    bf = npy_bytes(np.arange(4, dtype="<u2")).replace(b"'<u2'", b"'<V2'")
    out("npy", "bf16_v2.npy", bf)
    out("npy", "truncated.npy", npy_bytes(rng.rand(4, 4).astype("<f4"))[:100])


def idx_bytes(a, code, be=True):
    a = np.ascontiguousarray(a)
    head = struct.pack(">BBBB", 0, 0, code, a.ndim) + b"".join(struct.pack(">I", d) for d in a.shape)
    if a.dtype.itemsize > 1:
        a = a.astype(a.dtype.newbyteorder(">" if be else "<"))
    return head + a.tobytes()


def make_idx():
    files = {
        "images_u1": idx_bytes((rng.rand(3, 4, 4) * 255).astype("u1"), 0x08),
        "labels_u1": idx_bytes(np.array([0, 3, 9, 1], dtype="u1"), 0x08),
        "i1_2d": idx_bytes(np.arange(-3, 3, dtype="i1").reshape(2, 3), 0x09),
        "i2_2d": idx_bytes(np.arange(6, dtype="i2").reshape(3, 2), 0x0B),
        "i4_3d": idx_bytes(np.arange(8, dtype="i4").reshape(2, 2, 2), 0x0C),
        "f4_4d": idx_bytes(rng.rand(2, 2, 2, 2).astype("f4"), 0x0D),
        "f8_2d": idx_bytes(rng.rand(2, 3), 0x0E),
        "empty": idx_bytes(np.zeros((0, 4, 4), dtype="u1"), 0x08),
    }
    for name, raw in files.items():
        out("idx", name + ".raw", b"\x00" + raw)         # raw file
        out("idx", name + ".gzwrap", b"\x01" + raw)      # gzipped by the target
        out("idx", name + ".ds", b"\x02" + raw)          # also as a dataset (memory)
        out("idx", name + ".lazy", b"\x06" + raw)        # also as a lazy dataset
        out("idx", name + ".gz", b"\x02" + gzip.compress(raw, mtime=0))  # a real .gz file
    out("idx", "truncated.raw", b"\x02" + files["images_u1"][:30])


def make_cifar():
    def recs(n, bad_label=None):
        b = bytearray()
        for i in range(n):
            b.append(bad_label if (bad_label is not None and i == n - 1) else i % 10)
            b += bytes((rng.rand(3072) * 256).astype("u1"))
        return bytes(b)
    out("cifar", "one", b"\x00" + recs(1))
    out("cifar", "two_rescale_center", b"\x03" + recs(2))
    out("cifar", "three_start1_stop3", b"\x34" + recs(3))
    out("cifar", "two_stop1", b"\x10" + recs(2))
    out("cifar", "bad_label", b"\x00" + recs(2, bad_label=10))
    out("cifar", "truncated", b"\x00" + recs(2)[:5000])
    out("cifar", "empty", b"\x00")
    out("cifar", "start_past_end", b"\x0c" + recs(1))


def make_ckpt():
    import h5py
    def ck(name, fn, **kw):
        b = io.BytesIO()
        with h5py.File(b, "w", **kw) as f:
            f.attrs["format"] = "mltrain-checkpoint"
            f.attrs["version"] = 1
            fn(f)
        out("ckpt", name + ".h5", b.getvalue())

    def full(f):
        f.attrs["epochs_seen"] = 3
        f.attrs["learning_rate"] = 0.125
        f.attrs["model_yaml"] = "!obj:MLP {layers: [h0]}"
        f["params/h0_W"] = rng.rand(3, 4).astype("f4")
        f["params/h0_b"] = rng.rand(4)
        f["optimizer/idx"] = np.array([[1, 2], [3, 4]], dtype="i8")
        f["scalar"] = np.int32(-5)
        f["empty"] = np.zeros((0, 3), dtype="f4")
        for ch in ("train_objective", "valid_y_misclass"):
            g = f.create_group("monitors/monitor/" + ch)
            g["value"] = rng.rand(3)
            for k in ("epoch", "batches", "examples"):
                g[k] = np.arange(3, dtype="i8")
            g["seconds"] = np.arange(3, dtype="f8") / 2

    def minimal(f):
        f["w"] = np.arange(3, dtype="f4")

    def attrs_only(f):
        f.attrs["s"] = np.bytes_(b"fixed")
        f.attrs["i16"] = np.int16(7)
        f.attrs["f32"] = np.float32(1.5)

    def ragged_monitor(f):
        g = f.create_group("monitors/monitor/c")
        g["value"] = np.arange(3.0)
        for k in ("epoch", "batches", "examples"):
            g[k] = np.arange(2, dtype="i8")
        g["seconds"] = np.arange(3.0)

    def chunked(f):
        f.create_dataset("params/W", data=rng.rand(8, 8).astype("f4"), chunks=(4, 4),
                         fletcher32=True)

    ck("full", full, track_order=True)
    ck("full_latest", full, libver="latest")
    ck("minimal", minimal)
    ck("attrs_only", attrs_only)
    ck("ragged_monitor", ragged_monitor)
    ck("chunked_fletcher", chunked, track_order=True)
    b = io.BytesIO()
    with h5py.File(b, "w") as f:
        f["x"] = np.arange(3)
    out("ckpt", "not_a_checkpoint.h5", b.getvalue())
    make_ckpt_sealed()


def make_ckpt_sealed():
    """A checkpoint with mltrain's integrity header (docs/checkpoints.md, "Integrity header")
    in a 512-byte user block: the length and SHA-256 checks pass and HDF5 reads the rest."""
    import hashlib
    import h5py
    b = io.BytesIO()
    with h5py.File(b, "w", userblock_size=512) as f:
        f.attrs["format"] = "mltrain-checkpoint"
        f.attrs["version"] = 1
        f["params/w"] = np.arange(6, dtype="f4").reshape(2, 3)
    data = bytearray(b.getvalue())
    data[:56] = (b"MLTRAIN-CKPT" + struct.pack("<IQ", 1, len(data)) +
                 hashlib.sha256(bytes(data[512:])).digest())
    out("ckpt", "sealed.h5", bytes(data))


def make_expr():
    src = open(os.path.join(ROOT, "tests", "graph", "test_parse.c")).read()
    seen = []
    for m in re.finditer(r'(?:SAME\(|EQUIV\(|PARSE\(g,|CHECK_FORMAT\(|CHECK_TYPE\(g,|mt_graph_parse\(g,)\s*"((?:[^"\\]|\\.)*)"', src):
        s = bytes(m.group(1), "utf-8").decode("unicode_escape").encode("latin-1", "replace")
        if s and s not in seen:
            seen.append(s)
    extra = [b"x @ W + b", b"softmax(x @ W, axis=-1)", b"x[:, 1:3]", b"sum(x, axis=0)",
             b"t[..., None, ::-1]", b"where(bl, a, b)", b"a +", b"((((a))))", b"f(", b"a[1:2:0]",
             b"\xc3\xa9 + a", b"a if b else c", b"mean(t, axis=(0, 2), keepdims=True)"]
    for s in extra:
        if s not in seen:
            seen.append(s)
    step = max(1, len(seen) // 50)
    picked = seen[::step][:50] + [s for s in extra if s not in seen[::step][:50]]
    for i, s in enumerate(picked):
        out("expr", "e%02d" % i, s)


def make_yaml():
    jobs = os.path.join(ROOT, "jobs")
    for n in sorted(os.listdir(jobs)):
        if n.endswith(".yaml"):
            shutil.copy(os.path.join(jobs, n), os.path.join(CORPUS, "yaml", "jobs__" + n))
    conf = os.path.join(ROOT, "..", "shared", "conformance", "pylearn2")
    if os.path.isdir(conf):
        for n in sorted(os.listdir(conf)):
            if n.endswith(".yaml"):
                shutil.copy(os.path.join(conf, n), os.path.join(CORPUS, "yaml", "pylearn2__" + n))
    small = {
        "anchors": b"!obj:Train {\n  dataset: &d !obj:MNIST {which_set: train},\n"
                   b"  model: !obj:MLP {nvis: 784, layers: [!obj:Softmax {layer_name: y, n_classes: 10, irange: 0.}]},\n"
                   b"  algorithm: !obj:SGD {learning_rate: 1e-3, batch_size: 10, monitoring_dataset: {train: *d}},\n}\n",
        "laughs": b"a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c]\n",
        "phases": b"- !obj:Train {dataset: !obj:MNIST {which_set: train}, model: !pkl: 'x.pkl'}\n- !obj:Train {}\n",
        "template": b"!obj:Train {save_path: '%(save)s', epochs: %(n)i}\n",
        "vars": b"!obj:Train {save_path: '${PYLEARN2_TRAIN_FILE_FULL_STEM}.pkl'}\n",
        "scalars": b"[0x1F, 0b101, 017, 1_000, .5, -.5, 1e-3, .inf, .nan, yes, off, ~, '', !!str 3, !float 2]\n",
        "tags": b"{a: !uniform [0, 1], b: !choice [x, y], c: !param lr, d: !import foo}\n",
        "dup": b"{a: 1, a: 2}\n",
        "deep": b"[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]\n",
        "include": b"!include 'missing.yaml'\n",
    }
    for n, t in small.items():
        out("yaml", n + ".yaml", t)


if __name__ == "__main__":
    os.makedirs(os.path.join(CORPUS, "yaml"), exist_ok=True)
    make_npy()
    make_idx()
    make_cifar()
    make_ckpt()
    make_expr()
    make_yaml()
    for t in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, t)
        if os.path.isdir(d):
            print(t, len(os.listdir(d)), "files")
