#!/usr/bin/env python3
"""PyTorch baselines for bench_train: one SGD+momentum training step of an MLP (ReLU hidden
layers, softmax cross-entropy with integer labels) or of the convnet of
jobs/fashion_mnist_conv.yaml (bench/torch_conv_train.py builds it), float32, CPU.

Each step does what mltrain's training loop does per batch: take the next minibatch of a
shuffled epoch from an in-memory dataset (index_select of rows), forward, backward, update
(Pylearn2's Momentum rule: v = mu v - lr g; p = p + v, written as torch.optim.SGD's
equivalent buf = mu buf + g; p -= lr buf), and, for the convnet, its norm constraints.

usage:
  torch_mlp.py SIZES BATCH THREADS STEPS       e.g. torch_mlp.py 784,1024,1024,10 128 2 50
      one process: 5 warm-up steps, then one line per timed step "step_ms <value>" and
      "median_ms <value>";
  torch_mlp.py --serve MODEL BATCH THREADS     MODEL = SIZES or "conv"
      coprocess of bench_train: prints "ready" after warm-up, then for every line "run N"
      on stdin runs N steps and prints "times t1 ... tN" (milliseconds); exits on EOF."""
import os
import sys
import time

import torch


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class Trainer:
    """The model, a synthetic dataset of 64 batches and the per-step work."""

    def __init__(self, model_spec, batch, threads):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.batch = batch
        self.constrain = None
        if model_spec == "conv":
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import torch_conv_train
            self.model, self.constrain, self.weight_decay = torch_conv_train.build()
            shape, classes = (1, 28, 28), 10
        else:
            sizes = [int(s) for s in model_spec.split(",")]
            self.model, self.weight_decay = mlp(sizes), None
            shape, classes = (sizes[0],), sizes[-1]
        n = 64 * batch
        self.X = torch.rand((n,) + shape)
        self.Y = torch.randint(0, classes, (n,))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.5)
        self.lossf = torch.nn.CrossEntropyLoss()
        self.perm = torch.randperm(n)
        self.pos = 0

    def step(self):
        if self.pos + self.batch > self.X.shape[0]:
            self.perm = torch.randperm(self.X.shape[0])
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        x = self.X.index_select(0, idx)
        y = self.Y.index_select(0, idx)
        self.opt.zero_grad(set_to_none=True)
        loss = self.lossf(self.model(x), y)
        if self.weight_decay is not None:
            loss = loss + self.weight_decay()
        loss.backward()
        self.opt.step()
        if self.constrain is not None:
            self.constrain()
        return loss

    def timed(self, steps):
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step()
            times.append((time.perf_counter() - t0) * 1e3)
        return times


def serve(model_spec, batch, threads):
    t = Trainer(model_spec, batch, threads)
    for _ in range(5):
        t.step()
    print("ready torch %s threads %d" % (torch.__version__, torch.get_num_threads()), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2 or parts[0] != "run":
            print("error: expected 'run N', got %r" % line, flush=True)
            continue
        times = t.timed(int(parts[1]))
        print("times " + " ".join("%.5f" % v for v in times), flush=True)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    t = Trainer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    for _ in range(5):
        t.step()
    times = t.timed(int(sys.argv[4]))
    for v in times:
        print("step_ms %.4f" % v)
    times.sort()
    print("median_ms %.4f" % times[len(times) // 2])


if __name__ == "__main__":
    main()
