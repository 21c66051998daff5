#!/usr/bin/env python3
"""PyTorch baselines for bench_train: one SGD+momentum training step of an MLP (ReLU hidden
layers, softmax cross-entropy with integer labels) or of the convnet of
jobs/fashion_mnist_conv.yaml (bench/torch_conv_train.py builds it), float32, on the CPU or, with
DEVICE = cuda:N, on a GPU.

Each step does what mltrain's training loop does per batch: take the next minibatch of a
shuffled epoch from an in-memory dataset (index_select of rows), forward, backward, update
(Pylearn2's Momentum rule: v = mu v - lr g; p = p + v, written as torch.optim.SGD's
equivalent buf = mu buf + g; p -= lr buf), and, for the convnet, its norm constraints.

On a GPU the model and the optimizer state live on the device; the dataset stays in (pinned) host
memory and each step copies its batch in, as mltrain's training loop does, and reads the loss
back (.item(), a synchronization: mltrain reads the cost of every step). TF32 is off for
matrix products and cuDNN convolutions, so both sides compute in float32, unless
MLTRAIN_CUDA_TF32=1 (bench_train --tf32) turns it on for both sides.

usage:
  torch_mlp.py SIZES BATCH THREADS STEPS [DEVICE]     e.g. torch_mlp.py 784,1024,1024,10 128 2 50
      one process: 5 warm-up steps, then one line per timed step "step_ms <value>" and
      "median_ms <value>";
  torch_mlp.py --serve MODEL BATCH THREADS [DEVICE]     MODEL = SIZES, "conv" or a recurrent
                                                       net "lstm:H", "gru:H", "rnn:H" (the
                                                       784 inputs as 28 rows of 28, hidden H,
                                                       its last state -> Linear -> 10);
                                                       DEVICE = cpu
                                                       (default) or cuda:N
      coprocess of bench_train: prints "ready" after warm-up, then for every line "run N"
      on stdin runs N steps and prints "times t1 ... tN" (milliseconds); exits on EOF."""
import os
import sys
import time

import torch


class Recurrent(torch.nn.Module):
    """Fashion-MNIST row by row: 28 steps of 28 pixels through nn.LSTM / nn.GRU / nn.RNN
    (tanh), the last hidden state through a Linear layer to 10 classes."""

    def __init__(self, kind, hidden):
        super().__init__()
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
        self.rnn = cls(28, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        seq, _ = self.rnn(x.view(x.shape[0], 28, 28))
        return self.out(seq[:, -1])


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class Trainer:
    """The model, a synthetic dataset of 64 batches and the per-step work."""

    def __init__(self, model_spec, batch, threads, device="cpu"):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.cuda.set_device(self.device)
            tf32 = os.environ.get("MLTRAIN_CUDA_TF32", "0") not in ("", "0")
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        self.batch = batch
        self.constrain = None
        if model_spec == "conv":
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import torch_conv_train
            self.model, self.constrain, self.weight_decay = torch_conv_train.build()
            shape, classes = (1, 28, 28), 10
        elif ":" in model_spec:
            kind, hidden = model_spec.split(":")
            self.model, self.weight_decay = Recurrent(kind, int(hidden)), None
            shape, classes = (784,), 10
        else:
            sizes = [int(s) for s in model_spec.split(",")]
            self.model, self.weight_decay = mlp(sizes), None
            shape, classes = (sizes[0],), sizes[-1]
        n = 64 * batch
        self.X = torch.rand((n,) + shape)
        self.Y = torch.randint(0, classes, (n,))
        if self.cuda:
            self.model.to(self.device)
            self.X = self.X.pin_memory()
            self.Y = self.Y.pin_memory()
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
        if self.cuda:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
        self.opt.zero_grad(set_to_none=True)
        loss = self.lossf(self.model(x), y)
        if self.weight_decay is not None:
            loss = loss + self.weight_decay()
        loss.backward()
        self.opt.step()
        if self.constrain is not None:
            self.constrain()
        if self.cuda:
            return loss.item()
        return loss

    def timed(self, steps):
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step()
            times.append((time.perf_counter() - t0) * 1e3)
        return times


def describe(t):
    if t.cuda:
        return "torch %s on %s" % (torch.__version__, torch.cuda.get_device_name(t.device))
    return "torch %s threads %d" % (torch.__version__, torch.get_num_threads())


def serve(model_spec, batch, threads, device="cpu"):
    t = Trainer(model_spec, batch, threads, device)
    for _ in range(5):
        t.step()
    print("ready " + describe(t), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2 or parts[0] != "run":
            print("error: expected 'run N', got %r" % line, flush=True)
            continue
        times = t.timed(int(parts[1]))
        print("times " + " ".join("%.5f" % v for v in times), flush=True)


def main():
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:])
        return
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    t = Trainer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[5:])
    for _ in range(5):
        t.step()
    times = t.timed(int(sys.argv[4]))
    for v in times:
        print("step_ms %.4f" % v)
    times.sort()
    print("median_ms %.4f" % times[len(times) // 2])


if __name__ == "__main__":
    main()
