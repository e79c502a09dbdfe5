#!/usr/bin/env python3
"""Train the bundled target score model (an ε-prediction U-Net on 64×64 images) and export it
to ONNX with a DG Studio manifest. One command; checkpoints and resumes; deterministic.

  python3 tools/train-score-model.py --data data/emoji/google/train --out .cache/noto-unet --minutes 8

Runs on CUDA when present (bf16 autocast), else CPU (slow: use --max-steps for a smoke test).
The schedule is DDPM linear β 1e-4…0.02, T = 1000 (dg-math §1); the network takes the integer
step. Works with PyTorch 1.13 (Debian) and 2.x.
"""
import argparse
import contextlib
import inspect
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


def load_images(folder: str) -> torch.Tensor:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith('.png'))
    if not names:
        raise SystemExit(f'no PNG images in {folder}')
    arr = np.stack([np.asarray(Image.open(os.path.join(folder, n)).convert('RGB').resize((64, 64)), dtype=np.uint8) for n in names])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()  # [N, 3, 64, 64] uint8


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int, groups: int):
        super().__init__()
        self.n1 = nn.GroupNorm(groups, cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n2 = nn.GroupNorm(groups, cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(F.silu(temb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        scale = 1 / math.sqrt(math.sqrt(c))
        a = torch.softmax(torch.einsum('bct,bcs->bts', q * scale, k * scale), dim=-1)
        return x + self.proj(torch.einsum('bts,bcs->bct', a, v).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, ch: int = 64, mult=(1, 2, 2, 2), attn=(16, 8), groups: int = 32, res: int = 64):
        super().__init__()
        tdim = ch * 4
        self.ch = ch
        self.temb = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.inp = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        chans = [ch]
        cur, r = ch, res
        for i, m in enumerate(mult):
            for _ in range(2):
                blocks = nn.ModuleList([ResBlock(cur, ch * m, tdim, groups)])
                cur = ch * m
                if r in attn:
                    blocks.append(Attention(cur, groups))
                self.down.append(blocks)
                chans.append(cur)
            if i < len(mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(cur, cur, 3, stride=2, padding=1)]))
                chans.append(cur)
                r //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, tdim, groups), Attention(cur, groups), ResBlock(cur, cur, tdim, groups)])
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mult))):
            for _ in range(3):
                blocks = nn.ModuleList([ResBlock(cur + chans.pop(), ch * m, tdim, groups)])
                cur = ch * m
                if r in attn:
                    blocks.append(Attention(cur, groups))
                self.up.append(blocks)
            if i > 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(cur, cur, 3, padding=1)]))
                r *= 2
        self.out = nn.Sequential(nn.GroupNorm(groups, cur), nn.SiLU(), nn.Conv2d(cur, 3, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @staticmethod
    def _run(blocks, h, temb):
        for b in blocks:
            h = b(h, temb) if isinstance(b, ResBlock) else b(h)
        return h

    def forward(self, x, t):
        temb = self.temb(timestep_embedding(t, self.ch))
        h = self.inp(x)
        skips = [h]
        for blocks in self.down:
            h = self._run(blocks, h, temb)
            skips.append(h)
        h = self._run(self.mid, h, temb)
        for blocks in self.up:
            if isinstance(blocks[0], ResBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(blocks, h, temb)
        return self.out(h)


@torch.no_grad()
def sdedit_ddim(model: nn.Module, abar: torch.Tensor, x0: torch.Tensor, t0: torch.Tensor, steps: int, g: torch.Generator) -> torch.Tensor:
    """Unguided SDEdit (dg-math §5): noise x0 to step round(t0·(T−1)), then deterministic DDIM down to 0.
    One t0 per image; the discriminator's fakes, made here because the GPU is here."""
    T = abar.shape[0]
    i0 = (t0 * (T - 1)).round().long()
    eps = torch.randn(x0.shape, device=x0.device, generator=g)
    a0 = abar[i0][:, None, None, None]
    x = a0.sqrt() * x0 + (1 - a0).sqrt() * eps
    fracs = torch.linspace(1, 0, steps + 1, device=x0.device)
    for k in range(steps):
        i = (i0.float() * fracs[k]).round().long()
        j = (i0.float() * fracs[k + 1]).round().long()
        ai = abar[i][:, None, None, None]
        with torch.autocast(device_type='cuda', dtype=torch.bfloat16) if x0.is_cuda else contextlib.nullcontext():
            e = model(x, i).float()
        x0_hat = ((x - (1 - ai).sqrt() * e) / ai.sqrt()).clamp(-1, 1)
        aj = abar[j][:, None, None, None]
        last = (k == steps - 1)
        x = x0_hat if last else aj.sqrt() * x0_hat + (1 - aj).sqrt() * e
    return x


def translate_folder(model, abar, src: str, out: str, t0_range, steps: int, seed: int, dev: str) -> int:
    names = sorted(n for n in os.listdir(src) if n.lower().endswith('.png'))
    os.makedirs(out, exist_ok=True)
    g = torch.Generator(device=dev).manual_seed(seed + 12345)
    lo, hi = t0_range
    for s in range(0, len(names), 256):
        part = names[s:s + 256]
        x0 = torch.stack([torch.from_numpy(np.asarray(Image.open(os.path.join(src, n)).convert('RGB').resize((64, 64)), dtype=np.float32))
                          for n in part]).permute(0, 3, 1, 2).to(dev) / 127.5 - 1
        # t0 spread evenly over the range, by index (deterministic)
        t0 = torch.tensor([lo + (hi - lo) * ((s + k) % 7) / 6 for k in range(len(part))], device=dev)
        y = sdedit_ddim(model, abar, x0, t0, steps, g)
        pix = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        for n, p in zip(part, pix):
            Image.fromarray(p).save(os.path.join(out, n))
    return len(names)


def export_onnx(model: nn.Module, x: torch.Tensor, t: torch.Tensor, path: str) -> None:
    """TorchScript-based export (the graph DG Studio is tested on); PyTorch ≥ 2.9 defaults to the dynamo
    exporter, so ask for the classic one and fall back to dynamo only if it is gone."""
    kwargs = dict(input_names=['x', 't'], output_names=['out'], opset_version=17,
                  dynamic_axes={'x': {0: 'N'}, 't': {0: 'N'}, 'out': {0: 'N'}})
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        try:
            torch.onnx.export(model, (x, t), path, dynamo=False, **kwargs)
            return
        except Exception as e:  # the classic exporter was removed: use dynamo with a dynamic batch
            print(f'classic ONNX export failed ({e}); trying the dynamo exporter', flush=True)
            batch = torch.export.Dim('N')
            torch.onnx.export(model, (x, t), path, dynamo=True, input_names=['x', 't'], output_names=['out'],
                              opset_version=18, dynamic_shapes=({0: batch}, {0: batch}), external_data=False)
            return
    torch.onnx.export(model, (x, t), path, **kwargs)


def verify_onnx(model: nn.Module, path: str) -> None:
    """Run the exported file with ONNX Runtime (when installed) on a batch of 3 and compare with PyTorch."""
    try:
        import onnxruntime as ort
    except ImportError:
        print('onnxruntime is not installed here: the export was not cross-checked', flush=True)
        return
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 64, 64, generator=g)
    t = torch.tensor([3, 400, 999], dtype=torch.int64)
    with torch.no_grad():
        want = model(x, t).numpy()
    got = ort.InferenceSession(path, providers=['CPUExecutionProvider']).run(['out'], {'x': x.numpy(), 't': t.numpy()})[0]
    err = float(np.abs(got - want).max())
    print(f'ONNX Runtime vs PyTorch on 3 inputs: max |Δ| = {err:.2e}', flush=True)
    if not err < 1e-3:
        raise SystemExit(f'the exported {path} disagrees with the PyTorch model (max |Δ| = {err})')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', required=True, help='folder of 64×64 target-domain PNGs (the training split)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--minutes', type=float, default=8.0, help='wall-clock training budget (export comes after)')
    ap.add_argument('--max-steps', type=int, default=0, help='stop after this many steps (0: no limit)')
    ap.add_argument('--batch', type=int, default=256)
    ap.add_argument('--lr', type=float, default=2e-4)
    ap.add_argument('--ch', type=int, default=64)
    ap.add_argument('--mult', default='1,2,2,2')
    ap.add_argument('--attn', default='16,8')
    ap.add_argument('--groups', type=int, default=32)
    ap.add_argument('--ema', type=float, default=0.9995)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--resume', action='store_true')
    ap.add_argument('--name', default='Noto emoji U-Net (ε, DDPM linear, 64×64)')
    ap.add_argument('--translate', help='after training: a folder of source images to translate without guidance (discriminator fakes)')
    ap.add_argument('--translate-out', help='where those translations go (PNG, same names)')
    ap.add_argument('--t0-range', default='0.2,0.8', help='the translations use t0 evenly spread over this range')
    ap.add_argument('--translate-steps', type=int, default=20)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    os.makedirs(a.out, exist_ok=True)
    data = load_images(a.data).to(dev)
    mult = tuple(int(v) for v in a.mult.split(','))
    attn = tuple(int(v) for v in a.attn.split(',') if v)
    model = UNet(a.ch, mult, attn, a.groups).to(dev)
    ema = UNet(a.ch, mult, attn, a.groups).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float().to(dev)
    step = 0
    ckpt = os.path.join(a.out, 'ckpt.pt')
    if a.resume and os.path.exists(ckpt):
        s = torch.load(ckpt, map_location=dev)
        model.load_state_dict(s['model'])
        ema.load_state_dict(s['ema'])
        opt.load_state_dict(s['opt'])
        step = s['step']
        print(f'resumed at step {step}', flush=True)
    params = sum(p.numel() for p in model.parameters())
    print(f'{params / 1e6:.2f}M parameters, {len(data)} images, device {dev}', flush=True)

    def save():
        torch.save({'model': model.state_dict(), 'ema': ema.state_dict(), 'opt': opt.state_dict(), 'step': step}, ckpt + '.tmp')
        os.replace(ckpt + '.tmp', ckpt)

    start = time.time()
    last_save = start
    g = torch.Generator(device=dev).manual_seed(a.seed + step)
    while True:
        if a.max_steps and step >= a.max_steps:
            break
        if time.time() - start > a.minutes * 60:
            break
        idx = torch.randint(0, len(data), (a.batch,), device=dev, generator=g)
        x0 = data[idx].float() / 127.5 - 1
        flip = torch.rand(a.batch, device=dev, generator=g) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        t = torch.randint(0, 1000, (a.batch,), device=dev, generator=g)
        eps = torch.randn(x0.shape, device=dev, generator=g)
        ab = abar[t][:, None, None, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        with torch.autocast(device_type='cuda', dtype=torch.bfloat16) if dev == 'cuda' else contextlib.nullcontext():
            loss = F.mse_loss(model(xt, t).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(a.ema).add_(pm, alpha=1 - a.ema)
        step += 1
        if step % 100 == 0 or step == 1:
            el = time.time() - start
            print(f'step {step} loss {loss.item():.4f} {step * a.batch / max(el, 1e-9):.0f} img/s {el:.0f}s', flush=True)
        if time.time() - last_save > 120:
            save()
            last_save = time.time()
    save()

    if a.translate:
        ema.eval()
        lo, hi = (float(v) for v in a.t0_range.split(','))
        n = translate_folder(ema, abar, a.translate, a.translate_out, (lo, hi), a.translate_steps, a.seed, dev)
        print(f'translated {n} images of {a.translate} into {a.translate_out}', flush=True)

    # export the EMA weights: x [N,3,64,64] in [-1,1], t [N] int64 step → ε̂
    ema.eval().float().cpu()
    x = torch.zeros(2, 3, 64, 64)
    t = torch.tensor([10, 500], dtype=torch.int64)
    onnx_path = os.path.join(a.out, 'model.onnx')
    export_onnx(ema, x, t, onnx_path)
    verify_onnx(ema, onnx_path)
    manifest = {
        'format': 'dg-studio/score-model@1',
        'name': a.name,
        'description': f'ε-prediction U-Net ({params / 1e6:.1f}M parameters), {step} steps of {a.batch}, EMA {a.ema}, trained by tools/train-score-model.py',
        'onnx': 'model.onnx',
        'io': {'x': 'x', 't': 't', 'output': 'out'},
        'prediction': 'eps',
        'schedule': {'kind': 'ddpm-linear', 'steps': 1000, 'betaStart': 1e-4, 'betaEnd': 0.02},
        'timeInput': {'kind': 'step', 'scale': 1},
        'timeDType': 'int64',
        'dataShape': [3, 64, 64],
        'valueRange': [-1, 1],
        'license': 'weights: MIT; trained on Noto Emoji (Apache License 2.0)',
    }
    with open(os.path.join(a.out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    print(f'exported {onnx_path} after {step} steps', flush=True)


if __name__ == '__main__':
    main()
