#!/usr/bin/python3
"""PyTorch CPU baseline for `npm run bench -- trainer`: one training step of each model, same shapes
and thread count as the tfjs side. Prints one JSON object per model on stdout.

    /usr/bin/python3 bench/torch_step.py --threads 2 [--steps 10] [--warmup 2] [--models espcn,d_final,g_final]

Models (numbers from docs/seed.md; written here from it, NCHW as PyTorch users run them):
  espcn    the reference step of docs/backends.md: conv5 3->64 ReLU, conv3 64->32 ReLU, conv3 32->12,
           pixel shuffle x2; MSE, Adam(1e-3); batch 8 of 3x32x32.
  d_final  docs/seed.md 5.2 discriminator (bias-free convs + BatchNorm + LeakyReLU 0.1, 3 max-pools,
           dilations 2 and 4, 1x1 head); D step = D(fake), D(real), mean(softplus(Dy - Dl)), Adam;
           batch 4 of 3x128x128.
  g_final  docs/seed.md 3.3 generator (16 MyRRDB blocks, pixel shuffle x2); G step = MSE only, Adam;
           batch 1 of 3x64x64 LR -> 3x128x128.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def lrelu():
    return nn.LeakyReLU(0.1)


class Espcn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 64, 5, padding=2)
        self.c2 = nn.Conv2d(64, 32, 3, padding=1)
        self.c3 = nn.Conv2d(32, 12, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(self.c3(F.relu(self.c2(F.relu(self.c1(x))))), 2)


def d_block(cin, cout, k=3, dilation=1):
    pad = dilation * (k - 1) // 2
    return [nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout), lrelu()]


class DFinal(nn.Module):
    def __init__(self, m=32):
        super().__init__()
        layers = []
        layers += d_block(3, m, 5) + d_block(m, m) + [nn.MaxPool2d(2)]
        layers += d_block(m, 2 * m) + d_block(2 * m, 2 * m) + [nn.MaxPool2d(2)]
        layers += d_block(2 * m, 4 * m) + d_block(4 * m, 4 * m) + [nn.MaxPool2d(2)]
        layers += d_block(4 * m, 8 * m) + d_block(8 * m, 8 * m, dilation=2) + d_block(8 * m, 8 * m, dilation=4)
        layers += d_block(8 * m, 8 * m) + d_block(8 * m, 16 * m, k=1) + d_block(16 * m, m, k=1)
        layers += [nn.Conv2d(m, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def conv3(cin, cout, dilation=1):
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)


class Drb3(nn.Module):
    def __init__(self, nf=64):
        super().__init__()
        self.c1, self.c2, self.c3 = conv3(nf, nf), conv3(2 * nf, nf), conv3(3 * nf, nf)

    def forward(self, x):
        f1 = F.leaky_relu(self.c1(x), 0.1)
        f2 = F.leaky_relu(self.c2(torch.cat([x, f1], 1)), 0.1)
        return x + 0.2 * self.c3(torch.cat([x, f1, f2], 1))


class Dilated(nn.Module):
    def __init__(self, nf=64):
        super().__init__()
        self.c1, self.c2, self.c4 = conv3(nf, nf, 1), conv3(nf, nf, 2), conv3(nf, nf, 4)
        self.out = nn.Conv2d(nf, nf, 1)

    def forward(self, x):
        y = F.leaky_relu(self.c1(x), 0.1)
        y = F.leaky_relu(self.c2(y), 0.1)
        y = F.leaky_relu(self.c4(y), 0.1)
        return x + 0.2 * self.out(y)


class Rrdb(nn.Module):
    def __init__(self, nf=64):
        super().__init__()
        self.seq = nn.Sequential(Dilated(nf), Drb3(nf), Dilated(nf), Drb3(nf), Dilated(nf), Drb3(nf))

    def forward(self, x):
        return x + 0.2 * self.seq(x)


class GFinal(nn.Module):
    def __init__(self, nf=64, blocks=16):
        super().__init__()
        self.head = nn.Conv2d(3, nf, 5, padding=2)
        self.body = nn.Sequential(*[Rrdb(nf) for _ in range(blocks)])
        self.up1 = conv3(nf, 2 * nf)
        self.up2 = nn.Conv2d(2 * nf, 4 * nf, 1)
        self.hr = conv3(nf, nf)
        self.last = conv3(nf, 3)

    def forward(self, x):
        y = self.body(self.head(x))
        y = F.leaky_relu(self.up2(F.leaky_relu(self.up1(y), 0.1)), 0.1)
        y = F.pixel_shuffle(y, 2)
        return self.last(F.leaky_relu(self.hr(y), 0.1))


def params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


AUTOCAST = False


def adam_step(model, lr, loss_fn):
    """One training step: zero the grads, loss_fn(model).backward(), Adam (eps 1e-8). With --autocast the
    forward runs under CPU autocast to bfloat16 (PyTorch's mixed precision on CPU: convolutions in bf16,
    fp32 weights and optimiser)."""
    opt = torch.optim.Adam(model.parameters(), lr, eps=1e-8)

    def step():
        opt.zero_grad()
        if AUTOCAST:
            with torch.autocast('cpu', dtype=torch.bfloat16):
                loss = loss_fn(model)
        else:
            loss = loss_fn(model)
        loss.backward()
        opt.step()
        return loss
    return step


def make(name):
    g = torch.Generator().manual_seed(1)
    if name == 'espcn':
        model = Espcn()
        x, y = torch.rand(8, 3, 32, 32, generator=g), torch.rand(8, 3, 64, 64, generator=g)
        return model, adam_step(model, 1e-3, lambda m: F.mse_loss(m(x), y))
    if name == 'd_final':
        model = DFinal()
        fake, real = torch.rand(4, 3, 128, 128, generator=g), torch.rand(4, 3, 128, 128, generator=g)
        return model, adam_step(model, 1e-4, lambda m: F.softplus(m(fake) - m(real)).mean())
    if name == 'g_final':
        model = GFinal()
        x, y = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 128, 128, generator=g)
        return model, adam_step(model, 1e-4, lambda m: F.mse_loss(m(x), y))
    raise SystemExit(f'unknown model {name!r}')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--models', default='espcn,d_final,g_final')
    ap.add_argument('--autocast', action='store_true', help='forward under torch.autocast("cpu", bfloat16)')
    a = ap.parse_args()
    global AUTOCAST
    AUTOCAST = a.autocast
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    for name in a.models.split(','):
        model, step = make(name)
        model.train()
        for _ in range(a.warmup):
            step()
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({'model': name, 'backend': f'torch-{torch.__version__}-cpu' + ('-autocast-bf16' if a.autocast else ''), 'threads': a.threads,
                          'ms': statistics.median(times), 'params': params(model)}), flush=True)


if __name__ == '__main__':
    sys.exit(main())
