import { describe, expect, it } from 'vitest';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { frontierSpec, renderPng } from '../../src/main/services/plots.js';

const points = [
  { t0: 0.3, w: 0, faithfulness: 0.27, realism: 0.109 },
  { t0: 0.5, w: 0, faithfulness: 0.4, realism: 0.069 },
  { t0: 0.3, w: 16, faithfulness: 0.271, realism: 0.104 },
  { t0: 0.5, w: 16, faithfulness: 0.413, realism: 0.063 },
];
const axes = { faithfulness: 'L2', realism: 'FD' };

async function svgOf(spec: ReturnType<typeof frontierSpec>): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

describe('frontier plots', () => {
  it('draw the true targets’ level as a labelled dashed rule, inside the realism axis', async () => {
    const plain = frontierSpec(points, axes, 'Realism vs faithfulness');
    const withRef = frontierSpec(points, axes, 'Realism vs faithfulness', [{ realism: 0.038, label: 'the 64 true targets themselves' }]);
    expect('layer' in plain && plain.layer).toHaveLength(2);
    expect('layer' in withRef && withRef.layer).toHaveLength(4);
    const svg = await svgOf(withRef);
    expect(svg).toContain('the 64 true targets themselves');
    expect(svg).toContain('stroke-dasharray="4,4"');
    // the axis reaches down to the level (0.038), below every point (the lowest 0.063): its ticks include 0.04
    expect(svg).toMatch(/>0\.04</);
    expect(await svgOf(plain)).not.toMatch(/>0\.04</);
    // the legend lists the weights in numeric order
    expect(svg.indexOf('>w = 0<')).toBeLessThan(svg.indexOf('>w = 16<'));
    const two = frontierSpec([...points, { t0: 0.3, w: 8, faithfulness: 0.27, realism: 0.1 }], axes, 'x');
    const svg2 = await svgOf(two);
    expect(svg2.indexOf('>w = 8<')).toBeLessThan(svg2.indexOf('>w = 16<'));
    expect((await renderPng(withRef, 1)).subarray(1, 4).toString()).toBe('PNG');
    // two levels: both rules and both labels, the axis reaching the lower one
    const both = await svgOf(
      frontierSpec(points, axes, 'x', [
        { realism: 0.038, label: 'the 64 true targets themselves' },
        { realism: 0.02, label: 'real targets of other subjects' },
      ]),
    );
    expect(both).toContain('real targets of other subjects');
    expect(both).toContain('the 64 true targets themselves');
    expect(both.match(/stroke-dasharray="4,4"/g)).toHaveLength(2);
    expect(both).toMatch(/>0\.02</);
    // a level far above every point (0.2 against the highest 0.109: the untranslated sources by FD) is left out;
    // one within 25 % of the highest point is drawn
    const far = await svgOf(frontierSpec(points, axes, 'x', [{ realism: 0.2, label: 'the 4 sources, untranslated' }]));
    expect(far).not.toContain('untranslated');
    expect(far).not.toMatch(/>0\.2</);
    const near = await svgOf(frontierSpec(points, axes, 'x', [{ realism: 0.13, label: 'the 4 sources, untranslated' }]));
    expect(near).toContain('the 4 sources, untranslated');
  });
});
