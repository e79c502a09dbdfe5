#!/usr/bin/env python3
"""Writes test/fixtures/inspect/: small networks exported by PyTorch's torch.onnx, none made by this
project's builder, for `dg-studio inspect` and the load-time manifest checks (test/engine/inspect.test.ts):

  disc-torch/model.onnx      discriminator: x [N,3,16,16], timestep int64 [N] -> logit [N]
                             (InstanceNorm, Softmax attention, einsum, a step embedding)
  unet-diffusers/model.onnx  epsilon U-Net in diffusers' naming: sample, timestep float32 scalar -> out_sample
  unet-class/model.onnx      class-conditional epsilon U-Net: x, t int64 [N], class_labels int64 [N] -> out
  classifier/model.onnx      noisy classifier: x, t float32 [N] -> logits [N, 4]
  broken.onnx                the first 300 bytes of disc-torch/model.onnx

Weights are random (seeded): the tests check names, dtypes, shapes and that a dry run works.

  /usr/bin/python3 tools/make-inspect-fixtures.py
"""
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'inspect')
torch.manual_seed(0)


def embed(t, dim=16):
    half = dim // 2
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * f[None]
    return torch.cat([a.sin(), a.cos()], dim=1)


class Disc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.InstanceNorm2d(8, affine=True)
        self.temb = nn.Linear(16, 8)
        self.qkv = nn.Conv2d(8, 24, 1)
        self.head = nn.Linear(8, 1)

    def forward(self, x, timestep):
        h = F.silu(self.norm(self.conv(x))) + self.temb(embed(timestep))[:, :, None, None]
        h = F.avg_pool2d(h, 4)
        q, k, v = self.qkv(h).flatten(2).chunk(3, dim=1)
        w = torch.softmax(torch.einsum('bci,bcj->bij', q, k) / math.sqrt(8), dim=-1)
        h = torch.einsum('bij,bcj->bci', w, v).mean(2)
        return self.head(h)[:, 0]


class TinyUNet(nn.Module):
    def __init__(self, classes=0):
        super().__init__()
        self.inp = nn.Conv2d(3, 8, 3, padding=1)
        self.temb = nn.Linear(16, 8)
        self.cemb = nn.Embedding(classes, 8) if classes else None
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.up = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 3, 3, padding=1)

    def body(self, x, t, c=None):
        e = self.temb(embed(t))
        if c is not None:
            e = e + self.cemb(c)
        h = F.silu(self.inp(x)) + e[:, :, None, None]
        d = F.silu(self.down(h))
        u = F.interpolate(d, scale_factor=2.0, mode='nearest')
        return self.out(F.silu(self.up(torch.cat([h, u], 1))))


class DiffusersStyle(TinyUNet):
    def forward(self, sample, timestep):
        return self.body(sample, timestep.reshape(1).expand(sample.shape[0]))


class ClassUNet(TinyUNet):
    def forward(self, x, t, class_labels):
        return self.body(x, t, class_labels)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.temb = nn.Linear(16, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x, t):
        h = F.silu(self.conv(x)) + self.temb(embed(t * 1000))[:, :, None, None]
        return self.head(h.mean((2, 3)))


def export(net, args, names, outputs, dynamic, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    net.eval()
    torch.onnx.export(net, args, path, input_names=names, output_names=outputs, dynamic_axes=dynamic, opset_version=17)
    print(path, os.path.getsize(path), 'bytes')


x = torch.randn(2, 3, 16, 16)
export(Disc(), (x, torch.tensor([10, 500])), ['x', 'timestep'], ['logit'],
       {'x': {0: 'batch'}, 'timestep': {0: 'batch'}, 'logit': {0: 'batch'}}, os.path.join(out, 'disc-torch', 'model.onnx'))
export(DiffusersStyle(), (x, torch.tensor(500.0)), ['sample', 'timestep'], ['out_sample'],
       {'sample': {0: 'batch'}, 'out_sample': {0: 'batch'}}, os.path.join(out, 'unet-diffusers', 'model.onnx'))
export(ClassUNet(5), (x, torch.tensor([10, 500]), torch.tensor([0, 3])), ['x', 't', 'class_labels'], ['out'],
       {'x': {0: 'N'}, 't': {0: 'N'}, 'class_labels': {0: 'N'}, 'out': {0: 'N'}}, os.path.join(out, 'unet-class', 'model.onnx'))
export(Classifier(), (x, torch.tensor([0.1, 0.5])), ['x', 't'], ['logits'],
       {'x': {0: 'N'}, 't': {0: 'N'}, 'logits': {0: 'N'}}, os.path.join(out, 'classifier', 'model.onnx'))
with open(os.path.join(out, 'disc-torch', 'model.onnx'), 'rb') as f:
    head = f.read(300)
with open(os.path.join(out, 'broken.onnx'), 'wb') as f:
    f.write(head)
