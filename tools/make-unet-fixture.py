#!/usr/bin/env python3
"""Writes test/fixtures/torch-unet-weights/: tools/train-score-model.py's U-Net at two tiny sizes with
random weights (every parameter, the zero-initialised ones too) as safetensors, a fixed input and
PyTorch's output, so the app's ONNX U-Net can be checked against it (test/engine/unet.test.ts).

  /usr/bin/python3 tools/make-unet-fixture.py
"""
import importlib.util
import json
import os

import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('trainer', os.path.join(here, 'train-score-model.py'))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
out = os.path.join(here, '..', 'test', 'fixtures', 'torch-unet-weights')
os.makedirs(out, exist_ok=True)
cases = {
    'plain': dict(ch=8, mult=[1, 2], attn=[8], groups=4, patch=1, res=16),
    'patch2': dict(ch=8, mult=[1, 2], attn=[4], groups=4, patch=2, res=16),
}
for name, arch in cases.items():
    torch.manual_seed(0)
    net = m.UNet(arch['ch'], tuple(arch['mult']), tuple(arch['attn']), arch['groups'], arch['res'], arch['patch'])
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    x = torch.randn(2, 3, arch['res'], arch['res'])
    t = torch.tensor([17, 640], dtype=torch.int64)
    with torch.no_grad():
        y = net(x, t)
    tensors = {'model.' + n: (p, 'F32') for n, p in net.named_parameters()}
    tensors['x'] = (x, 'F32')
    tensors['out'] = (y, 'F32')
    m.save_safetensors(os.path.join(out, f'{name}.safetensors'), tensors,
                       {'arch': json.dumps(arch), 't': json.dumps(t.tolist()), 'order': json.dumps([n for n, _ in net.named_parameters()])})
    print(name, sum(p.numel() for p in net.parameters()), 'parameters')
