/**
 * `inspect`: read an ONNX file nobody wrote a manifest for, guess the role of each input and output
 * (image, time, class label, output) and the time encoding, and propose a manifest (docs/manifests.md).
 * Every guess the graph cannot settle is said in `guesses`, so the user knows what to check.
 * Pure: the CLI and the studio's import validate the proposal by loading it (a dry run).
 */
import { MANIFEST_FORMATS, type ManifestKind } from '../../../shared/manifest.js';
import type { Dim, OnnxModel, ValueInfo } from '../onnx/ir.js';

export type TensorRole = 'image' | 'time' | 'class' | 'output' | 'unused';

export interface InspectedTensor {
  name: string;
  dtype: string;
  /** dims as the file says them: numbers, symbolic names, or "?" */
  shape: string[] | null;
  role: TensorRole;
  why: string;
}

export interface Inspection {
  producer: string;
  opset: number;
  inputs: InspectedTensor[];
  outputs: InspectedTensor[];
  kind: ManifestKind;
  kindWhy: string;
  /** the proposed manifest (raw JSON, parsed by the schema when validated) */
  manifest: Record<string, unknown>;
  /** what the graph cannot tell: check these before trusting the proposal */
  guesses: string[];
}

export interface InspectOptions {
  /** the ONNX file's name as the manifest will name it (relative to the manifest) */
  onnxName: string;
  name?: string | undefined;
  kind?: ManifestKind | undefined;
  /** one item's shape when the file leaves it symbolic, e.g. [3, 64, 64] */
  dataShape?: number[] | undefined;
  prediction?: 'eps' | 'x0' | 'v' | 'edm-denoiser' | 'score' | undefined;
  valueRange?: [number, number] | undefined;
}

const IMAGE_NAMES = /^(x|sample|samples|input|inputs|image|images|img|x_t|xt|noisy|noisy_images?|latent|z)$/i;
const TIME_NAMES = /^(t|ts|time|times|timestep|timesteps|step|steps|sigma|sigmas|noise_labels?|c_noise|noise_level|tau)$/i;
const CLASS_NAMES = /^(y|class|classes|class_labels?|labels?|cond|class_ids?)$/i;

const dimText = (d: Dim): string => (d === null ? '?' : String(d));
const FLOAT = new Set(['float32', 'float64', 'float16']);
const INT = new Set(['int64', 'int32']);

/** Why the file cannot be used, in a sentence, for errors raised before a proposal exists. */
export class InspectError extends Error {}

function shapeOf(v: ValueInfo): string[] | null {
  return v.shape ? v.shape.map(dimText) : null;
}

/** The image input: a float input of rank ≥ 3 (rank 4 preferred), a known name breaking ties. */
function findImage(inputs: ValueInfo[]): ValueInfo | undefined {
  const cands = inputs.filter((v) => FLOAT.has(v.dtype) && (v.shape?.length ?? 0) >= 3);
  const score = (v: ValueInfo) => (v.shape?.length === 4 ? 2 : 0) + (IMAGE_NAMES.test(v.name) ? 1 : 0);
  return cands.sort((a, b) => score(b) - score(a))[0];
}

/** A class input's count: the rows of the embedding table it indexes (Gather on an initializer). */
function classCountFromGraph(model: OnnxModel, input: string): number | null {
  const seen = new Set([input]);
  // follow casts/reshapes a few steps: exporters often Cast or Unsqueeze labels before the Gather
  for (let hop = 0; hop < 4; hop++) {
    for (const n of model.graph.nodes) {
      if (n.opType === 'Gather' && seen.has(n.inputs[1] ?? '')) {
        const table = model.graph.initializers.get(n.inputs[0] ?? '');
        if (table && table.dims.length === 2) return table.dims[0]!;
      }
    }
    for (const n of model.graph.nodes) {
      if (['Cast', 'Unsqueeze', 'Reshape', 'Squeeze', 'Identity'].includes(n.opType) && seen.has(n.inputs[0] ?? ''))
        n.outputs.forEach((o) => seen.add(o));
    }
  }
  return null;
}

/** Whether `output` is produced by a Sigmoid (a probability, not a logit), through reshapes. */
function endsInSigmoid(model: OnnxModel, output: string): boolean {
  let name = output;
  for (let hop = 0; hop < 6; hop++) {
    const n = model.graph.nodes.find((m) => m.outputs.includes(name));
    if (!n) return false;
    if (n.opType === 'Sigmoid') return true;
    if (!['Reshape', 'Squeeze', 'Flatten', 'Identity', 'Gather'].includes(n.opType)) return false;
    name = n.inputs[0] ?? '';
  }
  return false;
}

/** The image, time and class inputs, or why the graph has none the app can feed. */
interface Roles {
  image: ValueInfo;
  time: ValueInfo;
  classIn: ValueInfo | undefined;
}

const listed = (vs: ValueInfo[]): string => vs.map((v) => `"${v.name}" [${shapeOf(v)?.join(', ') ?? '?'}]`).join(', ');

function findRoles(inputs: ValueInfo[]): Roles {
  if (!inputs.length) throw new InspectError('the graph has no inputs');
  const image = findImage(inputs);
  if (!image) {
    throw new InspectError(
      `no image input: a diffusion model, discriminator or classifier takes a float tensor of rank ≥ 3 (batch, channels, height, width); the inputs are ${inputs
        .map((v) => `"${v.name}" ${v.dtype} [${shapeOf(v)?.join(', ') ?? '?'}]`)
        .join(', ')}`,
    );
  }
  const rest = inputs.filter((v) => v !== image);
  const small = rest.filter((v) => (v.shape?.length ?? 1) <= 1);
  // time: a rank-0/1 input with a time-like name, else the first rank-0/1 input that is not class-like
  const time = small.find((v) => TIME_NAMES.test(v.name)) ?? small.find((v) => !CLASS_NAMES.test(v.name));
  const classIn = rest.find((v) => v !== time && (CLASS_NAMES.test(v.name) || INT.has(v.dtype) || (v.shape?.length ?? 0) === 2));
  if (!time) {
    throw new InspectError(
      `no time input: a diffusion model or time-conditioned discriminator takes a time (a scalar or one value per item) besides "${image.name}"; the other inputs are ${
        rest.length ? listed(rest) : 'none'
      }`,
    );
  }
  const unknown = rest.filter((v) => v !== time && v !== classIn);
  if (unknown.length) {
    throw new InspectError(
      `input${unknown.length > 1 ? 's' : ''} ${unknown.map((v) => `"${v.name}"`).join(', ')} ha${unknown.length > 1 ? 've' : 's'} no role DG Studio can feed (it feeds an image, a time and a class label)`,
    );
  }
  return { image, time, classIn };
}

/** What the model is (score model, discriminator, classifier), from its outputs' shapes or as asked. */
function findKind(
  image: ValueInfo,
  outputs: ValueInfo[],
  asked: ManifestKind | undefined,
): { kind: ManifestKind; kindWhy: string; output: ValueInfo; floatOuts: number } {
  const imgShape = image.shape!;
  const floatOuts = outputs.filter((o) => FLOAT.has(o.dtype));
  const sameAsImage = floatOuts.find(
    (o) =>
      o.shape &&
      o.shape.length === imgShape.length &&
      o.shape.every((d, i) => i === 0 || typeof d !== 'number' || typeof imgShape[i] !== 'number' || d === imgShape[i]),
  );
  const perItem = floatOuts.find((o) => o.shape && (o.shape.length === 1 || (o.shape.length === 2 && o.shape[1] === 1)));
  const perClass = floatOuts.find((o) => o.shape && o.shape.length === 2 && typeof o.shape[1] === 'number' && o.shape[1] > 1);
  const n = floatOuts.length;
  if (asked) {
    const output = asked === 'score' ? sameAsImage : asked === 'discriminator' ? perItem : perClass;
    if (output) return { kind: asked, kindWhy: 'as asked (--kind)', output, floatOuts: n };
    const want =
      asked === 'score'
        ? `the image's shape [${imgShape.map(dimText).join(', ')}]`
        : asked === 'discriminator'
          ? 'one value per item ([N] or [N, 1])'
          : 'one value per class ([N, K])';
    throw new InspectError(`asked for a ${asked} but no float output has ${want}; the outputs are ${listed(outputs)}`);
  }
  const found: [ManifestKind, ValueInfo | undefined, string][] = [
    ['score', sameAsImage, "has the image's shape: a score model (denoiser)"],
    ['discriminator', perItem, 'is one value per item: a discriminator'],
    ['classifier', perClass, 'is one value per class: a classifier'],
  ];
  for (const [kind, output, why] of found) if (output) return { kind, output, floatOuts: n, kindWhy: `output "${output.name}" ${why}` };
  throw new InspectError(
    `cannot tell what the model is: no output has the image's shape (a score model), one value per item (a discriminator) or one per class (a classifier); the outputs are ${listed(outputs)}`,
  );
}

/** One item's shape: the file's dims after the batch, or --data-shape where the file leaves them symbolic. */
function itemShape(image: ValueInfo, asked: number[] | undefined): number[] {
  const imgShape = image.shape!;
  const dims = imgShape.slice(1);
  let dataShape: number[];
  if (dims.every((d): d is number => typeof d === 'number')) {
    dataShape = dims;
    if (asked && asked.join('x') !== dims.join('x'))
      throw new InspectError(`--data-shape ${asked.join(',')} differs from the file's [${dims.join(', ')}] for "${image.name}"`);
  } else if (asked) {
    if (asked.length !== dims.length)
      throw new InspectError(`--data-shape has ${asked.length} dims; "${image.name}" has ${dims.length} after the batch`);
    dataShape = asked;
  } else {
    throw new InspectError(
      `the size of "${image.name}" is not fixed in the file ([${imgShape.map(dimText).join(', ')}]); give one item's shape with --data-shape, e.g. 3,64,64`,
    );
  }
  if (typeof imgShape[0] === 'number' && imgShape[0] !== 1)
    throw new InspectError(
      `"${image.name}" has a fixed batch of ${imgShape[0]}; re-export with a dynamic batch axis (torch.onnx.export(..., dynamic_axes=...))`,
    );
  return dataShape;
}

/** Each input and output with the role it was given and why. */
function describeTensors(model: OnnxModel, roles: Roles, output: ValueInfo, kindWhy: string) {
  const { image, time } = roles;
  const mark = (v: ValueInfo, role: TensorRole, why: string): InspectedTensor => ({
    name: v.name,
    dtype: v.dtype,
    shape: shapeOf(v),
    role,
    why,
  });
  const inputs = model.graph.inputs.map((v) => {
    if (v === image) return mark(v, 'image', `float, rank ${image.shape!.length}${IMAGE_NAMES.test(v.name) ? ', image-like name' : ''}`);
    if (v === time)
      return mark(
        v,
        'time',
        `${time.shape?.length === 0 ? 'a scalar' : 'one value per item'}${TIME_NAMES.test(v.name) ? ', time-like name' : ''}`,
      );
    return mark(
      v,
      'class',
      CLASS_NAMES.test(v.name) ? 'label-like name' : INT.has(v.dtype) ? 'integer input besides the time' : 'one-hot rows',
    );
  });
  const outputs = model.graph.outputs.map((o) => (o === output ? mark(o, 'output', kindWhy) : mark(o, 'unused', 'not needed')));
  return { inputs, outputs };
}

/** A score model's time encoding, schedule and parameterization, guessed from the time input's dtype and name. */
function scoreTimeGuess(time: ValueInfo, asked: InspectOptions['prediction'], guesses: string[]) {
  let timeInput: Record<string, unknown>;
  let schedule: Record<string, unknown> = { kind: 'ddpm-linear', steps: 1000, betaStart: 1e-4, betaEnd: 0.02 };
  let prediction = asked ?? 'eps';
  let preconditioning: Record<string, unknown> | undefined;
  if (INT.has(time.dtype)) {
    timeInput = { kind: 'step' };
    guesses.push(
      'an integer time: a DDPM step index over a linear schedule, T = 1000 (betaStart 1e-4, betaEnd 0.02); change "schedule" if it was trained on another',
    );
  } else if (/^sigmas?$/i.test(time.name)) {
    timeInput = { kind: 'sigma' };
    schedule = { kind: 'edm' };
    if (!asked) prediction = 'edm-denoiser';
    guesses.push(
      `a float time named "${time.name}": the VE noise level σ, an EDM-style denoiser D(x; σ) with preconditioning applied inside`,
    );
  } else if (/^(noise_labels?|c_noise)$/i.test(time.name)) {
    timeInput = { kind: 'edm-c-noise' };
    schedule = { kind: 'edm' };
    if (!asked) prediction = 'edm-denoiser';
    preconditioning = { kind: 'edm', sigmaData: 0.5 };
    guesses.push(
      `a float time named "${time.name}": EDM's raw network F, fed c_noise = ¼ ln σ; the adapter applies EDM's preconditioning (σ_data 0.5)`,
    );
  } else if (/^timesteps?$/i.test(time.name)) {
    timeInput = { kind: 'step' };
    guesses.push(
      `a float time named "${time.name}": diffusers' convention, a DDPM step index 0…999 fed as a float, linear schedule (betaStart 1e-4, betaEnd 0.02); change "schedule" if it was trained on another`,
    );
  } else {
    timeInput = { kind: 't', scale: 1 };
    schedule = { kind: 'lvp', betaMin: 0.1, betaMax: 20 };
    guesses.push(
      `a float time named "${time.name}": continuous VP time t ∈ (0, 1] on the linear VP SDE (β 0.1…20); for t·999 set timeInput.scale 999`,
    );
  }
  if (!asked && prediction === 'eps') guesses.push('prediction "eps" (the network predicts the noise ε); other choices: x0, v, score');
  return { timeInput, schedule, prediction, preconditioning };
}

interface ManifestParts {
  model: OnnxModel;
  roles: Roles;
  output: ValueInfo;
  base: Record<string, unknown>;
  dataShape: number[];
  valueRange: [number, number];
  guesses: string[];
}

function scoreManifest(p: ManifestParts, asked: InspectOptions['prediction']): Record<string, unknown> {
  const { image, time, classIn } = p.roles;
  const { timeInput, schedule, prediction, preconditioning } = scoreTimeGuess(time, asked, p.guesses);
  const manifest: Record<string, unknown> = {
    format: MANIFEST_FORMATS.score,
    ...p.base,
    io: { x: image.name, t: time.name, output: p.output.name, ...(classIn ? { classLabel: classIn.name } : {}) },
    timeDType: time.dtype === 'float16' ? 'float32' : time.dtype,
    timeShape: time.shape?.length === 0 ? 'scalar' : 'batch',
    prediction,
    schedule,
    timeInput,
    ...(preconditioning ? { preconditioning } : {}),
    dataShape: p.dataShape,
    valueRange: p.valueRange,
  };
  if (classIn) {
    const oneHot = FLOAT.has(classIn.dtype) && classIn.shape?.length === 2;
    const count = oneHot ? classIn.shape![1] : classCountFromGraph(p.model, classIn.name);
    if (typeof count !== 'number')
      throw new InspectError(
        `the class input "${classIn.name}" does not say how many classes there are; give "classes": {"count": K} in the manifest`,
      );
    manifest['classes'] = { count, encoding: oneHot ? 'one-hot' : 'index' };
    p.guesses.push(`class-conditional, ${count} classes (${oneHot ? 'one-hot rows' : 'read from the embedding table'})`);
  }
  return manifest;
}

/** What discriminators and classifiers share: LVP time τ (dg-math §4) in the encoding the time input suggests. */
function guidedCommon(p: ManifestParts, kind: ManifestKind): Record<string, unknown> {
  const { time } = p.roles;
  let timeInput: Record<string, unknown>;
  if (INT.has(time.dtype)) {
    timeInput = { kind: 'step', steps: 1000 };
    p.guesses.push('an integer time: the DDPM step i = τ·1000 − 1 (the paper\'s discriminators); change "steps" for another T');
  } else if (/^sigmas?$/i.test(time.name)) {
    timeInput = { kind: 'sigma' };
    p.guesses.push(`a float time named "${time.name}": the VE noise level σ(τ)`);
  } else if (/^timesteps?$/i.test(time.name)) {
    timeInput = { kind: 't', scale: 999 };
    p.guesses.push(`a float time named "${time.name}": τ·999 (a DDPM-style step as a float); use scale 1 if it takes τ ∈ (0, 1]`);
  } else {
    timeInput = { kind: 't', scale: 1 };
    p.guesses.push(`a float time named "${time.name}": LVP time τ ∈ (0, 1]; set timeInput.scale if it was trained on τ·999`);
  }
  if (time.shape?.length === 0)
    throw new InspectError(`the time input "${time.name}" is a scalar; a ${kind} needs one time per item ([N])`);
  p.guesses.push('coordinates "vp": the network sees x_vp = α·x (as in the paper); use "ve" if it was trained on x + σ·ε');
  return {
    ...p.base,
    timeInput,
    timeDType: INT.has(time.dtype) ? 'int64' : 'float32',
    coordinates: 'vp',
    dataShape: p.dataShape,
    valueRange: p.valueRange,
  };
}

function discriminatorManifest(p: ManifestParts): Record<string, unknown> {
  const { image, time, classIn } = p.roles;
  if (classIn && classIn.name !== 'class_label')
    throw new InspectError(`a class-conditional discriminator's class input must be named "class_label"; this one is "${classIn.name}"`);
  const probability = endsInSigmoid(p.model, p.output.name);
  const manifest: Record<string, unknown> = {
    format: MANIFEST_FORMATS.discriminator,
    kind: 'onnx',
    ...guidedCommon(p, 'discriminator'),
    io: { x: image.name, t: time.name, output: p.output.name },
    output: probability ? 'probability' : 'logit',
  };
  if (classIn) {
    const count = classCountFromGraph(p.model, classIn.name);
    if (count === null)
      throw new InspectError(`the class input "${classIn.name}" does not say how many classes there are; list them in "classes"`);
    manifest['classes'] = Array.from({ length: count }, (_, i) => `class-${i}`);
    p.guesses.push(`class-conditional with ${count} classes: name them in "classes"`);
  }
  p.guesses.push(
    probability
      ? 'output is d = sigmoid(…) (the graph ends in a Sigmoid)'
      : 'output is a logit log(d/(1−d)) (the graph does not end in a Sigmoid)',
  );
  return manifest;
}

function classifierManifest(p: ManifestParts): Record<string, unknown> {
  const { image, time, classIn } = p.roles;
  if (classIn) throw new InspectError(`a classifier takes no class input; "${classIn.name}" has no role`);
  const common = guidedCommon(p, 'classifier');
  const k = p.output.shape![1] as number;
  p.guesses.push(
    `${k} classes named class-0…class-${k - 1}: put the real names in "classes"; output taken as logits (log-softmax applied)`,
  );
  return {
    format: MANIFEST_FORMATS.classifier,
    ...common,
    io: { x: image.name, t: time.name, output: p.output.name },
    output: 'logits',
    classes: Array.from({ length: k }, (_, i) => `class-${i}`),
  };
}

export function inspectModel(model: OnnxModel, opts: InspectOptions): Inspection {
  const roles = findRoles(model.graph.inputs);
  const { kind, kindWhy, output, floatOuts } = findKind(roles.image, model.graph.outputs, opts.kind);
  const guesses: string[] = [];
  if (floatOuts > 1)
    guesses.push(
      `the file has ${floatOuts} float outputs; "${output.name}" was taken as the ${kind === 'score' ? 'prediction' : 'output'}`,
    );
  const dataShape = itemShape(roles.image, opts.dataShape);
  const { inputs, outputs } = describeTensors(model, roles, output, kindWhy);
  const name = opts.name ?? opts.onnxName.replace(/\.onnx$/i, '');
  const valueRange = opts.valueRange ?? [-1, 1];
  if (!opts.valueRange) guesses.push('valueRange [-1, 1] (pixels scaled to [-1, 1]); use [0, 1] if the network was trained on [0, 1]');
  const base = { name, description: `proposed by dg-studio inspect from ${opts.onnxName}`, onnx: opts.onnxName };
  const parts: ManifestParts = { model, roles, output, base, dataShape, valueRange, guesses };
  const manifest =
    kind === 'score'
      ? scoreManifest(parts, opts.prediction)
      : kind === 'discriminator'
        ? discriminatorManifest(parts)
        : classifierManifest(parts);
  return { producer: model.producer, opset: model.opsetVersion, inputs, outputs, kind, kindWhy, manifest, guesses };
}
