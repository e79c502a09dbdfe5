#!/usr/bin/env python3
"""The share of the noise a score model leaves at small t (issue 26): for each t, ‖x̂0 − x0‖² ÷ ‖x_t/√ᾱ − x0‖² over
the first 64 held-out Noto images with fixed noise (1: the model removes nothing; 0: all of it), and the ε-MSE.
Checkpoints of tools/train-score-model.py (ε or EDM), EMA weights. The record's table in
tools/pretrained/noto-emoji-unet-edm/README.md was made by this.

  OMP_NUM_THREADS=2 /usr/bin/python3 tools/heldout-residual.py [checkpoint.safetensors ...]
      (default: the bundled model's and the EDM run's checkpoints)
"""
import importlib.util
import json
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('tsm', os.path.join(here, 'train-score-model.py'))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
TIMES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def load(path, abar):
    t, meta = m.load_safetensors(path)
    arch = json.loads(meta['arch'])
    pre = arch.pop('precond', None)
    arch.pop('p_mean', None)
    arch.pop('p_std', None)
    net = m.UNet(**arch)
    names = [n for n, _ in net.named_parameters()]
    net.load_state_dict({n: t['ema.' + n] for n in names})
    net.eval()
    return m.EDMPrecond(net, abar) if pre == 'edm' else net


def main():
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float()
    x0 = m.load_heldout(os.path.join(here, '..', 'data', 'emoji', 'google', 'test'), 64)
    paths = sys.argv[1:] or [os.path.join(here, 'pretrained', d, 'checkpoint.safetensors') for d in ('noto-emoji-unet', 'noto-emoji-unet-edm')]
    print('checkpoint | ' + ' | '.join(f't {t}' for t in TIMES) + '   (residual share; ε-MSE in brackets)')
    for path in paths:
        net = load(path, abar)
        g = torch.Generator().manual_seed(777)
        cells = []
        for tt in TIMES:
            i = round(tt * 999)
            eps = torch.randn(x0.shape, generator=g)
            xt = abar[i].sqrt() * x0 + (1 - abar[i]).sqrt() * eps
            with torch.no_grad():
                e = torch.cat([net(xt[s:s + 32], torch.full((len(xt[s:s + 32]),), i)) for s in range(0, len(xt), 32)])
            x0h = (xt - (1 - abar[i]).sqrt() * e) / abar[i].sqrt()
            resid = float(((x0h - x0) ** 2).mean() / ((xt / abar[i].sqrt() - x0) ** 2).mean())
            cells.append(f'{resid:.3f} ({float(((e - eps) ** 2).mean()):.4f})')
        print(f'{os.path.relpath(path)} | ' + ' | '.join(cells), flush=True)


if __name__ == '__main__':
    main()
