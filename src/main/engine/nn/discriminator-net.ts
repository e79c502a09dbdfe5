/**
 * The default discriminator: a time-conditioned convolutional encoder like the paper's
 * shallow U-Net encoder (ADM ResBlocks with a time embedding, attention at low resolution,
 * pooled head, one logit), defined with the project's graph builder.
 *
 * Inputs: x [N, C, H, W] in LVP coordinates (dg-math §4), t [N] = LVP τ. Output: logit [N, 1].
 */
import type { OnnxModel } from '../onnx/ir.js';
import { NetBuilder } from './layers.js';

export type DiscriminatorArch = ConvEncoderArch | MlpArch;

/** For vector data (the 2-D toy of dg-math §7): [x, emb(τ)] → MLP → logit. */
export interface MlpArch {
  kind: 'mlp';
  inDim: number;
  hidden: number;
  layers: number;
  timeDim: number;
}

export interface ConvEncoderArch {
  kind: 'conv-encoder';
  inChannels: number;
  resolution: number;
  /** channels per level; each level after the first halves the resolution */
  channels: number[];
  /** residual blocks per level */
  blocks: number;
  /** resolutions at which a self-attention block follows the residual blocks */
  attentionAt: number[];
  groups: number;
  timeDim: number;
  /** classes for a class-conditional discriminator (0: unconditional) */
  classes: number;
  /** average-pool the input by this factor first (a cheaper, lower-resolution discriminator) */
  downsample?: number;
}

export const DEFAULT_ARCH: ConvEncoderArch = {
  kind: 'conv-encoder',
  inChannels: 3,
  resolution: 64,
  channels: [32, 64, 64],
  blocks: 1,
  attentionAt: [8],
  groups: 8,
  timeDim: 64,
  classes: 0,
  // DG acts mostly on global structure (paper App. D.3): a 32×32 view trains ~3.5× faster
  // per image than the 64×64 one and reached higher validation accuracy in the same time
  // (bench/disc-train, docs/benchmarks.md)
  downsample: 2,
};

export interface BuiltNet {
  model: OnnxModel;
  params: string[];
  paramCount: number;
}

export function buildDiscriminatorNet(arch: DiscriminatorArch, seed = 0): BuiltNet {
  return arch.kind === 'mlp' ? buildMlp(arch, seed) : buildConvEncoder(arch, seed);
}

function finish(net: NetBuilder, arch: DiscriminatorArch): BuiltNet {
  const model = net.g.build({ architecture: JSON.stringify(arch) });
  const paramCount = net.params.reduce((s, p) => s + model.graph.initializers.get(p)!.data.length, 0);
  return { model, params: net.params, paramCount };
}

function buildMlp(arch: MlpArch, seed: number): BuiltNet {
  const net = new NetBuilder('discriminator', seed);
  const { g } = net;
  const x = g.input('x', 'float32', ['N', arch.inDim]);
  const t = g.input('t', 'float32', ['N']);
  let h = g.op('Concat', [x, net.timeEmbedding(t, arch.timeDim)], { axis: 1 });
  let width = arch.inDim + arch.timeDim;
  for (let l = 0; l < arch.layers; l++) {
    h = net.silu(net.linear(h, width, arch.hidden));
    width = arch.hidden;
  }
  g.identity(net.linear(h, width, 1), 'logit');
  g.output('logit', 'float32', ['N', 1]);
  return finish(net, arch);
}

function buildConvEncoder(arch: ConvEncoderArch, seed: number): BuiltNet {
  const net = new NetBuilder('discriminator', seed);
  const { g } = net;
  const x = g.input('x', 'float32', ['N', arch.inChannels, arch.resolution, arch.resolution]);
  const t = g.input('t', 'float32', ['N']);
  let temb = net.linear(net.silu(net.linear(net.timeEmbedding(t, arch.timeDim), arch.timeDim, arch.timeDim)), arch.timeDim, arch.timeDim);
  if (arch.classes > 0) {
    const y = g.input('class_label', 'int64', ['N']);
    const table = net.param('class_embedding', [arch.classes, arch.timeDim], { std: 1 / Math.sqrt(arch.timeDim) });
    temb = g.op('Add', [temb, g.op('Gather', [table, y], { axis: 0 })]);
  }
  const f = arch.downsample ?? 1;
  const input = f > 1 ? g.op('AveragePool', [x], { kernel_shape: [f, f], strides: [f, f] }) : x;
  let h = net.conv2d(input, arch.inChannels, arch.channels[0]!);
  let res = arch.resolution / f;
  let ch = arch.channels[0]!;
  arch.channels.forEach((out, level) => {
    if (level > 0) {
      h = net.conv2d(h, ch, ch, { stride: 2 });
      res /= 2;
    }
    for (let b = 0; b < arch.blocks; b++) {
      h = net.resBlock(h, ch, out, temb, arch.timeDim, arch.groups);
      ch = out;
    }
    if (arch.attentionAt.includes(res)) h = net.attention(h, ch, arch.groups);
  });
  const pooled = net.pool(net.silu(net.groupNorm(h, ch, arch.groups)));
  g.identity(net.linear(pooled, ch, 1), 'logit');
  g.output('logit', 'float32', ['N', 1]);
  return finish(net, arch);
}
