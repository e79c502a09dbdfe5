/**
 * CLIP's byte-level BPE tokenizer (dg-math §11, "Text") over a diffusers `tokenizer/` folder: `vocab.json` and
 * `merges.txt` (what diffusers' and Optimum's exports ship), run by Hugging Face's own Tokenizers.js with
 * CLIP's pipeline — NFC, whitespace folded, lower case; words, single digits and punctuation runs; bytes as
 * printable characters; BPE with the `</w>` end-of-word suffix; `<|startoftext|> … <|endoftext|>`, padded.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

export const BOS = '<|startoftext|>';
export const EOS = '<|endoftext|>';

export interface ClipTokenizer {
  /** sequence length the text encoder takes (77 for every SD) */
  length: number;
  /** the ids of a prompt: BOS, its tokens, EOS, padding to `length`; `truncated` when it was cut to fit */
  encode(text: string): { ids: number[]; truncated: boolean; tokens: number };
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`the tokenizer file "${path}" cannot be read as JSON (${(e as Error).message})`, { cause: e });
  }
}

const tokenText = (t: unknown) => (typeof t === 'string' ? t : t && typeof t === 'object' && 'content' in t ? String(t.content) : null);

/** A special token as tokenizer.json lists it. */
const added = (id: number, content: string) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: true,
  special: true,
});

/**
 * CLIP's pipeline written as a tokenizer.json (what Hugging Face's tokenizers read): NFC, whitespace folded,
 * lower case; words, single digits and punctuation runs; byte-level characters; BPE with `</w>`.
 */
function clipTokenizerJson(vocab: Record<string, number>, merges: string[], bos: number, eos: number) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(bos, BOS), added(eos, EOS)],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: EOS,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

/** vocab.json and merges.txt of a tokenizer folder, the latter without its version line. */
function readBpeFiles(folder: string): { vocab: Record<string, number>; merges: string[] } {
  const vocab = readJson(join(folder, 'vocab.json')) as Record<string, number>;
  const mergesPath = join(folder, 'merges.txt');
  let mergesText: string;
  try {
    mergesText = readFileSync(mergesPath, 'utf8');
  } catch (e) {
    throw new Error(`the tokenizer file "${mergesPath}" is missing`, { cause: e });
  }
  const merges = mergesText
    .split('\n')
    .filter((l) => l && !l.startsWith('#version'))
    .map((l) => l.trim());
  return { vocab, merges };
}

/** The CLIP tokenizer of a diffusers `tokenizer/` folder. */
export function loadClipTokenizer(folder: string): ClipTokenizer {
  const { vocab, merges } = readBpeFiles(folder);
  let config: Record<string, unknown> = {};
  try {
    config = readJson(join(folder, 'tokenizer_config.json'));
  } catch {
    // optional: CLIP's defaults
  }
  for (const special of [BOS, EOS])
    if (typeof vocab[special] !== 'number')
      throw new Error(`the tokenizer "${join(folder, 'vocab.json')}" has no "${special}" token: not a CLIP vocabulary`);
  const bos = vocab[BOS]!;
  const eos = vocab[EOS]!;
  const padText = tokenText(config['pad_token']) ?? EOS;
  const pad = vocab[padText] ?? eos;
  const length = typeof config['model_max_length'] === 'number' && config['model_max_length'] < 10_000 ? config['model_max_length'] : 77;
  const tokenizer = new Tokenizer(clipTokenizerJson(vocab, merges, bos, eos), {
    model_max_length: length,
    bos_token: BOS,
    eos_token: EOS,
    pad_token: padText,
  });
  return {
    length,
    encode(text: string) {
      const body = tokenizer.encode(text, { add_special_tokens: false }).ids;
      const room = length - 2;
      const ids = [bos, ...body.slice(0, room), eos];
      while (ids.length < length) ids.push(pad);
      return { ids, truncated: body.length > room, tokens: body.length };
    },
  };
}
