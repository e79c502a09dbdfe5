import { describe, expect, it } from 'vitest';
import { initializersToInputs } from '../../src/main/engine/onnx/autodiff.js';
import { NetBuilder } from '../../src/main/engine/nn/layers.js';
import { Rng } from '../../src/main/engine/rng.js';
import { directionalCheck, randomFeed, type Feed } from '../helpers/gradcheck.js';

/**
 * Whole networks, float32, along a random direction over every weight at once. The central
 * difference's truncation error is h²·|L'''(v)|/6, which grows with the number of weights
 * moved; measured on the encoder it falls from 15 % at h = 3e-2 to 0.02 % at h = 1e-3
 * (quadratically, as it must when the gradient is right), while float32 rounding
 * ε·|L|/h stays ≲ 1e-4. So h = 1e-3 and a 0.5 % bound.
 */
describe('gradient graphs of whole networks', () => {
  it('an exported-style encoder/classifier: GroupNorm, SiLU, attention, time embedding; grads wrt x and every weight', async () => {
    const net = new NetBuilder('encoder', 5);
    const { g } = net;
    const x = g.input('x', 'float32', ['N', 3, 8, 8]);
    const t = g.input('t', 'float32', ['N']);
    const temb = net.linear(net.timeEmbedding(t, 16), 16, 32);
    let h = net.conv2d(x, 3, 8);
    h = net.resBlock(h, 8, 8, temb, 32, 2);
    h = net.conv2d(h, 8, 16, { stride: 2 });
    h = net.resBlock(h, 16, 16, temb, 32, 4);
    h = net.attention(h, 16, 4);
    const logit = net.linear(net.silu(net.pool(net.groupNorm(h, 16, 4))), 16, 1);
    g.identity(logit, 'y');
    g.output('y', 'float32', ['N', 1]);
    const model = initializersToInputs(g.build(), net.params);
    const rng = new Rng(9);
    const feeds: Record<string, Feed> = {
      x: randomFeed(rng, 'float32', [2, 3, 8, 8]),
      t: { dtype: 'float32', shape: [2], data: Float32Array.from([0.2, 0.7]) },
    };
    for (const p of net.params) {
      const init = g.initializers.get(p)!;
      feeds[p] = { dtype: 'float32', shape: init.dims, data: (init.data as Float32Array).map((v) => v + 0.1 * rng.normal()) };
    }
    const { fd, analytic } = await directionalCheck(model, feeds, ['x', ...net.params], 1e-3);
    expect(Math.abs(fd - analytic)).toBeLessThan(0.005 * Math.abs(analytic) + 1e-3);
    expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
  });

  it('a 64×64 conv net: directional derivative with respect to the image', async () => {
    const net = new NetBuilder('conv64', 6);
    const { g } = net;
    const x = g.input('x', 'float32', ['N', 3, 64, 64]);
    let h = net.silu(net.conv2d(x, 3, 16));
    h = net.silu(net.conv2d(h, 16, 32, { stride: 2 }));
    h = net.silu(net.conv2d(h, 32, 32, { stride: 2 }));
    h = g.op('AveragePool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
    g.identity(net.linear(net.pool(h), 32, 2), 'y');
    g.output('y', 'float32', ['N', 2]);
    const rng = new Rng(4);
    const feeds = { x: randomFeed(rng, 'float32', [2, 3, 64, 64]) };
    const { fd, analytic } = await directionalCheck(g.build(), feeds, ['x'], 1e-2);
    expect(Math.abs(fd - analytic)).toBeLessThan(0.01 * Math.abs(analytic) + 1e-3);
    expect(Math.abs(analytic)).toBeGreaterThan(1e-2);
  });
});
