import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { issueMessage } from '../../src/shared/errors.js';

describe('issue messages in words', () => {
  it('a bound says whether it is included: "at least" for min, "more than" for positive', () => {
    const first = (schema: z.ZodType, v: unknown) => issueMessage(schema.safeParse(v).error!.issues[0]!, v);
    expect(first(z.number().min(0), -2)).toBe('at least 0 (you gave -2)');
    expect(first(z.number().positive(), 0)).toBe('more than 0 (you gave 0)');
    expect(first(z.number().max(1), 3)).toBe('at most 1 (you gave 3)');
  });
});
