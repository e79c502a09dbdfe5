/**
 * Plots as PNG files, drawn with Vega-Lite (rendered to SVG in Node, rasterized by sharp).
 */
import sharp from 'sharp';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

export async function renderPng(spec: TopLevelSpec, scale = 2): Promise<Buffer> {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG(scale);
  view.finalize();
  return sharp(Buffer.from(svg)).png().toBuffer();
}

export interface FrontierPoint {
  t0: number;
  w: number;
  faithfulness: number;
  realism: number;
}

const weightOrder = (points: FrontierPoint[]) => [...new Set(points.map((p) => p.w))].sort((a, b) => a - b).map((w) => `w = ${w}`);

/** A labelled realism level drawn across a frontier plot. */
export interface ReferenceLevel {
  realism: number;
  label: string;
}

/**
 * Realism against faithfulness, one line per DG weight, points labelled by t0 (paper Fig. 6); each of `levels` is a
 * dashed, labelled level across the plot (the sources' own true targets' realism: what a perfect translation scores;
 * real target images of other subjects; the sources untranslated). A level more than 25 % above every point (the
 * untranslated sources by FD, typically) is left out rather than squeezing the points into a corner of the plot.
 */
export function frontierSpec(
  points: FrontierPoint[],
  axes: { faithfulness: string; realism: string },
  title: string,
  levels: ReferenceLevel[] = [],
): TopLevelSpec {
  const top = Math.max(...points.map((p) => p.realism));
  const drawn = levels.filter((l) => l.realism <= top + 0.25 * Math.abs(top));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 420,
    height: 300,
    background: 'white',
    data: { values: points.map((p) => ({ ...p, weight: `w = ${p.w}` })) },
    layer: [
      {
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'faithfulness', type: 'quantitative', title: axes.faithfulness, scale: { zero: false } },
          y: { field: 'realism', type: 'quantitative', title: axes.realism, scale: { zero: false } },
          // the legend in weight order (a nominal field sorts as text: w = 16 before w = 8)
          color: { field: 'weight', type: 'nominal', title: 'DG weight', scale: { domain: weightOrder(points) } },
          order: { field: 't0', type: 'quantitative' },
        },
      },
      {
        mark: { type: 'text', dx: 12, dy: -6, fontSize: 9 },
        encoding: {
          x: { field: 'faithfulness', type: 'quantitative' },
          y: { field: 'realism', type: 'quantitative' },
          text: { field: 't0', type: 'quantitative', format: '.2f' },
          color: { field: 'weight', type: 'nominal' },
        },
      },
      ...(drawn.length
        ? [
            {
              data: { values: drawn },
              mark: { type: 'rule' as const, strokeDash: [4, 4], color: '#555' },
              encoding: { y: { field: 'realism', type: 'quantitative' as const } },
            },
            {
              data: { values: drawn },
              mark: {
                type: 'text' as const,
                align: 'left' as const,
                baseline: 'bottom' as const,
                x: 4,
                dy: -2,
                fontSize: 9,
                color: '#555',
              },
              encoding: { y: { field: 'realism', type: 'quantitative' as const }, text: { field: 'label', type: 'nominal' as const } },
            },
          ]
        : []),
    ],
  };
}

/** Lines of y against x, one per series (path diagnostics: log r along time). */
export function linesSpec(rows: { x: number; y: number; series: string }[], axes: { x: string; y: string }, title: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 420,
    height: 280,
    background: 'white',
    data: { values: rows },
    mark: { type: 'line', point: false },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: axes.x },
      y: { field: 'y', type: 'quantitative', title: axes.y },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 400, columns: 1 } },
    },
  };
}
