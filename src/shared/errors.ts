/**
 * Validation errors in words: a request's zod issues as "Steps: at most 1000 (you gave 5000)",
 * with the field's name as the studio shows it, not a schema path. Used by the back end for every
 * refused request and by the renderer next to the field.
 */
import type { z } from 'zod';

/** Labels of the fields a person fills in (the last path element names the field). */
export const FIELD_LABELS: Record<string, string> = {
  t0: 't0',
  t0Min: 'smallest t0',
  t0Max: 'largest t0',
  t0Range: 't0 range',
  steps: 'Steps',
  seed: 'Seed',
  batchSize: 'Batch',
  dgWeight: 'DG weight',
  dgWeight2: 'DG weight (2nd stage)',
  dgWindow: 'DG window',
  cgWeight: 'CG weight',
  classLabel: 'Class',
  eta: 'η',
  churn: 'Churn',
  weights: 'DG weights',
  sampler: 'Sampler',
  spacing: 'Spacing',
  sigmaMin: 'σ min',
  limit: 'Limit',
  name: 'Name',
  threads: 'Threads',
  outputDir: 'Output folder',
  period: 'Boost every',
  lr: 'Learning rate',
  sources: 'Sources',
  files: 'Files',
};

function labelOf(path: readonly PropertyKey[]): string {
  const named = path.filter((p): p is string => typeof p === 'string');
  const last = named.at(-1);
  if (!last) return 'the request';
  const label = FIELD_LABELS[last] ?? last;
  const index = path.at(-1);
  return typeof index === 'number' && named.length ? `${label} (item ${index + 1})` : label;
}

/** One issue as a sentence a person can act on, after the field's label. */
export function issueText(issue: z.core.$ZodIssue, input?: unknown): string {
  return `${labelOf(issue.path)}: ${issueMessage(issue, input)}`;
}

/** What is wrong with one field, in words, without naming the field. */
export function issueMessage(issue: z.core.$ZodIssue, input?: unknown): string {
  const i = issue as z.core.$ZodIssue & {
    minimum?: number | bigint;
    maximum?: number | bigint;
    inclusive?: boolean;
    expected?: string;
    origin?: string;
    values?: unknown[];
    keys?: string[];
  };
  const gave = input === undefined ? '' : ` (you gave ${JSON.stringify(input)})`;
  const a = (t?: string) => (t === 'number' ? 'a number' : t === 'object' || t === 'array' ? `an ${t}` : `a ${t}`);
  // a schema's own message (e.g. "t0 must be in (0, 1]") already speaks in words
  if (!/^(Too big|Too small|Invalid|Expected|Unrecognized)/.test(i.message)) return `${i.message}${gave}`;
  switch (i.code) {
    case 'invalid_type':
      if (input === undefined) return `missing: give ${a(i.expected)}`;
      if (input === null || input === '') return `enter ${a(i.expected)}`;
      return `expected ${a(i.expected)}${gave}`;
    case 'too_big':
      return i.origin === 'number' || i.origin === 'int'
        ? `at most ${String(i.maximum)}${gave}`
        : `too many or too long (at most ${String(i.maximum)})`;
    case 'too_small':
      return i.origin === 'number' || i.origin === 'int'
        ? `${i.inclusive === false ? 'more than' : 'at least'} ${String(i.minimum)}${gave}`
        : Number(i.minimum) === 1
          ? 'give at least one'
          : `at least ${String(i.minimum)} needed`;
    case 'invalid_value':
      return `choose one of ${(i.values ?? []).map(String).join(', ')}${gave}`;
    case 'invalid_union':
      // a discriminated union names its choices: "Invalid discriminator value. Expected 'a' | 'b'"
      return /Expected (.+)$/.test(i.message)
        ? `choose one of ${/Expected (.+)$/.exec(i.message)![1]}${gave}`
        : `not a form this field takes${gave}`;
    case 'unrecognized_keys':
      return `fields it does not take (${(i.keys ?? []).join(', ')})`;
    default:
      return `${i.message}${gave}`;
  }
}

/** The value at a zod issue's path inside the request, to quote back to the user. */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** Every issue of a failed parse, in words, one per line-ish (joined by "; "). */
export function describeIssues(error: z.ZodError, input: unknown): string {
  return error.issues.map((i) => issueText(i, valueAt(input, i.path))).join('; ');
}

/** A request whose arguments the contract's schema refused (the server answers 400), said in words. */
export class PayloadError extends Error {
  constructor(method: string, error: z.ZodError, input: unknown) {
    // in words for the person; the method name only as a trailing hint for developers
    super(`${describeIssues(error, input)} (refused: invalid request to ${method})`);
    this.name = 'PayloadError';
  }
}
