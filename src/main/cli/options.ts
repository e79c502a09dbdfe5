/**
 * Option parsers shared by the CLI and the dev tools: each names the option in its error
 * (commander prints it and exits with code 2). One rule per kind of value, in every command:
 * counts (steps, batch sizes, threads, …) are whole numbers ≥ 1 (`positiveInt`), seeds whole numbers
 * in 0…2³²−1 (`seed`), weights and noise amounts numbers ≥ 0 (`nonNegative`), rates and sizes
 * numbers > 0 (`positive`), times and shares numbers in (0, 1] (`fraction`).
 */
import { InvalidArgumentError, Option } from '@commander-js/extra-typings';
import { EXECUTION_PROVIDERS } from '../engine/onnx/session.js';
import { SAMPLER_NAMES, TranslateParamsSchema } from '../../shared/params.js';

const DEFAULT_PARAMS = TranslateParamsSchema.parse({});

export function num(name: string) {
  return (v: string) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return x;
  };
}
export function int(name: string) {
  return (v: string) => {
    const x = num(name)(v);
    if (!Number.isInteger(x)) throw new InvalidArgumentError(`${name} must be a whole number, got "${v}"`);
    return x;
  };
}
export function list(name: string) {
  return (v: string) => v.split(',').map(num(name));
}
export function pair(name: string) {
  return (v: string): [number, number] => {
    const parts = v.split(',').map(num(name));
    if (parts.length !== 2) throw new InvalidArgumentError(`${name} takes two numbers "low,high", got "${v}"`);
    return [parts[0]!, parts[1]!];
  };
}
export function positiveInt(name: string) {
  return (v: string) => {
    const x = int(name)(v);
    if (x < 1) throw new InvalidArgumentError(`${name} must be at least 1, got "${v}"`);
    return x;
  };
}

export function nonNegative(name: string) {
  return (v: string) => {
    const x = num(name)(v);
    if (x < 0) throw new InvalidArgumentError(`${name} must be 0 or more, got "${v}"`);
    return x;
  };
}
export function positive(name: string, parse: (v: string) => number = num(name)) {
  return (v: string) => {
    const x = parse(v);
    if (!(x > 0)) throw new InvalidArgumentError(`${name} must be above 0, got "${v}"`);
    return x;
  };
}
export function fraction(name: string) {
  return (v: string) => {
    const x = num(name)(v);
    if (!(x > 0 && x <= 1)) throw new InvalidArgumentError(`${name} must be in (0, 1], got "${v}"`);
    return x;
  };
}
export function seed(name: string) {
  return (v: string) => {
    const x = int(name)(v);
    if (x < 0 || x > 2 ** 32 - 1) throw new InvalidArgumentError(`${name} must be a whole number in 0…4294967295, got "${v}"`);
    return x;
  };
}
export function nonNegativeInt(name: string) {
  return (v: string) => {
    const x = int(name)(v);
    if (x < 0) throw new InvalidArgumentError(`${name} must be a whole number ≥ 0, got "${v}"`);
    return x;
  };
}

/**
 * Options that several commands take, made once so that a flag means the same everywhere. Each adds
 * itself to a command (typed through @commander-js/extra-typings, so the action sees the field's type).
 */
export const providerOption = () =>
  new Option('--provider <ep>', 'ONNX Runtime execution provider').choices(EXECUTION_PROVIDERS).default('cpu' as const);
export const threadsOption = () =>
  new Option('--threads <n>', 'ONNX Runtime threads (default: all cores)').argParser(positiveInt('--threads'));
export const samplerOption = () => new Option('--sampler <name>', 'sampler').choices(SAMPLER_NAMES).default(DEFAULT_PARAMS.sampler);
export const stepsOption = (help = 'sampler steps') =>
  new Option('--steps <n>', help).argParser(positiveInt('--steps')).default(DEFAULT_PARAMS.steps);
export const seedOption = (help = 'seed of the first image; image i uses seed + i') =>
  new Option('--seed <n>', help).argParser(seed('--seed')).default(0);
/** `--gallery <dir>` in every command; the old `--dir` spelling of the gallery and study commands still works, unlisted */
export const galleryOption = () => new Option('--gallery <dir>', 'gallery folder (default: the studio gallery)');
export const oldGalleryDirOption = () => new Option('--dir <dir>').hideHelp();
