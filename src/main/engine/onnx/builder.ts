/**
 * A small builder for the project's own ONNX graphs. Values are tensor names (strings);
 * every `op` call appends one node in topological order.
 */
import {
  DEFAULT_OPSET,
  float,
  int,
  ints,
  tensorData,
  type Attr,
  type DType,
  type Dim,
  type OnnxModel,
  type OnnxNode,
  type TensorData,
  type ValueInfo,
} from './ir.js';

export type AttrInput = Attr | number | number[] | string;

export function toAttr(v: AttrInput): Attr {
  if (typeof v === 'string') return { type: 'string', value: v };
  if (typeof v === 'number') return Number.isInteger(v) ? int(v) : float(v);
  if (Array.isArray(v)) return ints(v);
  return v;
}

/** A default-domain node, its attributes given as plain values. */
export function makeNode(name: string, opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrInput>): OnnxNode {
  const converted: Record<string, Attr> = {};
  for (const [k, v] of Object.entries(attrs)) converted[k] = toAttr(v);
  return { name, opType, domain: '', inputs, outputs, attrs: converted };
}

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly initializers = new Map<string, TensorData>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** A fresh, unused value name with the given prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, dtype: DType, shape: Dim[]): string {
    this.inputs.push({ name, dtype, shape });
    return name;
  }

  output(name: string, dtype: DType, shape: Dim[] | null = null): void {
    this.outputs.push({ name, dtype, shape });
  }

  /** A constant stored as an initializer. */
  constant(t: TensorData, name = this.fresh('const')): string {
    this.initializers.set(name, t);
    return name;
  }

  scalar(value: number, dtype: DType = 'float32'): string {
    return this.constant(tensorData(dtype, [], [value]));
  }

  /** A 1-D int64 constant, for shapes and axes. */
  int64s(values: number[]): string {
    return this.constant(tensorData('int64', [values.length], values));
  }

  /** Append a node; returns its outputs. An empty input name means "optional input left out". */
  opMulti(opType: string, inputs: string[], attrs: Record<string, AttrInput> = {}, outputCount = 1, outputNames?: string[]): string[] {
    const name = this.fresh(opType);
    const outputs = outputNames ?? Array.from({ length: outputCount }, (_, i) => `${name}_out${i}`);
    this.nodes.push(makeNode(name, opType, inputs, outputs, attrs));
    return outputs;
  }

  /** Append a single-output node; returns its output name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrInput> = {}, outputName?: string): string {
    return this.opMulti(opType, inputs, attrs, 1, outputName ? [outputName] : undefined)[0]!;
  }

  /** Rename a value to a graph output name with an Identity node. */
  identity(value: string, outputName: string): string {
    return this.op('Identity', [value], {}, outputName);
  }

  build(metadata: Record<string, string> = {}, opsetVersion = DEFAULT_OPSET): OnnxModel {
    return {
      graph: {
        name: this.name,
        nodes: this.nodes,
        inputs: this.inputs,
        outputs: this.outputs,
        initializers: this.initializers,
      },
      opsetVersion,
      producer: 'dg-studio',
      metadata,
    };
  }
}
