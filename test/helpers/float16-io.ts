/**
 * A half-precision export's interface around a float32 graph: every float32 input and output of the model is
 * declared float16, with a Cast at each end (the arithmetic inside stays float32, which ONNX Runtime's CPU
 * provider runs). What the engine sees of an fp16 Stable Diffusion-family folder — its tensors' types — without
 * float16 kernels a CPU may lack.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeNode } from '../../src/main/engine/onnx/builder.js';
import { parseModel, serializeModel, type OnnxModel, type OnnxNode, type ValueInfo } from '../../src/main/engine/onnx/ir.js';
import { OnnxDataType } from '../../src/main/engine/onnx/proto.js';

export function withFloat16Io(model: OnnxModel): OnnxModel {
  const g = model.graph;
  const rename = new Map<string, string>();
  /** each float32 value of the interface declared float16, with a Cast to or from its float32 twin inside */
  const halve = (values: ValueInfo[], cast: (v: string, inside: string) => OnnxNode, casts: OnnxNode[]) =>
    values.map((v) => {
      if (v.dtype !== 'float32') return v;
      rename.set(v.name, `${v.name}__f32`);
      casts.push(cast(v.name, `${v.name}__f32`));
      return { ...v, dtype: 'float16' as const };
    });
  const widen: OnnxNode[] = [];
  const narrow: OnnxNode[] = [];
  const inputs = halve(g.inputs, (v, inside) => makeNode(`${v}__widen`, 'Cast', [v], [inside], { to: OnnxDataType.float32 }), widen);
  const outputs = halve(g.outputs, (v, inside) => makeNode(`${v}__narrow`, 'Cast', [inside], [v], { to: OnnxDataType.float16 }), narrow);
  const r = (n: string) => rename.get(n) ?? n;
  const nodes = g.nodes.map((n) => ({ ...n, inputs: n.inputs.map(r), outputs: n.outputs.map(r) }));
  return { ...model, graph: { ...g, inputs, outputs, nodes: [...widen, ...nodes, ...narrow] } };
}

/** A copy of a diffusers folder whose four parts have float16 interfaces (withFloat16Io). */
export async function float16Folder(from: string, to: string): Promise<string> {
  await cp(from, to, { recursive: true });
  for (const part of ['unet', 'vae_encoder', 'vae_decoder', 'text_encoder']) {
    const file = join(to, part, 'model.onnx');
    await writeFile(file, serializeModel(withFloat16Io(parseModel(new Uint8Array(await readFile(file)), file))));
  }
  return to;
}
