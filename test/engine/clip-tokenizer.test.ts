/**
 * CLIP tokenization of prompts (issue 27, dg-math §11) on the tiny fixture vocabulary (tools/make-sd-fixture.py:
 * the 256 byte characters, their "</w>" forms, six merges, then <|startoftext|> and <|endoftext|>).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOS, EOS, loadClipTokenizer } from '../../src/main/engine/text/clip-tokenizer.js';

const folder = join(import.meta.dirname, '..', 'fixtures', 'tiny-sd', 'diffusers', 'tokenizer');
const vocab = JSON.parse(readFileSync(join(folder, 'vocab.json'), 'utf8')) as Record<string, number>;
const id = (t: string) => vocab[t]!;

describe('the CLIP tokenizer', () => {
  const tok = loadClipTokenizer(folder);

  it('wraps a prompt in start and end tokens and pads to 77 with the end token', () => {
    const { ids, truncated, tokens } = tok.encode('a photo');
    expect(ids).toHaveLength(77);
    // "a" is a whole word ("a</w>"); "photo" merges p+h, ph+o, t+o</w>, pho+to</w> into one token
    expect(ids.slice(0, 4)).toEqual([id(BOS), id('a</w>'), id('photo</w>'), id(EOS)]);
    expect(ids.slice(4).every((x) => x === id(EOS))).toBe(true);
    expect([truncated, tokens]).toEqual([false, 2]);
  });

  it('lower-cases, folds whitespace and splits punctuation the way CLIP does', () => {
    expect(tok.encode('  A   PHOTO!').ids.slice(0, 5)).toEqual([id(BOS), id('a</w>'), id('photo</w>'), id('!</w>'), id(EOS)]);
    // a word without merges is its characters, the last one with "</w>"; digits are words of their own
    expect(tok.encode('art x42').ids.slice(0, 7)).toEqual([
      id(BOS),
      id('art</w>'),
      id('x</w>'),
      id('4</w>'),
      id('2</w>'),
      id(EOS),
      id(EOS),
    ]);
  });

  it('a prompt longer than 77 tokens is cut to fit, and says so', () => {
    const long = Array.from({ length: 100 }, () => 'art').join(' ');
    const r = tok.encode(long);
    expect(r.ids).toHaveLength(77);
    expect([r.truncated, r.tokens, r.ids[76]]).toEqual([true, 100, id(EOS)]);
  });

  it('gives the tiny trained model the ids it was trained with (tools/train-tiny-sd.py tokenizes in Python)', () => {
    // train.json records the first eight ids of each training prompt ("", "noto emoji", "twemoji")
    const dir = join(import.meta.dirname, '..', '..', 'tools', 'pretrained', 'tiny-sd-emoji');
    const record = JSON.parse(readFileSync(join(dir, 'train.json'), 'utf8')) as { log: string[] };
    const line = record.log.find((l) => l.includes('prompt ids'))!;
    const trained = JSON.parse(line.slice(line.indexOf('[['))) as number[][];
    const tiny = loadClipTokenizer(join(dir, 'model', 'tokenizer'));
    expect(['', 'noto emoji', 'twemoji'].map((p) => tiny.encode(p).ids.slice(0, 8))).toEqual(trained);
  });
});
