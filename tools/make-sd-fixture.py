#!/usr/bin/env python3
"""Writes test/fixtures/tiny-sd/: tiny Stable Diffusion-family folders in diffusers' ONNX layout, with random
weights, for the studio's latent-model plumbing (issue 27; no real SD weights exist on this machine). Each has
model_index.json, unet/, vae_encoder/, vae_decoder/, text_encoder/ (model.onnx each), tokenizer/ (a CLIP-style
byte-level BPE vocabulary: 256 bytes, their end-of-word forms, a few merges, <|startoftext|>, <|endoftext|>)
and scheduler/scheduler_config.json (SD 1.5's). The I/O names and dtypes are the real exporters':

- `diffusers`: input_ids int32, UNet timestep float32 [B], VAE encoder output latent_sample (diffusers' converter)
- `optimum`:   input_ids int64, UNet timestep int64 [B], VAE encoder output latent_parameters (mean, log-variance)

plus `parts/text_encoder_h48/model.onnx`, a text encoder whose hidden size (48) no UNet here expects.

  OMP_NUM_THREADS=2 /usr/bin/python3 tools/make-sd-fixture.py
"""
import json
import math
import os

import torch
import torch.nn as nn

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, '..', 'test', 'fixtures', 'tiny-sd')
HIDDEN, TOKENS = 32, 77


def bytes_to_unicode():
    """GPT-2/CLIP's printable stand-ins for the 256 byte values."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


MERGES = [('p', 'h'), ('ph', 'o'), ('t', 'o</w>'), ('pho', 'to</w>'), ('a', 'r'), ('ar', 't</w>')]


def tokenizer_files(folder):
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + '</w>' for c in chars] + [a + b for a, b in MERGES] + ['<|startoftext|>', '<|endoftext|>']
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'vocab.json'), 'w') as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in MERGES))
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump({'model_max_length': TOKENS, 'bos_token': '<|startoftext|>', 'eos_token': '<|endoftext|>',
                   'pad_token': '<|endoftext|>', 'do_lower_case': True}, f)
    return len(vocab)


class TextEncoder(nn.Module):
    def __init__(self, vocab, hidden):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Parameter(torch.randn(TOKENS, hidden) * 0.1)
        self.mix = nn.Linear(hidden, hidden)

    def forward(self, input_ids):
        h = self.mix(torch.tanh(self.tok(input_ids.long()) + self.pos))
        return h, h.mean(1)


class UNet(nn.Module):
    def __init__(self, int_time):
        super().__init__()
        self.int_time = int_time
        self.inp = nn.Conv2d(4, 16, 3, padding=1)
        self.t = nn.Linear(16, 16)
        self.c = nn.Linear(HIDDEN, 16)
        self.out = nn.Conv2d(16, 4, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        t = timestep.float().reshape(-1, 1)
        freqs = torch.exp(-math.log(1000.0) * torch.arange(8, dtype=torch.float32) / 8)
        emb = torch.cat([torch.sin(t * freqs), torch.cos(t * freqs)], 1)
        h = self.inp(sample) + (self.t(emb) + self.c(encoder_hidden_states.mean(1)))[:, :, None, None]
        return self.out(torch.nn.functional.silu(h))


class VaeEncoder(nn.Module):
    def __init__(self, parameters):
        super().__init__()
        self.parameters_out = parameters
        self.net = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.SiLU(), nn.Conv2d(8, 8, 4, 2, 1), nn.SiLU(),
                                 nn.Conv2d(8, 8 if parameters else 4, 4, 2, 1))

    def forward(self, sample):
        return self.net(sample)


class VaeDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, latent_sample):
        return torch.tanh(self.net(torch.nn.functional.interpolate(latent_sample, scale_factor=8.0, mode='nearest')))


def export(module, args, path, inputs, outputs, axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=axes, opset_version=14)


def folder(name, int_ids, int_time, parameters):
    torch.manual_seed(len(name))
    d = os.path.join(out, name)
    vocab = tokenizer_files(os.path.join(d, 'tokenizer'))
    ids = torch.zeros(1, TOKENS, dtype=torch.int64 if int_ids else torch.int32)
    export(TextEncoder(vocab, HIDDEN), (ids,), os.path.join(d, 'text_encoder', 'model.onnx'), ['input_ids'],
           ['last_hidden_state', 'pooler_output'], {'input_ids': {0: 'batch'}, 'last_hidden_state': {0: 'batch'}, 'pooler_output': {0: 'batch'}})
    t = torch.tensor([500], dtype=torch.int64 if int_time else torch.float32)
    export(UNet(int_time), (torch.randn(1, 4, 8, 8), t, torch.randn(1, TOKENS, HIDDEN)), os.path.join(d, 'unet', 'model.onnx'),
           ['sample', 'timestep', 'encoder_hidden_states'], ['out_sample'],
           {'sample': {0: 'batch', 2: 'height', 3: 'width'}, 'timestep': {0: 'batch'}, 'encoder_hidden_states': {0: 'batch'},
            'out_sample': {0: 'batch', 2: 'height', 3: 'width'}})
    enc_out = 'latent_parameters' if parameters else 'latent_sample'
    export(VaeEncoder(parameters), (torch.randn(1, 3, 64, 64),), os.path.join(d, 'vae_encoder', 'model.onnx'), ['sample'], [enc_out],
           {'sample': {0: 'batch', 2: 'height', 3: 'width'}, enc_out: {0: 'batch', 2: 'height', 3: 'width'}})
    export(VaeDecoder(), (torch.randn(1, 4, 8, 8),), os.path.join(d, 'vae_decoder', 'model.onnx'), ['latent_sample'], ['sample'],
           {'latent_sample': {0: 'batch', 2: 'height', 3: 'width'}, 'sample': {0: 'batch', 2: 'height', 3: 'width'}})
    with open(os.path.join(d, 'vae_decoder', 'config.json'), 'w') as f:
        json.dump({'_class_name': 'AutoencoderKL', 'latent_channels': 4, 'scaling_factor': 0.18215}, f)
    os.makedirs(os.path.join(d, 'scheduler'), exist_ok=True)
    with open(os.path.join(d, 'scheduler', 'scheduler_config.json'), 'w') as f:
        json.dump({'_class_name': 'PNDMScheduler', 'beta_start': 0.00085, 'beta_end': 0.012, 'beta_schedule': 'scaled_linear',
                   'num_train_timesteps': 1000, 'steps_offset': 1, 'skip_prk_steps': True, 'set_alpha_to_one': False,
                   'trained_betas': None, 'clip_sample': False}, f)
    with open(os.path.join(d, 'model_index.json'), 'w') as f:
        json.dump({'_class_name': 'OnnxStableDiffusionPipeline', '_diffusers_version': '0.30.0',
                   'note': 'a tiny random-weight fixture with real exporters\' I/O (tools/make-sd-fixture.py)'}, f)


if __name__ == '__main__':  # tools/train-tiny-sd.py imports the tokenizer and text encoder from here
    folder('diffusers', int_ids=False, int_time=False, parameters=False)
    folder('optimum', int_ids=True, int_time=True, parameters=True)
    torch.manual_seed(48)
    export(TextEncoder(520, 48), (torch.zeros(1, TOKENS, dtype=torch.int32),), os.path.join(out, 'parts', 'text_encoder_h48', 'model.onnx'),
           ['input_ids'], ['last_hidden_state', 'pooler_output'], {'input_ids': {0: 'batch'}})
    print('wrote', out)
