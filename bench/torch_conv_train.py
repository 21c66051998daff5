#!/usr/bin/env python3
"""The convnet of jobs/fashion_mnist_conv.yaml in PyTorch, for bench_train (through
torch_mlp.py --serve conv BATCH THREADS): two ConvRectifiedLinear layers (5x5 kernels, 32 and
64 channels, Pylearn2's untied biases [C, H, W], ReLU, 2x2 max pooling with stride 2) and a
Softmax layer on the 64x4x4 features; cost = cross-entropy + WeightDecay(5e-5 each layer:
coeff * sum(W^2)); after every update the max_kernel_norm / max_col_norm constraints
(Pylearn2: W *= clip(norm, 0, limit) / (1e-7 + norm) per kernel / per output unit).

build() returns (model, constrain, weight_decay). Run alone it times STEPS steps, on the CPU or
on DEVICE (cuda:N; see torch_mlp.py for what a GPU step includes):
    torch_conv_train.py BATCH THREADS STEPS [DEVICE]"""
import sys

import torch

LIMIT = 1.9365
DECAY = 5e-5


class ConvReLUPool(torch.nn.Module):
    def __init__(self, cin, cout, size_in):
        super().__init__()
        det = size_in - 4
        self.conv = torch.nn.Conv2d(cin, cout, 5, bias=False)
        self.b = torch.nn.Parameter(torch.zeros(cout, det, det))
        torch.nn.init.uniform_(self.conv.weight, -0.05, 0.05)

    def forward(self, x):
        return torch.nn.functional.max_pool2d(torch.relu(self.conv(x) + self.b), 2, 2)


def build():
    h2 = ConvReLUPool(1, 32, 28)
    h3 = ConvReLUPool(32, 64, 12)
    y = torch.nn.Linear(64 * 4 * 4, 10)
    torch.nn.init.normal_(y.weight, 0.0, 0.05)
    torch.nn.init.zeros_(y.bias)
    model = torch.nn.Sequential(h2, h3, torch.nn.Flatten(), y)

    def weight_decay():
        return DECAY * (h2.conv.weight.square().sum() + h3.conv.weight.square().sum() +
                        y.weight.square().sum())

    @torch.no_grad()
    def constrain():
        for w in (h2.conv.weight, h3.conv.weight, y.weight):
            norms = w.reshape(w.shape[0], -1).norm(dim=1)
            scale = norms.clamp(0, LIMIT) / (1e-7 + norms)
            w.mul_(scale.reshape((-1,) + (1,) * (w.dim() - 1)))

    return model, constrain, weight_decay


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    import os
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_mlp
    t = torch_mlp.Trainer("conv", int(sys.argv[1]), int(sys.argv[2]), *sys.argv[4:])
    for _ in range(3):
        t.step()
    times = sorted(t.timed(int(sys.argv[3])))
    print("median_ms %.4f" % times[len(times) // 2])
