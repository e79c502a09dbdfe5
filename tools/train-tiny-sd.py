#!/usr/bin/env python3
"""Train a tiny Stable Diffusion-family model on the emoji data and write it in diffusers' ONNX layout
(issue 27: "a tiny real latent model in the same layout, made here"), the same parts and I/O names a real SD
export has, small enough to commit:

- a KL autoencoder 64×64×3 → 16×16×4 (factor 4; SD's is 8), trained on Twemoji and Noto (L1 + MSE, a light
  KL term); `vae_encoder` gives `latent_parameters` (mean and log-variance, as Optimum's export), the scaling
  factor is 1/std of the training latents (as SD's 0.18215 was chosen);
- a text-conditioned latent ε U-Net (the score trainer's U-Net with cross-attention to the text states at the
  8×8 and 4×4 grids) on SD's schedule (scaled_linear β 0.00085…0.012, T = 1000), trained on both domains'
  latents with the prompts "noto emoji" / "twemoji", and "" one time in ten so that classifier-free guidance
  works: prompt "noto emoji", negative prompt "twemoji" steers a Twemoji toward Noto;
- the frozen random text encoder and CLIP-style byte-level BPE tokenizer of tools/make-sd-fixture.py
  (hidden size 32, 77 tokens).

  python3 tools/train-tiny-sd.py --out .cache/tiny-sd --ae-minutes 2.5 --unet-minutes 3.5     # GPU (bf16)
  OMP_NUM_THREADS=2 /usr/bin/python3 tools/train-tiny-sd.py --out DIR --export-only        # the ONNX folder from DIR/weights.safetensors

Training writes DIR/weights.safetensors (EMA weights, the record in its metadata), DIR/samples.png and
DIR/train.json; the export writes DIR/model/ (model_index.json, unet/, vae_encoder/, vae_decoder/, text_encoder/,
tokenizer/, scheduler/). Works with PyTorch 1.13 (Debian) and 2.x.
"""
import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


score = _load('train_score_model', 'train-score-model.py')  # U-Net blocks, image loading, safetensors, ONNX export
fixture = _load('make_sd_fixture', 'make-sd-fixture.py')  # tokenizer files, the text encoder

PROMPTS = ('', 'noto emoji', 'twemoji')  # the training prompts: index 0 is the unconditional one
LATENT, FACTOR = 4, 4
BETA_START, BETA_END, T = 0.00085, 0.012, 1000


def scaled_linear_abar() -> torch.Tensor:
    """SD's schedule (dg-math §11): β = linspace(√β₀, √β₁, T)², ᾱ = Π(1 − β)."""
    betas = torch.linspace(BETA_START ** 0.5, BETA_END ** 0.5, T, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


# --- the tokenizer: CLIP's byte-level BPE over make-sd-fixture's vocabulary (what the app's tokenizer does) ---

def clip_ids(prompt: str, folder: str) -> list:
    """BOS, the BPE tokens of the lower-cased prompt, EOS, padded with the pad token to 77 (the app's
    engine/text/clip-tokenizer.ts gives the same ids for the training prompts: test/engine/clip-tokenizer.test.ts
    checks it against the ids train.json records)."""
    vocab = json.load(open(os.path.join(folder, 'vocab.json'), encoding='utf-8'))
    merges = [tuple(l.split()) for l in open(os.path.join(folder, 'merges.txt'), encoding='utf-8').read().splitlines()[1:] if l.strip()]
    ranks = {m: i for i, m in enumerate(merges)}
    b2u = fixture.bytes_to_unicode()
    ids = [vocab['<|startoftext|>']]
    for word in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", prompt.lower()):
        syms = [b2u[b] for b in word.encode('utf-8')]
        syms[-1] += '</w>'
        while len(syms) > 1:
            r, i = min((ranks.get((syms[k], syms[k + 1]), math.inf), k) for k in range(len(syms) - 1))
            if r == math.inf:
                break
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        ids += [vocab[s] for s in syms]
    ids = ids[:fixture.TOKENS - 1] + [vocab['<|endoftext|>']]
    return ids + [vocab['<|endoftext|>']] * (fixture.TOKENS - len(ids))


# --- the autoencoder ---

class Res(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(groups, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  nn.GroupNorm(groups, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.body(x)


class Encoder(nn.Module):
    """x [N,3,H,W] in [-1, 1] → latent_parameters [N, 2·4, H/4, W/4] (mean, log-variance)."""

    def __init__(self, c: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), Res(c, c), nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
                                 Res(2 * c, 2 * c), nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), Res(2 * c, 2 * c),
                                 Res(2 * c, 2 * c), nn.GroupNorm(8, 2 * c), nn.SiLU(), nn.Conv2d(2 * c, 2 * LATENT, 3, padding=1))

    def forward(self, sample):
        return self.net(sample)


class Decoder(nn.Module):
    """latent_sample [N,4,h,w] (unscaled) → sample [N,3,4h,4w] in about [-1, 1]."""

    def __init__(self, c: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(LATENT, 2 * c, 3, padding=1), Res(2 * c, 2 * c), Res(2 * c, 2 * c),
                                 nn.Upsample(scale_factor=2.0, mode='nearest'), nn.Conv2d(2 * c, 2 * c, 3, padding=1), Res(2 * c, c),
                                 nn.Upsample(scale_factor=2.0, mode='nearest'), nn.Conv2d(c, c, 3, padding=1), Res(c, c),
                                 nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, latent_sample):
        return self.net(latent_sample)


# --- the latent U-Net ---

class CrossAttention(nn.Module):
    """Image features attend to the text states (SD's cross-attention, one head); zero-initialised output."""

    def __init__(self, ch: int, hidden: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.q = nn.Conv2d(ch, ch, 1)
        self.kv = nn.Linear(hidden, 2 * ch)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        q = self.q(self.norm(x)).reshape(b, c, h * w).transpose(1, 2)  # [b, s, c]
        k, v = self.kv(ctx).chunk(2, dim=-1)  # [b, 77, c] each
        a = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(c), dim=-1)  # [b, s, 77]
        return x + self.proj(torch.bmm(a, v).transpose(1, 2).reshape(b, c, h, w))


class LatentUNet(score.UNet):
    """The score trainer's U-Net on 4-channel latents, with cross-attention after each self-attention; the
    diffusers UNet's I/O: (sample, timestep float [B] or [1], encoder_hidden_states) → ε̂."""

    def __init__(self, ch: int, mult, attn, groups: int, res: int, hidden: int):
        super().__init__(ch=ch, mult=mult, attn=attn, groups=groups, res=res, patch=1)
        self.inp = nn.Conv2d(LATENT, ch, 3, padding=1)
        last = self.out[-1]
        self.out[-1] = nn.Conv2d(last.in_channels, LATENT, 3, padding=1)
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        for blocks in [*self.down, self.mid, *self.up]:
            attn_blocks = [b for b in blocks if isinstance(b, score.Attention)]
            if attn_blocks:
                blocks.append(CrossAttention(attn_blocks[0].qkv.in_channels, hidden, groups))
        self._ctx = None

    def _run(self, blocks, h, temb):
        for b in blocks:
            if isinstance(b, score.ResBlock):
                h = b(h, temb)
            elif isinstance(b, CrossAttention):
                h = b(h, self._ctx)
            else:
                h = b(h)
        return h

    def forward(self, sample, timestep, encoder_hidden_states):
        self._ctx = encoder_hidden_states
        t = timestep.float().reshape(-1).expand(sample.shape[0])
        return super().forward(sample, t)


def build(arch: dict):
    torch.manual_seed(arch['seed'])
    enc, dec = Encoder(arch['ae_ch']), Decoder(arch['ae_ch'])
    unet = LatentUNet(arch['ch'], tuple(arch['mult']), tuple(arch['attn']), arch['groups'], 64 // FACTOR, fixture.HIDDEN)
    torch.manual_seed(arch['seed'] + 1)
    text = fixture.TextEncoder(arch['vocab'], fixture.HIDDEN)
    text.requires_grad_(False)
    return enc, dec, unet, text


def autocast(dev: str):
    return torch.autocast(device_type='cuda', dtype=torch.bfloat16) if dev == 'cuda' else contextlib.nullcontext()


def to_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 127.5 - 1


@torch.no_grad()
def encode_means(enc: nn.Module, images: torch.Tensor, dev: str) -> torch.Tensor:
    out = []
    for s in range(0, len(images), 256):
        with autocast(dev):
            out.append(enc(to_float(images[s:s + 256])).float()[:, :LATENT])
    return torch.cat(out)


@torch.no_grad()
def decode(dec: nn.Module, z: torch.Tensor, dev: str) -> torch.Tensor:
    out = []
    for s in range(0, len(z), 256):
        with autocast(dev):
            out.append(dec(z[s:s + 256]).float())
    return torch.cat(out)


def train_autoencoder(enc, dec, images: torch.Tensor, minutes: float, dev: str, g, log) -> dict:
    """L1 + MSE reconstruction of a posterior sample, KL weight 1e-6 (SD's autoencoder without its perceptual
    and adversarial terms), random horizontal flips; Adam 3e-4, batch 64."""
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-4)
    step, start = 0, time.time()
    while time.time() - start < minutes * 60:
        idx = torch.randint(0, len(images), (64,), device=dev, generator=g)
        x = to_float(images[idx])
        x = torch.where((torch.rand(64, device=dev, generator=g) < 0.5)[:, None, None, None], x.flip(3), x)
        with autocast(dev):
            mean, logvar = enc(x).float().chunk(2, dim=1)
            logvar = logvar.clamp(-30, 20)
            z = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, device=dev, generator=g)
            y = dec(z).float()
        rec = (y - x).abs().mean() + ((y - x) ** 2).mean()
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
        loss = rec + 1e-6 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 500 == 0 or step == 1:
            log(f'autoencoder step {step}: L1+MSE {rec.item():.4f}, KL {kl.item():.1f}')
    return {'steps': step, 'batch': 64, 'seconds': round(time.time() - start)}


def train_unet(unet, ema, lat: torch.Tensor, labels: torch.Tensor, states: torch.Tensor, minutes: float, dev: str, g, log) -> dict:
    """ε-prediction with the DDPM loss on SD's schedule, t uniform; the prompt of an item is its domain's
    ("noto emoji" / "twemoji"), or "" with probability 0.1; AdamW 2e-4 after 200 warm-up steps, batch 256,
    EMA 0.999."""
    abar = scaled_linear_abar().to(dev)
    opt = torch.optim.AdamW(unet.parameters(), lr=2e-4, weight_decay=0.0)
    step, start, batch = 0, time.time(), 256
    while time.time() - start < minutes * 60:
        idx = torch.randint(0, len(lat), (batch,), device=dev, generator=g)
        z0 = lat[idx]
        prompt = torch.where(torch.rand(batch, device=dev, generator=g) < 0.1, torch.zeros_like(labels[idx]), labels[idx])
        t = torch.randint(0, T, (batch,), device=dev, generator=g)
        eps = torch.randn(z0.shape, device=dev, generator=g)
        ab = abar[t][:, None, None, None]
        with autocast(dev):
            pred = unet(ab.sqrt() * z0 + (1 - ab).sqrt() * eps, t.float(), states[prompt]).float()
        loss = F.mse_loss(pred, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        for group in opt.param_groups:
            group['lr'] = 2e-4 * min(1.0, (step + 1) / 200)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), unet.parameters()):
                pe.mul_(decay).add_(pm, alpha=1 - decay)
        step += 1
        if step % 500 == 0 or step == 1:
            log(f'U-Net step {step}: ε-MSE {loss.item():.4f}')
    return {'steps': step, 'batch': batch, 'seconds': round(time.time() - start)}


@torch.no_grad()
def sdedit(unet, z0: torch.Tensor, t0: float, steps: int, cond: torch.Tensor, uncond: torch.Tensor, cfg: float, dev: str, g) -> torch.Tensor:
    """Latent SDEdit with deterministic DDIM and classifier-free guidance ε̃ = ε∅ + g·(ε_c − ε∅) (dg-math §11)."""
    abar = scaled_linear_abar().to(dev)
    n = len(z0)
    i0 = round(t0 * (T - 1))
    x = abar[i0].sqrt() * z0 + (1 - abar[i0]).sqrt() * torch.randn(z0.shape, device=dev, generator=g)
    ladder = torch.linspace(i0, 0, steps + 1).round().long().tolist()
    for k, (i, j) in enumerate(zip(ladder[:-1], ladder[1:])):
        t = torch.full((2 * n,), float(i), device=dev)
        with autocast(dev):
            e_c, e_u = unet(torch.cat([x, x]), t, torch.cat([cond.expand(n, -1, -1), uncond.expand(n, -1, -1)])).float().chunk(2)
        e = e_u + cfg * (e_c - e_u)
        x0 = (x - (1 - abar[i]).sqrt() * e) / abar[i].sqrt()
        x = x0 if k == steps - 1 else abar[j].sqrt() * x0 + (1 - abar[j]).sqrt() * e
    return x


def to_pixels(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', required=True)
    ap.add_argument('--target', default='data/emoji/google', help='the Noto split folders (train/, test/)')
    ap.add_argument('--source', default='data/emoji/twitter', help='the Twemoji split folders (train/, test/)')
    ap.add_argument('--ae-minutes', type=float, default=2.5)
    ap.add_argument('--unet-minutes', type=float, default=3.5)
    ap.add_argument('--ch', type=int, default=48)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--export-only', action='store_true', help='write DIR/model/ from DIR/weights.safetensors')
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tok_dir = os.path.join(a.out, 'model', 'tokenizer')
    vocab = fixture.tokenizer_files(tok_dir)
    if a.export_only:
        return export(a.out, tok_dir)

    if 'OMP_NUM_THREADS' not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    g = torch.Generator(device=dev).manual_seed(a.seed)
    record = []

    def log(msg):
        print(msg, flush=True)
        record.append(msg)

    arch = dict(ae_ch=64, ch=a.ch, mult=[1, 2, 2], attn=[8], groups=8, vocab=vocab, seed=a.seed)
    enc, dec, unet, text = (m.to(dev) for m in build(arch))
    ema = LatentUNet(a.ch, (1, 2, 2), (8,), 8, 64 // FACTOR, fixture.HIDDEN).to(dev)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    tgt = {s: score.load_images(os.path.join(a.target, s)).to(dev) for s in ('train', 'test')}
    src = {s: score.load_images(os.path.join(a.source, s)).to(dev) for s in ('train', 'test')}
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in (('encoder', enc), ('decoder', dec), ('unet', unet))}
    log(f'device {dev}; {len(tgt["train"])} + {len(src["train"])} training images; parameters {n_params}')

    ae_run = train_autoencoder(enc, dec, torch.cat([tgt['train'], src['train']]), a.ae_minutes, dev, g, log)
    enc.eval(), dec.eval()
    held = torch.cat([tgt['test'], src['test']])
    rec_l1 = float((decode(dec, encode_means(enc, held, dev), dev) - to_float(held)).abs().mean())
    log(f'autoencoder: held-out reconstruction mean |Δ| {rec_l1:.4f} (of [-1, 1]) after {ae_run["steps"]} steps')

    # the latents (posterior means) of both domains and their mirror images, scaled to unit variance
    lat_t = torch.cat([encode_means(enc, tgt['train'], dev), encode_means(enc, tgt['train'].flip(3), dev)])
    lat_s = torch.cat([encode_means(enc, src['train'], dev), encode_means(enc, src['train'].flip(3), dev)])
    scale = float(1 / torch.cat([lat_t, lat_s]).std())
    lat = torch.cat([lat_t, lat_s]) * scale
    labels = torch.cat([torch.full((len(lat_t),), 1), torch.full((len(lat_s),), 2)]).to(dev)
    ids = torch.tensor([clip_ids(p, tok_dir) for p in PROMPTS], dtype=torch.int64, device=dev)
    with torch.no_grad():
        states = text(ids)[0].float()
    log(f'scaling factor {scale:.5f}; prompt ids {[i[:8] for i in ids.tolist()]}')
    unet_run = train_unet(unet, ema, lat, labels, states, a.unet_minutes, dev, g, log)
    ema.eval()

    # held-out ε-MSE on the Noto test latents under the prompt "noto emoji", fixed noise
    abar = scaled_linear_abar().to(dev)
    zt = encode_means(enc, tgt['test'], dev) * scale
    gen = torch.Generator(device=dev).manual_seed(777)
    errs = {}
    with torch.no_grad():
        for tt in (0.2, 0.5, 0.8):
            i = round(tt * (T - 1))
            eps = torch.randn(zt.shape, device=dev, generator=gen)
            with autocast(dev):
                pred = ema(abar[i].sqrt() * zt + (1 - abar[i]).sqrt() * eps, torch.full((len(zt),), float(i), device=dev),
                           states[1:2].expand(len(zt), -1, -1)).float()
            errs[tt] = round(float(((pred - eps) ** 2).mean()), 5)
    log(f'latent U-Net: held-out ε-MSE (EMA, prompt "noto emoji") at t = 0.2 / 0.5 / 0.8: {errs} after {unet_run["steps"]} steps')

    # a look: 8 held-out Twemoji, their reconstruction, SDEdit t0 0.5 toward "noto emoji" (CFG 1 and 4, negative
    # prompt "twemoji" for CFG 4), and Noto's drawing of the same emoji
    pick = torch.linspace(0, len(src['test']) - 1, 8).long()
    x = src['test'][pick]
    z = encode_means(enc, x, dev) * scale
    rows = [to_float(x), decode(dec, z / scale, dev)]
    for cfg, neg in ((1.0, 0), (4.0, 2)):
        y = sdedit(ema, z, 0.5, 25, states[1:2], states[neg:neg + 1], cfg, dev, torch.Generator(device=dev).manual_seed(5))
        rows.append(decode(dec, y / scale, dev))
    rows.append(to_float(tgt['test'][pick]))
    grid = np.concatenate([np.concatenate(list(to_pixels(r)), axis=1) for r in rows], axis=0)
    Image.fromarray(grid).save(os.path.join(a.out, 'samples.png'))

    meta = {'format': 'dg-studio/tiny-sd-weights@1', 'arch': json.dumps(arch), 'scaling_factor': f'{scale:.6f}',
            'autoencoder': json.dumps(ae_run), 'unet': json.dumps(unet_run), 'heldout_reconstruction_l1': f'{rec_l1:.5f}',
            'heldout_eps_mse': json.dumps(errs), 'device': torch.cuda.get_device_name() if dev == 'cuda' else 'cpu', 'torch': torch.__version__}
    tensors = {}
    for prefix, m in (('encoder.', enc), ('decoder.', dec), ('unet.', ema), ('text.', text)):
        for n, p in m.state_dict().items():
            tensors[prefix + n] = (p, 'F32')
    score.save_safetensors(os.path.join(a.out, 'weights.safetensors'), tensors, meta)
    with open(os.path.join(a.out, 'train.json'), 'w') as f:
        json.dump({**{k: (json.loads(v) if k in ('arch', 'autoencoder', 'unet', 'heldout_eps_mse') else v) for k, v in meta.items()}, 'log': record}, f, indent=2)
    log('wrote ' + a.out)


def export(out: str, tok_dir: str) -> None:
    """DIR/model/: the diffusers ONNX layout (what tools/make-sd-fixture.py writes, with trained weights)."""
    tensors, meta = score.load_safetensors(os.path.join(out, 'weights.safetensors'))
    arch = json.loads(meta['arch'])
    enc, dec, unet, text = build(arch)
    for prefix, m in (('encoder.', enc), ('decoder.', dec), ('unet.', unet), ('text.', text)):
        m.load_state_dict({n[len(prefix):]: t for n, t in tensors.items() if n.startswith(prefix)})
        m.eval()
    d = os.path.join(out, 'model')
    h = 64 // FACTOR
    batch, hw = {0: 'batch'}, {0: 'batch', 2: 'height', 3: 'width'}
    fixture.export(text, (torch.zeros(1, fixture.TOKENS, dtype=torch.int32),), os.path.join(d, 'text_encoder', 'model.onnx'),
                   ['input_ids'], ['last_hidden_state', 'pooler_output'], {'input_ids': batch, 'last_hidden_state': batch, 'pooler_output': batch})
    fixture.export(unet, (torch.randn(2, LATENT, h, h), torch.tensor([10.0, 500.0]), torch.randn(2, fixture.TOKENS, fixture.HIDDEN)),
                   os.path.join(d, 'unet', 'model.onnx'), ['sample', 'timestep', 'encoder_hidden_states'], ['out_sample'],
                   {'sample': hw, 'timestep': batch, 'encoder_hidden_states': batch, 'out_sample': hw})
    fixture.export(enc, (torch.randn(1, 3, 64, 64),), os.path.join(d, 'vae_encoder', 'model.onnx'), ['sample'], ['latent_parameters'],
                   {'sample': hw, 'latent_parameters': hw})
    fixture.export(dec, (torch.randn(1, LATENT, h, h),), os.path.join(d, 'vae_decoder', 'model.onnx'), ['latent_sample'], ['sample'],
                   {'latent_sample': hw, 'sample': hw})
    scale = float(meta['scaling_factor'])
    with open(os.path.join(d, 'vae_decoder', 'config.json'), 'w') as f:
        json.dump({'_class_name': 'AutoencoderKL', 'latent_channels': LATENT, 'scaling_factor': scale,
                   'block_out_channels': [arch['ae_ch'], 2 * arch['ae_ch'], 2 * arch['ae_ch']]}, f, indent=2)
    os.makedirs(os.path.join(d, 'scheduler'), exist_ok=True)
    with open(os.path.join(d, 'scheduler', 'scheduler_config.json'), 'w') as f:
        json.dump({'_class_name': 'DDIMScheduler', 'beta_start': BETA_START, 'beta_end': BETA_END, 'beta_schedule': 'scaled_linear',
                   'num_train_timesteps': T, 'steps_offset': 1, 'prediction_type': 'epsilon', 'clip_sample': False,
                   'set_alpha_to_one': False, 'timestep_spacing': 'leading'}, f, indent=2)
    with open(os.path.join(d, 'model_index.json'), 'w') as f:
        json.dump({'_class_name': 'OnnxStableDiffusionPipeline', '_diffusers_version': '0.30.0',
                   'note': 'a tiny Stable Diffusion-family model trained on emoji by tools/train-tiny-sd.py: prompt "noto emoji" '
                           '(negative prompt "twemoji") for Noto, "twemoji" for Twemoji; 64×64 images, latents 16×16×4',
                   'text_encoder': ['transformers', 'CLIPTextModel'], 'tokenizer': ['transformers', 'CLIPTokenizer'],
                   'unet': ['diffusers', 'UNet2DConditionModel'], 'vae_encoder': ['diffusers', 'OnnxRuntimeModel'],
                   'vae_decoder': ['diffusers', 'OnnxRuntimeModel'], 'scheduler': ['diffusers', 'DDIMScheduler']}, f, indent=2)
    print('exported', d, flush=True)


if __name__ == '__main__':
    main()
