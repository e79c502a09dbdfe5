/**
 * Appends nodes to a graph being rewritten (decompositions, gradients), with memoized
 * shape and constant helpers so shared subexpressions are emitted once.
 */
import { FLOAT_DTYPES, tensorData, type DType, type Dim, type OnnxGraph, type OnnxNode, type TensorData } from './ir.js';
import { OnnxDataType } from './proto.js';
import { makeNode, type AttrInput } from './builder.js';
import { sameShape, type Shape } from './shapes.js';

export class Emitter {
  readonly nodes: OnnxNode[] = [];
  private counter = 0;
  private readonly used: Set<string>;
  private readonly memo = new Map<string, string>();
  /** values produced by Constant nodes, for reading static axes / perms */
  private readonly constants = new Map<string, TensorData>();
  /** the graph's one floating dtype, when it has exactly one (scalars then need no CastLike) */
  private readonly floatType: 'float32' | 'float64' | null;
  private producers: Map<string, OnnxNode> | undefined;

  constructor(
    readonly graph: OnnxGraph,
    readonly prefix: string,
    /** statically inferred shapes of the forward values, when known */
    readonly shapes: Map<string, Shape> = new Map(),
  ) {
    this.used = new Set<string>([
      ...graph.inputs.map((i) => i.name),
      ...graph.initializers.keys(),
      ...graph.nodes.flatMap((n) => n.outputs),
    ]);
    for (const n of graph.nodes) {
      if (n.opType === 'Constant') {
        const v = n.attrs['value'];
        if (v?.type === 'tensor') this.constants.set(n.outputs[0]!, v.value);
        const ints = n.attrs['value_ints'];
        if (ints?.type === 'ints') this.constants.set(n.outputs[0]!, tensorData('int64', [ints.value.length], ints.value));
        const one = n.attrs['value_int'];
        if (one?.type === 'int') this.constants.set(n.outputs[0]!, tensorData('int64', [], [one.value]));
      }
    }
    this.floatType = soleFloatType(graph);
  }

  fresh(hint: string): string {
    let name: string;
    do name = `${this.prefix}${hint}_${this.counter++}`;
    while (this.used.has(name));
    this.used.add(name);
    return name;
  }

  opMulti(opType: string, inputs: string[], attrs: Record<string, AttrInput> = {}, outputCount = 1, outputNames?: string[]): string[] {
    const name = this.fresh(opType);
    const outputs = outputNames ?? Array.from({ length: outputCount }, (_, i) => (i === 0 ? name : `${name}_${i}`));
    for (const o of outputs) this.used.add(o);
    this.nodes.push(makeNode(name, opType, inputs, outputs, attrs));
    return outputs;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrInput> = {}, outputName?: string): string {
    return this.opMulti(opType, inputs, attrs, 1, outputName ? [outputName] : undefined)[0]!;
  }

  private memoized(key: string, make: () => string): string {
    let v = this.memo.get(key);
    if (!v) {
      v = make();
      this.memo.set(key, v);
    }
    return v;
  }

  /** An initializer (memoized by content). */
  constant(t: TensorData): string {
    const key = `const:${t.dtype}:${t.dims.join(',')}:${Array.from(t.data as ArrayLike<number | bigint>, String).join(',')}`;
    return this.memoized(key, () => {
      const name = this.fresh('c');
      this.graph.initializers.set(name, t);
      return name;
    });
  }

  i64(values: number[]): string {
    return this.constant(tensorData('int64', [values.length], values));
  }

  i64Scalar(value: number): string {
    return this.constant(tensorData('int64', [], [value]));
  }

  /**
   * A scalar with the dtype of the floating value `ref`, so the same rule serves float32 and float64
   * graphs: a constant of the graph's one floating dtype, else a CastLike (one more node at run time).
   */
  scalarLike(value: number, ref: string): string {
    if (this.floatType) return this.constant(tensorData(this.floatType, [], [value]));
    return this.memoized(`scalarLike:${value}:${ref}`, () => this.op('CastLike', [this.constant(tensorData('float64', [], [value])), ref]));
  }

  /** A float32 value `v` in the dtype of the floating value `ref`: `v` itself in an all-float32 graph, else a CastLike. */
  likeFloat(v: string, ref: string): string {
    return this.floatType === 'float32' ? v : this.op('CastLike', [v, ref]);
  }

  shape(v: string): string {
    return this.memoized(`shape:${v}`, () => this.op('Shape', [v]));
  }

  /** Rank as an int64 scalar. */
  rank(v: string): string {
    return this.memoized(`rank:${v}`, () => this.op('Size', [this.shape(v)]));
  }

  /** shape[start:end] as a 1-D int64 tensor. */
  shapeSlice(v: string, start: number, end?: number): string {
    return this.memoized(`shapeSlice:${v}:${start}:${end}`, () => this.op('Shape', [v], end === undefined ? { start } : { start, end }));
  }

  zerosLike(ref: string): string {
    return this.memoized(`zeros:${ref}`, () =>
      this.likeFloat(
        this.op('ConstantOfShape', [this.shape(ref)], { value: { type: 'tensor', value: tensorData('float32', [1], [0]) } }),
        ref,
      ),
    );
  }

  /** The forward graph's node that makes `v`, if any. */
  producer(v: string): OnnxNode | undefined {
    this.producers ??= new Map(this.graph.nodes.flatMap((n) => n.outputs.map((o): [string, OnnxNode] => [o, n])));
    return this.producers.get(v);
  }

  /** Static dims of a value, when the graph states them (inputs, initializers, Constant nodes). */
  staticShape(v: string): Dim[] | null {
    const init = this.graph.initializers.get(v);
    if (init) return init.dims;
    const c = this.constants.get(v);
    if (c) return c.dims;
    const input = this.graph.inputs.find((i) => i.name === v);
    return input?.shape ?? null;
  }

  /** The values of a constant input (initializer or Constant node), as numbers; null if dynamic. */
  constValues(v: string | undefined): number[] | null {
    if (!v) return null;
    const t = this.graph.initializers.get(v) ?? this.constants.get(v);
    if (!t || this.graph.inputs.some((i) => i.name === v)) return null;
    return Array.from(t.data as ArrayLike<number | bigint>, Number);
  }

  dtypeOf(v: string): DType | null {
    return this.graph.initializers.get(v)?.dtype ?? this.graph.inputs.find((i) => i.name === v)?.dtype ?? null;
  }

  /**
   * Sum `g` down to the shape of `ref` (the adjoint of numpy broadcasting). `like` is a forward
   * value with g's shape: when both shapes are known statically the reduction is planned
   * here (often it is nothing at all); otherwise it is decided at run time: leading axes that
   * `ref` lacks are summed away, then every axis where `g` is larger than `ref`.
   */
  unbroadcast(g: string, ref: string, like?: string): string {
    const gs = like ? this.shapes.get(like) : undefined;
    const rs = this.shapes.get(ref);
    if (sameShape(gs, rs)) return g;
    if (gs && rs && gs.length >= rs.length) {
      const lead = gs.length - rs.length;
      const axes: number[] = Array.from({ length: lead }, (_, i) => i);
      let known = true;
      rs.forEach((d, i) => {
        const o = gs[i + lead];
        if (d === 1 && o !== 1) {
          if (o === null) known = false;
          axes.push(i + lead);
        } else if (d !== o || d === null) known = false;
      });
      if (known) {
        if (axes.length === 0) return g;
        const summed = this.op('ReduceSum', [g, this.i64(axes)], { keepdims: 0 });
        return this.op('Reshape', [summed, rs.every((d) => typeof d === 'number') ? this.i64(rs as number[]) : this.shape(ref)]);
      }
    }
    const lead = this.op('Range', [this.i64Scalar(0), this.op('Sub', [this.rank(g), this.rank(ref)]), this.i64Scalar(1)]);
    const g1 = this.op('ReduceSum', [g, lead], { keepdims: 0, noop_with_empty_axes: 1 });
    const sr = this.shape(ref);
    const axes = this.op('Reshape', [this.op('NonZero', [this.op('Greater', [this.shape(g1), sr])]), this.i64([-1])]);
    const summed = this.op('ReduceSum', [g1, axes], { keepdims: 1, noop_with_empty_axes: 1 });
    return this.op('Reshape', [summed, sr]);
  }
}

/** ONNX's floating element types by TensorProto code, bfloat16 (16) included, which has no DType here. */
const FLOAT_CODES = new Map<number, string>([
  [OnnxDataType.float32, 'float32'],
  [OnnxDataType.float64, 'float64'],
  [OnnxDataType.float16, 'float16'],
  [16, 'bfloat16'],
]);

/**
 * The one floating dtype a graph's values can have — that of every floating input, output, initializer
 * and tensor attribute, and of every dtype a node casts to or makes (Cast's `to`, RandomNormal's
 * `dtype`, ConstantOfShape's float32 default) — when it is float32 or float64 alone; null when floats
 * are mixed.
 */
function soleFloatType(graph: OnnxGraph): 'float32' | 'float64' | null {
  const seen = new Set<string>();
  const note = (dtype: string | undefined) => {
    if (dtype && (FLOAT_DTYPES.has(dtype) || dtype === 'bfloat16')) seen.add(dtype);
  };
  for (const v of [...graph.inputs, ...graph.outputs]) note(v.dtype);
  for (const t of graph.initializers.values()) note(t.dtype);
  for (const n of graph.nodes) {
    // ops that make float32 unless told otherwise
    if (n.opType === 'ConstantOfShape' && !n.attrs['value']) note('float32');
    if ((n.opType === 'RandomNormal' || n.opType === 'RandomUniform') && !n.attrs['dtype']) note('float32');
    for (const [name, a] of Object.entries(n.attrs)) {
      if (a.type === 'tensor') note(a.value.dtype);
      else if ((name === 'to' || name === 'dtype') && a.type === 'int') note(FLOAT_CODES.get(a.value));
    }
  }
  const [only] = seen;
  return seen.size === 1 && (only === 'float32' || only === 'float64') ? only : null;
}
