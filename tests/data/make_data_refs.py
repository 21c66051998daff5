#!/usr/bin/python3
"""Test data and independent NumPy references for tests/data (run at build time).

Usage: make_data_refs.py OUTDIR FASHION_DIR

Writes under OUTDIR:
  fashion_refs.txt          per split: sizes, label counts, pixel sum, sampled pixels
                            (read here with gzip + numpy, independently of the C reader)
  fashion_{train,t10k}_colmean.npy   per-pixel mean of x/255 (float64), for `center`
  fashion_raw/              the t10k files gunzipped (raw IDX)
  cifar/                    synthetic CIFAR-10 binary batches + b01c float32 expectations
  npy/                      .npy inputs (several dtypes, Fortran order) + float32 expectations
  h5/data.h5                HDF5 inputs written by h5py (skipped when h5py is missing)
  pp/                       preprocessor inputs and float64 results of Pylearn2's formulas
"""
import gzip
import os
import shutil
import sys

import numpy as np


def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion(out, fdir):
    lines = []
    for split in ("train", "t10k"):
        x = read_idx_gz(os.path.join(fdir, split + "-images-idx3-ubyte.gz"))
        y = read_idx_gz(os.path.join(fdir, split + "-labels-idx1-ubyte.gz"))
        n, r, c = x.shape
        lines.append("split %s %d %d %d" % (split, n, r, c))
        lines.append("counts " + " ".join(str(int(v)) for v in np.bincount(y, minlength=10)))
        lines.append("sum %d" % int(x.astype(np.int64).sum()))
        rng = np.random.RandomState(1234 if split == "train" else 4321)
        flat = x.reshape(n, r * c)
        for t in range(40):
            i = int(rng.randint(n))
            nz = np.flatnonzero(flat[i])
            # half the samples anywhere, half among the row's non-zero (object) pixels
            j = int(rng.randint(r * c)) if t % 2 == 0 or nz.size == 0 else int(rng.choice(nz))
            v = int(flat[i, j])
            # the float32 value NumPy/Pylearn2 computes: x.astype(float32) / float32(255)
            f = np.float32(v) / np.float32(255)
            lines.append("px %d %d %d %d %.9g" % (i, j, v, int(y[i]), float(f)))
        lines.append("label_first " + " ".join(str(int(v)) for v in y[:20]))
        lines.append("end")
        mean = (flat.astype(np.float32) / np.float32(255)).astype(np.float64).mean(axis=0)
        np.save(os.path.join(out, "fashion_%s_colmean.npy" % split), mean)
    with open(os.path.join(out, "fashion_refs.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    raw = os.path.join(out, "fashion_raw")
    os.makedirs(raw, exist_ok=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(os.path.join(fdir, name + ".gz"), "rb") as src, \
                open(os.path.join(raw, name), "wb") as dst:
            shutil.copyfileobj(src, dst)


def cifar(out):
    d = os.path.join(out, "cifar")
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(7)
    for which, files in (("train", ["data_batch_%d.bin" % i for i in range(1, 6)]),
                         ("test", ["test_batch.bin"])):
        xs, ys = [], []
        for k, name in enumerate(files):
            nrec = 2 + k if which == "train" else 6
            labels = rng.randint(0, 10, size=nrec).astype(np.uint8)
            pix = rng.randint(0, 256, size=(nrec, 3072)).astype(np.uint8)
            recs = np.concatenate([labels[:, None], pix], axis=1)
            recs.tofile(os.path.join(d, name))
            xs.append(pix.reshape(nrec, 3, 32, 32).transpose(0, 2, 3, 1).reshape(nrec, 3072))
            ys.append(labels.astype(np.int64))
        np.save(os.path.join(d, "expect_%s_X.npy" % which),
                np.concatenate(xs).astype(np.float32))
        np.save(os.path.join(d, "expect_%s_y.npy" % which), np.concatenate(ys))


def npy(out):
    d = os.path.join(out, "npy")
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(11)
    arrays = {
        "x_f64": rng.randn(20, 7),
        "x_u8_4d": rng.randint(0, 256, size=(5, 4, 3, 2)).astype(np.uint8),
        "x_fortran": np.asfortranarray(rng.randn(6, 5).astype(np.float32)),
        "x_i16_3d": rng.randint(-300, 300, size=(4, 3, 5)).astype(np.int16),
        "y_i32": rng.randint(0, 4, size=20).astype(np.int32),
        "y_f64_2d": rng.randn(20, 3),
        "y_i64_col": rng.randint(0, 6, size=(20, 1)).astype(np.int64),
        "y_f32_1d": rng.randn(6).astype(np.float32),
        "y_neg": np.array([0, 1, -1, 2, 0], dtype=np.int64),
        "y_short": np.zeros(19, dtype=np.int32),
    }
    for name, a in arrays.items():
        np.save(os.path.join(d, name + ".npy"), a)
        if name.startswith("x_"):
            flat = np.ascontiguousarray(a).reshape(a.shape[0], -1).astype(np.float32)
            np.save(os.path.join(d, "expect_" + name + ".npy"), flat)
    return arrays


def h5(out, arrays):
    try:
        import h5py
    except ImportError:
        return
    d = os.path.join(out, "h5")
    os.makedirs(d, exist_ok=True)
    with h5py.File(os.path.join(d, "data.h5"), "w") as f:
        f["X"] = arrays["x_f64"]
        f["y"] = arrays["y_i32"]
        f["yf"] = arrays["y_f64_2d"].astype(np.float32)
        f["ycol"] = arrays["y_i64_col"]
        f["topo"] = arrays["x_u8_4d"]
        f["ytopo"] = np.arange(5, dtype=np.uint8) % 3
        f.create_dataset("Xz", data=arrays["x_f64"].astype(np.float32), compression="gzip",
                         chunks=(5, 7))
        f["names"] = np.array([b"a", b"b"])
        f.create_group("grp")


def pylearn2_gcn(X, scale=1., subtract_mean=True, use_std=False, sqrt_bias=0.,
                 min_divisor=1e-8):
    mean = X.mean(axis=1)
    X = X - mean[:, None] if subtract_mean else X.copy()
    if use_std:
        ddof = 1 if X.shape[1] != 1 else 0
        norms = np.sqrt(sqrt_bias + X.var(axis=1, ddof=ddof)) / scale
    else:
        norms = np.sqrt(sqrt_bias + (X ** 2).sum(axis=1)) / scale
    norms[norms < min_divisor] = 1.
    return X / norms[:, None]


def pylearn2_zca(X, n_components=None, n_drop_components=None, filter_bias=0.1):
    mean = X.mean(axis=0)
    Xc = X - mean
    cov = Xc.T.dot(Xc) / X.shape[0] + filter_bias * np.identity(X.shape[1])
    eigs, eigv = np.linalg.eigh(cov)
    if n_components:
        eigs, eigv = eigs[-n_components:], eigv[:, -n_components:]
    if n_drop_components:
        eigs, eigv = eigs[n_drop_components:], eigv[:, n_drop_components:]
    P = np.dot(eigv * np.sqrt(1.0 / eigs), eigv.T)
    return mean, P


def pylearn2_pca(X, k, whiten):
    mean = X.mean(axis=0)
    v, W = np.linalg.eigh(np.cov((X - mean).T))
    v, W = v[::-1][:k], W[:, ::-1][:, :k]
    for c in range(k):  # the C side's sign convention: largest |entry| positive
        if W[np.argmax(np.abs(W[:, c])), c] < 0:
            W[:, c] = -W[:, c]
    return mean, W, v


def preproc(out):
    d = os.path.join(out, "pp")
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(3)
    A = rng.randn(12, 12) * np.linspace(0.1, 3, 12)
    b = rng.randn(12) * 2
    tr = (rng.randn(300, 12).dot(A) + b).astype(np.float32)
    va = (rng.randn(40, 12).dot(A) + b).astype(np.float32)
    np.save(os.path.join(d, "train.npy"), tr)
    np.save(os.path.join(d, "valid.npy"), va)
    T, V = tr.astype(np.float64), va.astype(np.float64)
    res = {}
    res["std"] = (V - T.mean(axis=0)) / (1e-4 + T.std(axis=0))
    res["std_global"] = (V - T.mean()) / (0.5 + T.std())
    res["std_train"] = (T - T.mean(axis=0)) / (1e-4 + T.std(axis=0))
    res["gcn_default"] = pylearn2_gcn(V)
    res["gcn_std"] = pylearn2_gcn(V, scale=55., use_std=True, sqrt_bias=10.)
    res["gcn_nosub"] = pylearn2_gcn(V, subtract_mean=False, sqrt_bias=1.)
    for tag, kw in (("zca", {}), ("zca_k5", {"n_components": 5}),
                    ("zca_drop2", {"n_drop_components": 2, "filter_bias": 0.01})):
        mean, P = pylearn2_zca(T, **kw)
        res[tag] = (V - mean).dot(P)
        res[tag + "_train"] = (T - mean).dot(P)
    for tag, k, wh in (("pca4", 4, False), ("pca4w", 4, True), ("pca_all", 12, False)):
        mean, W, v = pylearn2_pca(T, k, wh)
        Y = (V - mean).dot(W)
        res[tag] = Y / np.sqrt(v) if wh else Y
    # Pipeline(GCN(scale 2), ZCA(filter_bias 0.1)): GCN on both splits, ZCA fitted on train
    Tg, Vg = pylearn2_gcn(T, scale=2.), pylearn2_gcn(V, scale=2.)
    mean, P = pylearn2_zca(Tg)
    res["pipe"] = (Vg - mean).dot(P)
    for k, v in res.items():
        np.save(os.path.join(d, "ref_" + k + ".npy"), v)


def main():
    out, fdir = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(fdir, "train-images-idx3-ubyte.gz")):
        fashion(out, fdir)
    cifar(out)
    arrays = npy(out)
    h5(out, arrays)
    preproc(out)
    with open(os.path.join(out, "stamp"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
