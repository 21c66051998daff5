"""Reference outputs of conv2d and pooling computed by PyTorch, for tests/jit/test_conv.c.

Usage: torch_conv_ref.py OUTDIR. Writes float64 .npy files:
  c<i>_x, c<i>_w, c<i>_dy     inputs of convolution case i (deterministic random values)
  c<i>_y, c<i>_dx, c<i>_dw    F.conv2d(x, w, stride, padding) and its gradients for dy
  c<i>_cfg                    int64 [sh, sw, ph, pw]
  p<i>_x, p<i>_dy             inputs of pooling case i
  p<i>_y, p<i>_dx             max_pool2d / avg_pool2d(count_include_pad=False) and the gradient
  p<i>_cfg                    int64 [kh, kw, sh, sw, ph, pw, ceil_mode, is_max]
Exits 77 (the tests' SKIP code) when torch or numpy cannot be imported.
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print("skip: %s" % e)
    sys.exit(77)

CONV = [  # (n, c, h, w), (o, kh, kw), stride, pad
    ((2, 3, 7, 6), (4, 3, 2), (1, 1), (0, 0)),
    ((2, 2, 9, 8), (3, 3, 3), (2, 2), (1, 1)),
    ((3, 4, 6, 7), (2, 1, 1), (1, 2), (0, 0)),
    ((2, 1, 28, 28), (8, 5, 5), (1, 1), (0, 0)),
    ((2, 8, 11, 11), (4, 5, 5), (1, 1), (2, 2)),
    ((1, 3, 10, 9), (2, 4, 3), (3, 2), (1, 0)),
]
POOL = [  # (n, c, h, w), (kh, kw), stride, pad, ceil_mode
    ((2, 3, 24, 24), (4, 4), (2, 2), (0, 0), True),
    ((2, 3, 7, 7), (4, 4), (2, 2), (0, 0), True),
    ((2, 2, 9, 8), (3, 2), (2, 2), (1, 1), False),
    ((2, 2, 9, 8), (3, 3), (2, 1), (1, 1), True),
    ((1, 2, 5, 6), (2, 2), (2, 2), (0, 0), False),
    ((1, 2, 10, 10), (5, 3), (3, 3), (2, 1), True),
]


def save(outdir, name, a):
    np.save(os.path.join(outdir, name + ".npy"), np.ascontiguousarray(a))


def main():
    outdir = sys.argv[1]
    rng = np.random.default_rng(1234)
    torch.set_num_threads(1)
    for i, (xs, (o, kh, kw), s, p) in enumerate(CONV):
        x = torch.tensor(rng.uniform(-1, 1, xs), dtype=torch.float64, requires_grad=True)
        w = torch.tensor(rng.uniform(-1, 1, (o, xs[1], kh, kw)), dtype=torch.float64,
                         requires_grad=True)
        y = F.conv2d(x, w, stride=s, padding=p)
        dy = torch.tensor(rng.uniform(-1, 1, tuple(y.shape)), dtype=torch.float64)
        y.backward(dy)
        for k, v in (("x", x), ("w", w), ("dy", dy), ("y", y), ("dx", x.grad), ("dw", w.grad)):
            save(outdir, "c%d_%s" % (i, k), v.detach().numpy())
        save(outdir, "c%d_cfg" % i, np.array([s[0], s[1], p[0], p[1]], dtype=np.int64))
    j = 0
    for xs, k, s, p, ceil_mode in POOL:
        for is_max in (1, 0):
            x = torch.tensor(rng.uniform(-1, 1, xs), dtype=torch.float64, requires_grad=True)
            if is_max:
                y = F.max_pool2d(x, k, s, p, ceil_mode=ceil_mode)
            else:
                y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=False)
            dy = torch.tensor(rng.uniform(-1, 1, tuple(y.shape)), dtype=torch.float64)
            y.backward(dy)
            for n, v in (("x", x), ("dy", dy), ("y", y), ("dx", x.grad)):
                save(outdir, "p%d_%s" % (j, n), v.detach().numpy())
            cfg = [k[0], k[1], s[0], s[1], p[0], p[1], int(ceil_mode), is_max]
            save(outdir, "p%d_cfg" % j, np.array(cfg, dtype=np.int64))
            j += 1
    print("wrote %d conv and %d pool cases to %s" % (len(CONV), j, outdir))


if __name__ == "__main__":
    main()
