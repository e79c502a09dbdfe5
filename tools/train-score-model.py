#!/usr/bin/env python3
"""Train the bundled target score model (an ε-prediction U-Net on 64×64 images) and export it
to ONNX with a DG Studio manifest. One command; checkpoints and resumes; deterministic.

  python3 tools/train-score-model.py --data data/emoji/google/train --out .cache/noto-unet --minutes 8

Runs on CUDA when present (bf16 autocast), else CPU (slow: use --max-steps for a smoke test).
The schedule is DDPM linear β 1e-4…0.02, T = 1000 (dg-math §1); the network takes the integer
step. Works with PyTorch 1.13 (Debian) and 2.x.
"""
import argparse
import base64
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


def save_safetensors(path: str, tensors: dict, metadata: dict) -> None:
    """Write tensors (float32; names ending in a BF16 marker are stored as bfloat16) in the safetensors
    format, atomically: the project's checkpoint format in both trainers (src/main/engine/safetensors.ts)."""
    header, blobs, off = {'__metadata__': {k: str(v) for k, v in metadata.items()}}, [], 0
    for name, (t, dtype) in tensors.items():
        t = t.detach().cpu().float().contiguous()
        if dtype == 'BF16':
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().astype('<f4').tobytes()
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    head = json.dumps(header).encode()
    head += b' ' * ((8 - len(head) % 8) % 8)
    with open(path + '.tmp', 'wb') as f:
        f.write(len(head).to_bytes(8, 'little'))
        f.write(head)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + '.tmp', path)


def load_safetensors(path: str):
    """(tensors as float32 torch tensors, metadata) from a safetensors file with F32/BF16 tensors."""
    with open(path, 'rb') as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], 'little')
    header = json.loads(buf[8:8 + n])
    meta = header.pop('__metadata__', {})
    data = buf[8 + n:]
    out = {}
    for name, info in header.items():
        a, b = info['data_offsets']
        if info['dtype'] == 'BF16':
            bits = np.frombuffer(data[a:b], dtype='<u2').astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif info['dtype'] == 'F32':
            arr = np.frombuffer(data[a:b], dtype='<f4')
        else:
            raise SystemExit(f'{path}: tensor {name} has dtype {info["dtype"]}; only F32 and BF16 are read')
        out[name] = torch.from_numpy(arr.copy()).reshape(info['shape'])
    return out, meta


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
        # bmm on (transposed) views, not einsum: PyTorch 1.13's CPU einsum here ran at a few GFLOP/s
        # and took three quarters of a training step; the ONNX export is the same MatMuls
        a = torch.softmax(torch.bmm((q * scale).transpose(1, 2), k * scale), dim=-1)  # [b, t, s]
        return x + self.proj(torch.bmm(v, a.transpose(1, 2)).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, ch: int = 64, mult=(1, 2, 2, 2), attn=(16, 8), groups: int = 32, res: int = 64, patch: int = 1):
        super().__init__()
        tdim = ch * 4
        self.ch = ch
        # patch p > 1: space-to-depth at the input, depth-to-space at the output (Hoogeboom et al. 2023,
        # "simple diffusion"): the network runs at res/p with 3·p² image channels; `attn` names resolutions
        # of that inner grid.
        self.patch = patch
        res //= patch
        self.temb = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.inp = nn.Conv2d(3 * patch * patch, ch, 3, padding=1)
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
        self.out = nn.Sequential(nn.GroupNorm(groups, cur), nn.SiLU(), nn.Conv2d(cur, 3 * patch * patch, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @staticmethod
    def _run(blocks, h, temb):
        for b in blocks:
            h = b(h, temb) if isinstance(b, ResBlock) else b(h)
        return h

    def forward(self, x, t):
        temb = self.temb(timestep_embedding(t, self.ch))
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)
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
        h = self.out(h)
        return F.pixel_shuffle(h, self.patch) if self.patch > 1 else h


class EDMPrecond(nn.Module):
    """EDM preconditioning (dg-math §9; Karras et al. 2022, Table 1) around the U-Net F, seen from outside
    as the ε-prediction network of the DDPM schedule: forward(x_vp, step) → ε̂, so the export, the held-out
    error, the SDEdit fakes and the app's samplers are the same as for a plain ε U-Net. Inside, with
    x_ve = x_vp/√ᾱ and σ = √((1 − ᾱ)/ᾱ) (§1): D = c_skip·x_ve + c_out·F(c_in·x_ve; c_noise) and
    ε̂ = (x_ve − D)/σ. c_noise is the (fractional) DDPM step of σ, so F's time embedding sees the same
    numbers as an ε U-Net's."""
    SIGMA_DATA = 0.5

    def __init__(self, net: nn.Module, abar: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer('abar', abar.float().clone(), persistent=False)

    def denoise(self, x_ve, sigma, step):
        sd = self.SIGMA_DATA
        s = sigma[:, None, None, None]
        c_skip = sd * sd / (s * s + sd * sd)
        c_out = s * sd / torch.sqrt(s * s + sd * sd)
        c_in = 1 / torch.sqrt(s * s + sd * sd)
        return c_skip * x_ve + c_out * self.net(c_in * x_ve, step), c_skip, c_out

    def forward(self, x, t):
        ab = self.abar[t.long()]
        sigma = torch.sqrt((1 - ab) / ab)
        x_ve = x / ab.sqrt()[:, None, None, None]
        d, _, _ = self.denoise(x_ve, sigma, t.float())
        return (x_ve - d) / sigma[:, None, None, None]


def edm_training_loss(pre: EDMPrecond, x0, log_sigma_table, t_hi: int, p_mean: float, p_std: float, g):
    """EDM's loss (dg-math §9): ln σ ~ N(P_mean, P_std²) clipped to the trained steps' σ range, weight
    λ(σ) = (σ² + σ_data²)/(σ·σ_data)², i.e. a unit-weight MSE of F against (x0 − c_skip·x_ve)/c_out."""
    n = x0.shape[0]
    lo, hi = float(log_sigma_table[0]), float(log_sigma_table[t_hi])
    ln_s = (torch.randn(n, device=x0.device, generator=g) * p_std + p_mean).clamp(lo, hi)
    sigma = ln_s.exp()
    # the fractional DDPM step of σ (ln σ rises monotonically with the step)
    k = torch.searchsorted(log_sigma_table[:t_hi + 1].contiguous(), ln_s.contiguous()).clamp(1, t_hi)
    a, b = log_sigma_table[k - 1], log_sigma_table[k]
    step = (k - 1).float() + (ln_s - a) / (b - a)
    eps = torch.randn(x0.shape, device=x0.device, generator=g)
    x_ve = x0 + sigma[:, None, None, None] * eps
    d, c_skip, c_out = pre.denoise(x_ve, sigma, step)
    return (((d - x0) / c_out) ** 2).mean()


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


def load_heldout(folder: str, count: int) -> torch.Tensor:
    """The first `count` images (sorted) of a held-out folder, in [-1, 1]."""
    return load_images(folder)[:count].float() / 127.5 - 1


EVAL_TIMES = (0.2, 0.35, 0.5, 0.8)


@torch.no_grad()
def heldout_error(model: nn.Module, abar: torch.Tensor, x0: torch.Tensor, batch: int = 32) -> list:
    """Held-out denoising error: mean ε-MSE at each t of EVAL_TIMES (step round(t·(T−1))), fixed noise."""
    g = torch.Generator(device=x0.device).manual_seed(777)
    out = []
    for tt in EVAL_TIMES:
        i = round(tt * (abar.shape[0] - 1))
        eps = torch.randn(x0.shape, device=x0.device, generator=g)
        xt = abar[i].sqrt() * x0 + (1 - abar[i]).sqrt() * eps
        err = 0.0
        for s in range(0, len(x0), batch):
            t = torch.full((len(x0[s:s + batch]),), i, dtype=torch.int64, device=x0.device)
            err += float(((model(xt[s:s + batch], t).float() - eps[s:s + batch]) ** 2).sum())
        out.append(err / eps.numel())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', required=True, help='folder of 64×64 target-domain PNGs (the training split)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--minutes', type=float, default=8.0, help='wall-clock training budget of this run (export comes after)')
    ap.add_argument('--max-steps', type=int, default=0, help='stop at this many steps in all (0: no limit)')
    ap.add_argument('--batch', type=int, default=256)
    ap.add_argument('--lr', type=float, default=2e-4)
    ap.add_argument('--warmup', type=int, default=200, help='linear learning-rate warm-up, in steps')
    ap.add_argument('--ch', type=int, default=64)
    ap.add_argument('--mult', default='1,2,2,2')
    ap.add_argument('--attn', default='16,8', help='resolutions (of the inner grid, after --patch) with self-attention')
    ap.add_argument('--groups', type=int, default=32)
    ap.add_argument('--patch', type=int, default=1, help='space-to-depth factor at the input (2 cuts the full-resolution cost ~4×)')
    ap.add_argument('--t-max', type=float, default=1.0, help='train only on t ≤ t_max (SDEdit never needs t above the largest t0)')
    ap.add_argument('--precond', choices=['eps', 'edm'], default='eps',
                    help='eps: ε-prediction with the DDPM "simple" loss; edm: EDM preconditioning and loss (dg-math §9)')
    ap.add_argument('--p-mean', type=float, default=-1.2, help='edm: mean of ln σ for training (σ in VE units)')
    ap.add_argument('--p-std', type=float, default=1.2, help='edm: standard deviation of ln σ for training')
    ap.add_argument('--ema', type=float, default=0.9995)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--resume', action='store_true')
    ap.add_argument('--ckpt-minutes', type=float, default=2.0, help='checkpoint every this many minutes (and on SIGINT/SIGTERM)')
    ap.add_argument('--heldout', help='held-out target images: their denoising error is logged to eval.csv')
    ap.add_argument('--eval-minutes', type=float, default=10.0)
    ap.add_argument('--eval-count', type=int, default=64)
    ap.add_argument('--no-export', action='store_true', help='stop after training (checkpoint only)')
    ap.add_argument('--name', default='Noto emoji U-Net (ε, DDPM linear, 64×64)')
    ap.add_argument('--translate', help='after training: a folder of source images to translate without guidance (discriminator fakes)')
    ap.add_argument('--translate-out', help='where those translations go (PNG, same names)')
    ap.add_argument('--t0-range', default='0.2,0.8', help='the translations use t0 evenly spread over this range')
    ap.add_argument('--translate-steps', type=int, default=20)
    a = ap.parse_args()

    # Debian's PyTorch starts with one thread: use every core unless OMP_NUM_THREADS says otherwise
    if 'OMP_NUM_THREADS' not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(a.seed)
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    os.makedirs(a.out, exist_ok=True)
    data = load_images(a.data).to(dev)
    mult = tuple(int(v) for v in a.mult.split(','))
    attn = tuple(int(v) for v in a.attn.split(',') if v)
    arch = dict(ch=a.ch, mult=list(mult), attn=list(attn), groups=a.groups, patch=a.patch)
    if a.precond != 'eps':  # recorded only when not the default, so old checkpoints still match
        arch.update(precond=a.precond)
    # the training noise levels are a setting, not the architecture: a stretch may change them; each change is kept
    noise = dict(p_mean=a.p_mean, p_std=a.p_std)
    noise_history = [dict(step=0, **noise)] if a.precond == 'edm' else []
    unet_arch = dict(ch=a.ch, mult=list(mult), attn=list(attn), groups=a.groups, patch=a.patch)
    model = UNet(**unet_arch).to(dev)
    ema = UNet(**unet_arch).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0).float().to(dev)
    log_sigma = (0.5 * torch.log((1 - abar.double()) / abar.double())).float()  # ln σ_VE of each step
    # what the rest of this script calls "the model": an ε network of the DDPM steps
    ema_eps = EDMPrecond(ema, abar) if a.precond == 'edm' else ema
    t_hi = round(a.t_max * 999)  # largest training step
    step, images, wall = 0, 0, 0.0
    g = torch.Generator(device=dev).manual_seed(a.seed)
    ckpt = os.path.join(a.out, 'checkpoint.safetensors')
    names = [n for n, _ in model.named_parameters()]
    if a.resume and os.path.exists(ckpt):
        tensors, meta = load_safetensors(ckpt)
        saved_arch = json.loads(meta.get('arch', 'null'))
        if saved_arch and 'p_mean' in saved_arch:  # checkpoints before the noise history kept them in the architecture
            meta.setdefault('noise_history', json.dumps([dict(step=0, p_mean=saved_arch.pop('p_mean'), p_std=saved_arch.pop('p_std'))]))
        if saved_arch and (saved_arch != json.loads(json.dumps(arch)) or float(meta.get('t_max', a.t_max)) != a.t_max):
            raise SystemExit(f'{ckpt}: made with {saved_arch}, t_max {meta.get("t_max")}; this run asks for {arch}, t_max {a.t_max}')
        model.load_state_dict({n: tensors['model.' + n] for n in names})
        ema.load_state_dict({n: tensors['ema.' + n] for n in names})
        adam_step = int(meta.get('adam_step', 0))
        if adam_step:
            sd = opt.state_dict()
            sd['state'] = {i: {'step': torch.tensor(float(adam_step)), 'exp_avg': tensors['adam_m.' + n].to(dev),
                               'exp_avg_sq': tensors['adam_v.' + n].to(dev)} for i, n in enumerate(names)}
            opt.load_state_dict(sd)
        step, images, wall = int(meta['step']), int(meta['images']), float(meta['wall_seconds'])
        if a.precond == 'edm':
            noise_history = json.loads(meta.get('noise_history', '[]')) or noise_history
            last = noise_history[-1]
            if (last['p_mean'], last['p_std']) != (a.p_mean, a.p_std):
                noise_history.append(dict(step=step, **noise))
                print(f'noise levels from step {step}: ln σ ~ N({a.p_mean}, {a.p_std}²) (were N({last["p_mean"]}, {last["p_std"]}²))', flush=True)
        if meta.get('torch_rng'):
            try:
                g.set_state(torch.tensor(list(base64.b64decode(meta['torch_rng'])), dtype=torch.uint8))
            except RuntimeError:  # a checkpoint made on another device (a CUDA generator's state on the CPU, say)
                g.manual_seed(a.seed + step)
                print(f'the saved random state is another device\'s: drawing from seed {a.seed} + step {step}', flush=True)
        print(f'resumed at step {step} ({images} images, {wall / 60:.1f} min of training)', flush=True)
    params = sum(p.numel() for p in model.parameters())
    print(f'{params / 1e6:.2f}M parameters, {len(data)} images, device {dev}, {torch.get_num_threads()} threads, '
          f'patch {a.patch}, t ≤ {a.t_max}', flush=True)
    heldout = load_heldout(a.heldout, a.eval_count).to(dev) if a.heldout else None
    eval_csv = os.path.join(a.out, 'eval.csv')

    def save():
        tensors = {}
        params = dict(model.named_parameters())
        for n in names:
            tensors['model.' + n] = (params[n], 'F32')
        for n, p in ema.named_parameters():
            tensors['ema.' + n] = (p, 'F32')
        st = opt.state_dict()['state']
        adam_step = 0
        for i, n in enumerate(names):
            if i in st:  # bfloat16: the second moment underflows float16
                tensors['adam_m.' + n] = (st[i]['exp_avg'], 'BF16')
                tensors['adam_v.' + n] = (st[i]['exp_avg_sq'], 'BF16')
                adam_step = int(st[i]['step'])
        meta = {'format': 'dg-studio/score-checkpoint@1', 'trainer': 'tools/train-score-model.py', 'arch': json.dumps(arch),
                'noise_history': json.dumps(noise_history), 't_max': a.t_max, 'step': step, 'images': images, 'wall_seconds': f'{wall:.1f}', 'adam_step': adam_step,
                'batch': a.batch, 'lr': a.lr, 'warmup': a.warmup, 'ema': a.ema, 'seed': a.seed, 'torch_rng': base64.b64encode(bytes(g.get_state().tolist())).decode()}
        save_safetensors(ckpt, tensors, meta)

    def evaluate():
        ema.eval()
        errs = heldout_error(ema_eps, abar, heldout)
        new = not os.path.exists(eval_csv)
        with open(eval_csv, 'a') as f:
            if new:
                f.write('step,images,train_minutes,' + ','.join(f'eps_mse_t{tt}' for tt in EVAL_TIMES) + '\n')
            f.write(f'{step},{images},{wall / 60:.2f},' + ','.join(f'{e:.5f}' for e in errs) + '\n')
        print(f'held-out ε-MSE (EMA) at t = {EVAL_TIMES}: ' + ' '.join(f'{e:.4f}' for e in errs), flush=True)

    stop = []
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    run_start = time.time()
    last_save = last_eval = run_start
    last_log = (time.time(), images)
    while not stop:
        if a.max_steps and step >= a.max_steps:
            break
        if time.time() - run_start > a.minutes * 60:
            break
        t_step = time.time()
        idx = torch.randint(0, len(data), (a.batch,), device=dev, generator=g)
        x0 = data[idx].float() / 127.5 - 1
        flip = torch.rand(a.batch, device=dev, generator=g) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
        with torch.autocast(device_type='cuda', dtype=torch.bfloat16) if dev == 'cuda' else contextlib.nullcontext():
            if a.precond == 'edm':
                loss = edm_training_loss(EDMPrecond(model, abar), x0, log_sigma, t_hi, a.p_mean, a.p_std, g)
            else:
                t = torch.randint(0, t_hi + 1, (a.batch,), device=dev, generator=g)
                eps = torch.randn(x0.shape, device=dev, generator=g)
                ab = abar[t][:, None, None, None]
                xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
                loss = F.mse_loss(model(xt, t).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group['lr'] = a.lr * min(1.0, (step + 1) / max(a.warmup, 1))
        opt.step()
        # EMA with a warm-up (decay ≤ (1+n)/(10+n)) so that short runs are not dominated by the initial weights
        decay = min(a.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        step += 1
        images += a.batch
        wall += time.time() - t_step
        now = time.time()
        if step % 50 == 0 or step == 1:
            rate = (images - last_log[1]) / max(now - last_log[0], 1e-9)
            last_log = (now, images)
            print(f'step {step} loss {loss.item():.4f} {rate:.1f} img/s, {images} images, {wall / 60:.1f} min', flush=True)
        if heldout is not None and now - last_eval > a.eval_minutes * 60:
            evaluate()
            last_eval = time.time()
        if now - last_save > a.ckpt_minutes * 60:
            save()
            last_save = time.time()
    save()
    if heldout is not None:
        evaluate()
    print(f'checkpoint at step {step} ({images} images, {wall / 60:.1f} min of training)' + (' — stopped by signal' if stop else ''), flush=True)
    if a.no_export:
        return

    if a.translate:
        ema.eval()
        lo, hi = (float(v) for v in a.t0_range.split(','))
        n = translate_folder(ema_eps, abar, a.translate, a.translate_out, (lo, hi), a.translate_steps, a.seed, dev)
        print(f'translated {n} images of {a.translate} into {a.translate_out}', flush=True)

    # export the EMA weights: x [N,3,64,64] in [-1,1], t [N] int64 step → ε̂
    ema.eval().float().cpu()
    ema_eps = ema_eps.cpu()
    x = torch.zeros(2, 3, 64, 64)
    t = torch.tensor([10, 500], dtype=torch.int64)
    onnx_path = os.path.join(a.out, 'model.onnx')
    export_onnx(ema_eps, x, t, onnx_path)
    verify_onnx(ema_eps, onnx_path)
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
        'validTimeRange': [0, a.t_max],
        'training': {'trainer': 'tools/train-score-model.py', 'architecture': arch, 'noiseLevels': noise_history, 'parameters': params, 'steps': step,
                     'imagesSeen': images, 'wallSeconds': round(wall), 'batchSize': a.batch, 'lr': a.lr, 'emaDecay': a.ema,
                     'tMax': a.t_max, 'data': os.path.basename(os.path.normpath(a.data))},
    }
    with open(os.path.join(a.out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    print(f'exported {onnx_path} after {step} steps', flush=True)


if __name__ == '__main__':
    main()
