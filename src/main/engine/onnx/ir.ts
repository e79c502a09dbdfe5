/**
 * One in-memory IR for ONNX graphs: built by the project's own networks (GraphBuilder),
 * parsed from user models, differentiated, and serialized for ONNX Runtime.
 */
import { ModelProto, OnnxAttrType, OnnxDataType } from './proto.js';

export type DType = keyof typeof OnnxDataType;
/** The floating element types (autodiff differentiates only these). */
export const FLOAT_DTYPES: ReadonlySet<string> = new Set<DType>(['float16', 'float32', 'float64']);
export type TensorArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

export interface TensorData {
  dtype: DType;
  dims: number[];
  data: TensorArray;
}

export type Attr =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: TensorData };

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, Attr>;
}

/** A dimension is a fixed size, a symbolic name ("N"), or unknown (null). */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Dim[] | null;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, TensorData>;
}

export interface OnnxModel {
  graph: OnnxGraph;
  opsetVersion: number;
  /** opset versions of the other domains the file imports (ONNX Runtime's com.microsoft, …), kept for serializing */
  domainOpsets?: Record<string, number>;
  producer: string;
  metadata: Record<string, string>;
}

export const DEFAULT_OPSET = 17;
const IR_VERSION = 8;

const dtypeByCode = new Map<number, DType>(Object.entries(OnnxDataType).map(([name, code]) => [code, name as DType]));

export function float(value: number): Attr {
  return { type: 'float', value };
}
export function int(value: number): Attr {
  return { type: 'int', value };
}
export function ints(value: number[]): Attr {
  return { type: 'ints', value };
}
export function floats(value: number[]): Attr {
  return { type: 'floats', value };
}
export function str(value: string): Attr {
  return { type: 'string', value };
}

// a node's attribute values, with defaults (the builders above make them)
export function intAttr(node: OnnxNode, name: string, dflt: number): number {
  const a = node.attrs[name];
  return a?.type === 'int' ? a.value : dflt;
}
/** A float attribute (an int one read as a number too: some exporters write epsilon = 0 as an int). */
export function floatAttr(node: OnnxNode, name: string, dflt: number): number {
  const a = node.attrs[name];
  return a?.type === 'float' ? a.value : a?.type === 'int' ? a.value : dflt;
}
export function intsAttr(node: OnnxNode, name: string): number[] | null {
  const a = node.attrs[name];
  return a?.type === 'ints' ? a.value : null;
}
export function strAttr(node: OnnxNode, name: string, dflt: string): string {
  const a = node.attrs[name];
  return a?.type === 'string' ? a.value : dflt;
}

export function tensorData(dtype: DType, dims: number[], values: ArrayLike<number> | TensorArray): TensorData {
  const size = dims.reduce((a, b) => a * b, 1);
  let data: TensorArray;
  switch (dtype) {
    case 'float32':
      data = Float32Array.from(values as ArrayLike<number>);
      break;
    case 'float64':
      data = Float64Array.from(values as ArrayLike<number>);
      break;
    case 'int64':
      data = values instanceof BigInt64Array ? values : BigInt64Array.from(Array.from(values as ArrayLike<number>, (v) => BigInt(v)));
      break;
    case 'int32':
      data = Int32Array.from(values as ArrayLike<number>);
      break;
    case 'bool':
    case 'uint8':
      data = Uint8Array.from(values as ArrayLike<number>);
      break;
    case 'int8':
      data = Int8Array.from(values as ArrayLike<number>);
      break;
    default:
      throw new Error(`tensor dtype ${dtype} is not supported by the engine`);
  }
  if (data.length !== size) {
    throw new Error(`tensor of shape [${dims.join(', ')}] needs ${size} values, got ${data.length}`);
  }
  return { dtype, dims, data };
}

function attrToProto(name: string, attr: Attr): Record<string, unknown> {
  switch (attr.type) {
    case 'float':
      return { name, type: OnnxAttrType.FLOAT, f: attr.value };
    case 'int':
      return { name, type: OnnxAttrType.INT, i: attr.value };
    case 'string':
      return { name, type: OnnxAttrType.STRING, s: new TextEncoder().encode(attr.value) };
    case 'floats':
      return { name, type: OnnxAttrType.FLOATS, floats: attr.value };
    case 'ints':
      return { name, type: OnnxAttrType.INTS, ints: attr.value };
    case 'strings':
      return { name, type: OnnxAttrType.STRINGS, strings: attr.value.map((s) => new TextEncoder().encode(s)) };
    case 'tensor':
      return { name, type: OnnxAttrType.TENSOR, t: tensorToProto('', attr.value) };
  }
}

function tensorToProto(name: string, t: TensorData): Record<string, unknown> {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dims: t.dims, dataType: OnnxDataType[t.dtype], rawData: bytes.slice() };
}

function valueInfoToProto(v: ValueInfo): Record<string, unknown> {
  const tensorType: Record<string, unknown> = { elemType: OnnxDataType[v.dtype] };
  if (v.shape) {
    tensorType['shape'] = {
      dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})),
    };
  }
  return { name: v.name, type: { tensorType } };
}

/** Serialize a model to ONNX protobuf bytes. */
export function serializeModel(model: OnnxModel): Uint8Array {
  const g = model.graph;
  const message = ModelProto.fromObject({
    irVersion: IR_VERSION,
    producerName: model.producer,
    // the standard opset, and every other domain a node uses: the version the file imported, else 1 (ONNX Runtime's own)
    opsetImport: [
      { domain: '', version: model.opsetVersion },
      ...[...new Set(g.nodes.map((n) => n.domain).filter((d) => d && d !== 'ai.onnx'))].map((domain) => ({
        domain,
        version: model.domainOpsets?.[domain] ?? 1,
      })),
    ],
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: g.name,
      node: g.nodes.map((n) => ({
        name: n.name,
        opType: n.opType,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => attrToProto(k, a)),
      })),
      initializer: [...g.initializers].map(([name, t]) => tensorToProto(name, t)),
      input: g.inputs.map(valueInfoToProto),
      output: g.outputs.map(valueInfoToProto),
    },
  });
  return ModelProto.encode(message).finish();
}

// ---- parsing ----

interface ProtoTensor {
  dims?: (number | { toNumber(): number })[];
  dataType?: number;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: (number | { toNumber(): number })[];
  doubleData?: number[];
  rawData?: Uint8Array;
  name?: string;
  dataLocation?: number;
}

function toNum(v: number | { toNumber(): number }): number {
  return typeof v === 'number' ? v : v.toNumber();
}

function tensorFromProto(p: ProtoTensor, where: string): TensorData {
  const dtype = dtypeByCode.get(p.dataType ?? 0);
  if (!dtype) throw new Error(`${where}: tensor data type ${p.dataType} is not supported`);
  if (p.dataLocation === 1) throw new Error(`${where}: tensors stored in external files are not supported`);
  const dims = (p.dims ?? []).map(toNum);
  if (p.rawData && p.rawData.length > 0) {
    const buf = new Uint8Array(p.rawData).buffer; // a copy: decoded bytes may view a shared pool
    const ctor = {
      float32: Float32Array,
      float64: Float64Array,
      int64: BigInt64Array,
      int32: Int32Array,
      bool: Uint8Array,
      uint8: Uint8Array,
      int8: Int8Array,
      float16: null,
    }[dtype];
    if (!ctor) throw new Error(`${where}: float16 tensors are not supported; export the model in float32`);
    return { dtype, dims, data: new ctor(buf) };
  }
  const values =
    dtype === 'float32'
      ? (p.floatData ?? [])
      : dtype === 'float64'
        ? (p.doubleData ?? [])
        : dtype === 'int64'
          ? (p.int64Data ?? []).map(toNum)
          : (p.int32Data ?? []);
  return tensorData(dtype, dims, values);
}

interface ProtoAttr {
  name: string;
  type?: number;
  f?: number;
  i?: number | { toNumber(): number };
  s?: Uint8Array;
  t?: ProtoTensor;
  floats?: number[];
  ints?: (number | { toNumber(): number })[];
  strings?: Uint8Array[];
  g?: unknown;
}

function attrFromProto(a: ProtoAttr, where: string): Attr {
  const dec = new TextDecoder();
  switch (a.type) {
    case OnnxAttrType.FLOAT:
      return float(a.f ?? 0);
    case OnnxAttrType.INT:
      return int(toNum(a.i ?? 0));
    case OnnxAttrType.STRING:
      return str(dec.decode(a.s ?? new Uint8Array()));
    case OnnxAttrType.FLOATS:
      return floats(a.floats ?? []);
    case OnnxAttrType.INTS:
      return ints((a.ints ?? []).map(toNum));
    case OnnxAttrType.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => dec.decode(s)) };
    case OnnxAttrType.TENSOR:
      return { type: 'tensor', value: tensorFromProto(a.t ?? {}, where) };
    default:
      throw new Error(`${where}: attribute "${a.name}" has a type (${a.type}) the engine does not support`);
  }
}

interface ProtoValueInfo {
  name: string;
  type?: {
    tensorType?: {
      elemType?: number;
      shape?: { dim?: { dimValue?: number | { toNumber(): number }; dimParam?: string }[] };
    };
  };
}

function valueInfoFromProto(v: ProtoValueInfo): ValueInfo {
  const tt = v.type?.tensorType;
  const dtype = dtypeByCode.get(tt?.elemType ?? 0) ?? 'float32';
  const shape = tt?.shape
    ? (tt.shape.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null ? toNum(d.dimValue) : (d.dimParam ?? null)))
    : null;
  return { name: v.name, dtype, shape };
}

/** Parse ONNX protobuf bytes into the IR. `source` names the file in error messages. */
export function parseModel(bytes: Uint8Array, source = 'model'): OnnxModel {
  let decoded: Record<string, unknown>;
  try {
    decoded = ModelProto.toObject(ModelProto.decode(bytes), { defaults: false }) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`cannot read "${source}": not a valid ONNX file (${(e as Error).message})`, { cause: e });
  }
  const g = decoded['graph'] as
    | {
        name?: string;
        node?: {
          name?: string;
          opType: string;
          domain?: string;
          input?: string[];
          output?: string[];
          attribute?: ProtoAttr[];
        }[];
        initializer?: ProtoTensor[];
        input?: ProtoValueInfo[];
        output?: ProtoValueInfo[];
      }
    | undefined;
  if (!g) throw new Error(`cannot read "${source}": the ONNX file has no graph`);
  const opsets = (decoded['opsetImport'] as { domain?: string; version: number | { toNumber(): number } }[]) ?? [];
  const main = opsets.find((o) => !o.domain || o.domain === 'ai.onnx');
  const initializers = new Map<string, TensorData>();
  for (const t of g.initializer ?? []) {
    initializers.set(t.name ?? '', tensorFromProto(t, `${source}: initializer "${t.name}"`));
  }
  const nodes: OnnxNode[] = (g.node ?? []).map((n, i) => {
    const name = n.name || `${n.opType}_${i}`;
    const attrs: Record<string, Attr> = {};
    for (const a of n.attribute ?? []) attrs[a.name] = attrFromProto(a, `${source}: node "${name}"`);
    return {
      name,
      opType: n.opType,
      domain: n.domain ?? '',
      inputs: n.input ?? [],
      outputs: n.output ?? [],
      attrs,
    };
  });
  const metadata: Record<string, string> = {};
  for (const e of (decoded['metadataProps'] as { key: string; value: string }[]) ?? []) metadata[e.key] = e.value;
  return {
    graph: {
      name: g.name ?? 'graph',
      nodes,
      inputs: (g.input ?? []).map(valueInfoFromProto).filter((v) => !initializers.has(v.name)),
      outputs: (g.output ?? []).map(valueInfoFromProto),
      initializers,
    },
    opsetVersion: main ? toNum(main.version) : DEFAULT_OPSET,
    domainOpsets: Object.fromEntries(opsets.filter((o) => o.domain && o.domain !== 'ai.onnx').map((o) => [o.domain!, toNum(o.version)])),
    producer: (decoded['producerName'] as string) ?? '',
    metadata,
  };
}
