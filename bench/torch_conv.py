"""PyTorch baseline of bench/bench_conv.c: the Pylearn2 convolutional tutorial network
(conv 5x5 x 64 + bias + relu + max pool 4x4 stride 2 ceil, twice, then softmax regression on
the 64x3x3 features, mean crossentropy of integer labels), float32, on the CPU.

It is driven over stdin/stdout by bench_conv so that the two implementations' repetitions can
be interleaved round by round (A B A B ...) while each side times itself:
    setup N      build the network for a batch of N (random data), warm up; prints "ok"
    step         one forward + backward (gradients of every parameter); prints the seconds
    fwd          one forward pass without autograd; prints the seconds
    quit
Usage: torch_conv.py THREADS   (torch.set_num_threads(THREADS), matching mltrain's threads)
Exits 77 when torch cannot be imported (bench_conv then reports the baseline as skipped).
"""
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover
    print("skip: %s" % e, flush=True)
    sys.exit(77)


class Net:
    def __init__(self, n):
        g = torch.Generator().manual_seed(1234)
        self.x = torch.rand(n, 1, 28, 28, generator=g)
        self.y = torch.randint(0, 10, (n,), generator=g)

        def param(*shape, scale=0.05):
            return ((torch.rand(*shape, generator=g) * 2 - 1) * scale).requires_grad_()

        self.w1, self.b1 = param(64, 1, 5, 5), param(64, scale=0.0)
        self.w2, self.b2 = param(64, 64, 5, 5), param(64, scale=0.0)
        self.w3, self.b3 = param(576, 10), param(10, scale=0.0)
        self.params = [self.w1, self.b1, self.w2, self.b2, self.w3, self.b3]

    def forward(self):
        h = F.max_pool2d(F.relu(F.conv2d(self.x, self.w1, self.b1)), 4, 2, ceil_mode=True)
        h = F.max_pool2d(F.relu(F.conv2d(h, self.w2, self.b2)), 4, 2, ceil_mode=True)
        return F.cross_entropy(h.flatten(1) @ self.w3 + self.b3, self.y)

    def step(self):
        for p in self.params:
            p.grad = None
        self.forward().backward()

    def fwd(self):
        with torch.no_grad():
            self.forward()


def main():
    torch.set_num_threads(int(sys.argv[1]))
    net = None
    print("torch %s, %d threads" % (torch.__version__, torch.get_num_threads()), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "setup":
            net = Net(int(cmd[1]))
            for _ in range(3):
                net.step()
                net.fwd()
            print("ok", flush=True)
        elif cmd[0] in ("step", "fwd"):
            fn = net.step if cmd[0] == "step" else net.fwd
            t0 = time.perf_counter()
            fn()
            print("%.9f" % (time.perf_counter() - t0), flush=True)
        elif cmd[0] == "quit":
            break


if __name__ == "__main__":
    main()
