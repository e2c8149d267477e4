/**
 * `XLMRTokenizer`: a Hugging Face tokenizer folder of the XLM-RoBERTa kind (SentencePiece Unigram, `<s> A </s>` /
 * `<s> A </s></s> B </s>`) giving the same ids as the Rust `tokenizers` crate (what `XLMRobertaTokenizerFast`,
 * sentence-transformers and FlagEmbedding run), plus the truncation, padding and batching that
 * `@huggingface/tokenizers` lacks.
 *
 * `@huggingface/tokenizers` parses tokenizer.json and runs added-token splitting, the Strip / Replace normalizers and
 * the Metaspace pre-tokenizer; two of its parts are swapped for exact, faster ones: the Precompiled normalizer
 * (`charsmap.ts`: the real SentencePiece character map instead of NFKC) and the Unigram model (`unigram.ts`: Rust's
 * Viterbi and tie rule, per-word memo).
 *
 * Which rule does what:
 * - `encodeBatch` / `encodePairs`: Hugging Face `tokenizer(texts, truncation=…, max_length=…, padding=…)` on the fast
 *   tokenizer; `maxLength` counts the special tokens; pair truncation `longest_first` or `only_second` as Rust does
 *   (`only_second` throws "Truncation error: Sequence to truncate too short to respect the provided max_length"
 *   when the first sequence alone does not fit). `prefix` is prepended to each text before tokenizing, like a
 *   sentence-transformers prompt (`query: `).
 * - `encodeRerankerPairs`: FlagEmbedding's encoder-only reranker. Query and passage are tokenized without special
 *   tokens and pre-cut, then joined by `prepare_for_model(q, p, truncation='only_second', max_length=M)`:
 *   * inference (`BaseReranker.compute_score`, the default): query cut to `queryMaxLen` (default
 *     `floor(maxLength * 3 / 4)`), passage to `maxLength`, `M = maxLength` (default `modelMaxLength`, else 512);
 *   * training (`AbsRerankerTrainDataset.create_one_example`, chosen by giving `passageMaxLen`): query cut to
 *     `queryMaxLen + floor(passageMaxLen / 4)`, passage to `passageMaxLen + floor(queryMaxLen / 2)`,
 *     `M = queryMaxLen + passageMaxLen` (defaults 32 and 128).
 *   Python's `prepare_for_model` leaves a pair over-long (it only logs) when the passage cannot absorb the cut; that
 *   happens only when the query cut plus the special tokens reaches `M`, so such settings are rejected up front.
 */
import { existsSync, readFileSync, mkdirSync, copyFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer, PrecompiledNormalizer, SequenceNormalizer, type NormalizerLike, type Pipeline } from './hf.ts';
import { SentencePieceCharsmap } from './charsmap.ts';
import { SentencePieceUnigram } from './unigram.ts';
import { truncatePair, type PairTruncation } from './truncation.ts';

export type Padding = 'longest' | 'max_length' | false;

export interface Encoded {
  inputIds: number[][];
  attentionMask: number[][];
}

export interface EncodeBatchOptions {
  /** Longest sequence, special tokens included (default `modelMaxLength`). */
  maxLength?: number;
  /** Cut to `maxLength` (default true). */
  truncation?: boolean;
  /** `'longest'` (default): to the longest of the batch; `'max_length'`: to `maxLength`; false: ragged. */
  padding?: Padding;
  /** Prepended to every text before tokenizing (sentence-transformers prompt, e.g. `query: `). */
  prefix?: string;
}

export interface EncodePairsOptions {
  maxLength?: number;
  /** Default `'longest_first'`; false keeps the pairs whole. */
  truncation?: PairTruncation | false;
  padding?: Padding;
}

export interface RerankerPairsOptions {
  /** Inference rule: total length, special tokens included (default `modelMaxLength`, else 512). */
  maxLength?: number;
  /** Query budget (inference default `floor(maxLength * 3 / 4)`, training default 32). */
  queryMaxLen?: number;
  /** Giving it selects the training rule (`M = queryMaxLen + passageMaxLen`). */
  passageMaxLen?: number;
  padding?: Padding;
}

/** Files a tokenizer folder may hold; `copyFilesTo` copies those present. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'sentencepiece.bpe.model'] as const;

const FLAG_RERANKER_MAX_LENGTH = 512;
const FLAG_QUERY_MAX_LEN = 32;

type Json = Record<string, unknown>;

interface Template {
  /** Special-token ids before A, between A and B (pair only), after the last sequence. */
  single: { before: number[]; after: number[] };
  pair: { before: number[]; middle: number[]; after: number[] };
}

export class XLMRTokenizer {
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** Ids in use, added tokens included (32,002 for the shipped ko-en-32k). */
  readonly vocabSize: number;
  /** `model_max_length` of tokenizer_config.json; Infinity when absent (Hugging Face's "very large integer"). */
  readonly modelMaxLength: number;
  readonly dir: string;
  private readonly pipeline: Pipeline;
  private readonly unigram: SentencePieceUnigram;
  private readonly idOf: Map<string, number>;
  /** Added tokens matched in the raw text; a text holding none skips the library's splitting (see `tokenize`). */
  private readonly rawAddedTokens: string[] = [];
  private readonly direct: boolean;
  private readonly template: Template;

  private constructor(dir: string, json: Json, config: Json, specialMap: Json) {
    this.dir = dir;
    const jsonPath = join(dir, 'tokenizer.json');
    const model = json.model as Json | undefined;
    if (!model || model.type !== 'Unigram') {
      throw new Error(`${jsonPath}: model.type is ${JSON.stringify(model?.type)}; XLMRTokenizer needs a SentencePiece "Unigram" model`);
    }
    if (!Array.isArray(model.vocab)) throw new Error(`${jsonPath}: model.vocab is not an array of [piece, score]`);
    if (model.byte_fallback === true) throw new Error(`${jsonPath}: model.byte_fallback is true; byte fallback is not implemented`);
    if (!Array.isArray(json.added_tokens)) throw new Error(`${jsonPath}: added_tokens is missing or not an array`);
    try {
      this.pipeline = new Tokenizer(json, config);
    } catch (error) {
      throw new Error(`${jsonPath}: ${(error as Error).message}`);
    }
    const unigram = new SentencePieceUnigram(model.vocab as [string, number][], model.unk_id as number, jsonPath);
    this.unigram = unigram;
    this.pipeline.model = unigram;
    this.pipeline.normalizer = exactNormalizer(this.pipeline.normalizer, json.normalizer as Json | null, jsonPath);

    this.idOf = new Map(unigram.tokens_to_ids);
    let maxId = unigram.vocab.length - 1;
    let normalizedAddedTokens = false;
    for (const [index, token] of (json.added_tokens as Json[]).entries()) {
      if (typeof token?.content !== 'string' || !Number.isInteger(token.id)) {
        throw new Error(`${jsonPath}: added_tokens[${index}] needs a string "content" and an integer "id"`);
      }
      this.idOf.set(token.content, token.id as number);
      maxId = Math.max(maxId, token.id as number);
      // The library's default (`normalized` = not special) decides which pass matches the token.
      if ((token.normalized ?? !token.special) === true) normalizedAddedTokens = true;
      else this.rawAddedTokens.push(token.content);
    }
    this.direct = !normalizedAddedTokens && !config.remove_space && !config.do_lowercase_and_remove_accent;
    this.vocabSize = maxId + 1;

    const special = (name: string, fallback: string): number => {
      const token = tokenContent(specialMap[name]) ?? tokenContent(config[name]) ?? fallback;
      const id = this.idOf.get(token);
      if (id === undefined) throw new Error(`${jsonPath}: ${name} ${JSON.stringify(token)} is not in the vocabulary`);
      return id;
    };
    this.bosId = special('bos_token', '<s>');
    this.eosId = special('eos_token', '</s>');
    this.padId = special('pad_token', '<pad>');
    this.unkId = unigram.unkId;
    const maxLength = config.model_max_length;
    this.modelMaxLength = typeof maxLength === 'number' && maxLength > 0 && maxLength < 1e12 ? maxLength : Infinity;
    this.template = parseTemplate(json.post_processor as Json | null, this.idOf, jsonPath);
  }

  /** Reads `dir/tokenizer.json` (required), `tokenizer_config.json` and `special_tokens_map.json` (when present). */
  static fromFolder(dir: string): XLMRTokenizer {
    const json = readJson(join(dir, 'tokenizer.json'), true)!;
    const config = readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
    const specialMap = readJson(join(dir, 'special_tokens_map.json'), false) ?? {};
    return new XLMRTokenizer(dir, json, config, specialMap);
  }

  /** Ids of `text` without special tokens, untruncated. */
  tokenize(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`tokenize: expected a string, got ${typeof text}`);
    // Most texts hold no added token: then the library's per-character splitting passes (two thirds of its time)
    // would return the text whole, and its steps reduce to normalize → pre-tokenize → model, run here directly.
    if (this.direct && !this.rawAddedTokens.some((token) => text.includes(token))) {
      const { normalizer, pre_tokenizer } = this.pipeline;
      const normalized = normalizer ? normalizer(text) : text;
      if (normalized.length === 0) return [];
      const words = pre_tokenizer ? pre_tokenizer(normalized, { section_index: 0 }) : [normalized];
      return words.length === 1 ? this.unigram.encodeIds(words[0]!) : words.flatMap((word) => this.unigram.encodeIds(word));
    }
    const tokens = this.pipeline.tokenize(text);
    const ids = new Array<number>(tokens.length);
    for (let i = 0; i < tokens.length; i++) ids[i] = this.idOf.get(tokens[i]!) ?? this.unkId;
    return ids;
  }

  /** `<s> text </s>` for each text (Hugging Face `tokenizer(texts, truncation, max_length, padding)`). */
  encodeBatch(texts: string[], options: EncodeBatchOptions = {}): Encoded {
    const { maxLength = this.modelMaxLength, truncation = true, padding = 'longest', prefix = '' } = options;
    const { before, after } = this.template.single;
    const budget = truncation ? this.contentBudget(maxLength, before.length + after.length) : Infinity;
    const rows = texts.map((text) => {
      const ids = this.tokenize(prefix + text);
      return [...before, ...(ids.length > budget ? ids.slice(0, budget) : ids), ...after];
    });
    return this.pad(rows, padding, maxLength);
  }

  /** `<s> a </s></s> b </s>` for each pair, truncated with the Rust tokenizer's rule. */
  encodePairs(pairs: [string, string][], options: EncodePairsOptions = {}): Encoded {
    const { maxLength = this.modelMaxLength, truncation = 'longest_first', padding = 'longest' } = options;
    if (truncation !== false && truncation !== 'longest_first' && truncation !== 'only_second') {
      throw new Error(`encodePairs: truncation must be 'longest_first', 'only_second' or false, got ${JSON.stringify(truncation)}`);
    }
    const budget = truncation ? this.contentBudget(maxLength, this.pairSpecials()) : Infinity;
    const rows = pairs.map(([a, b]) => {
      let first = this.tokenize(a);
      let second = this.tokenize(b);
      if (truncation) [first, second] = truncatePair(first, second, budget, truncation);
      return this.joinPair(first, second);
    });
    return this.pad(rows, padding, maxLength);
  }

  /** FlagEmbedding's reranker inputs (see the rules in this file's header). */
  encodeRerankerPairs(pairs: [string, string][], options: RerankerPairsOptions = {}): Encoded {
    const training = options.passageMaxLen !== undefined;
    let queryCut: number, passageCut: number, total: number;
    if (training) {
      if (options.maxLength !== undefined) {
        throw new Error('encodeRerankerPairs: give maxLength (inference rule) or passageMaxLen (training rule), not both');
      }
      const q = options.queryMaxLen ?? FLAG_QUERY_MAX_LEN;
      const p = options.passageMaxLen!;
      checkLength('queryMaxLen', q);
      checkLength('passageMaxLen', p);
      queryCut = q + Math.floor(p / 4);
      passageCut = p + Math.floor(q / 2);
      total = q + p;
    } else {
      total = options.maxLength ?? (Number.isFinite(this.modelMaxLength) ? this.modelMaxLength : FLAG_RERANKER_MAX_LENGTH);
      checkLength('maxLength', total);
      queryCut = options.queryMaxLen ?? Math.floor((total * 3) / 4);
      checkLength('queryMaxLen', queryCut);
      passageCut = total;
    }
    if (queryCut + this.pairSpecials() >= total) {
      throw new Error(
        `encodeRerankerPairs: a query of ${queryCut} tokens plus ${this.pairSpecials()} special tokens leaves no room for the passage in ${total}; ` +
          'FlagEmbedding would emit over-long pairs here: lower queryMaxLen or raise the max length',
      );
    }
    const budget = total - this.pairSpecials();
    const rows = pairs.map(([query, passage]) => {
      const q = this.tokenize(query).slice(0, queryCut);
      const p = this.tokenize(passage).slice(0, passageCut);
      const [first, second] = truncatePair(q, p, budget, 'only_second');
      return this.joinPair(first, second);
    });
    return this.pad(rows, options.padding ?? 'longest', total);
  }

  /** Copies the tokenizer files of the source folder into `dir` (each written to a temporary name, then renamed). */
  copyFilesTo(dir: string): void {
    mkdirSync(dir, { recursive: true });
    for (const name of TOKENIZER_FILES) {
      const source = join(this.dir, name);
      if (!existsSync(source)) continue;
      const target = join(dir, name);
      const temporary = `${target}.tmp-${process.pid}`;
      copyFileSync(source, temporary);
      renameSync(temporary, target);
    }
  }

  private pairSpecials(): number {
    const { before, middle, after } = this.template.pair;
    return before.length + middle.length + after.length;
  }

  private joinPair(first: number[], second: number[]): number[] {
    const { before, middle, after } = this.template.pair;
    return [...before, ...first, ...middle, ...second, ...after];
  }

  /** Content tokens allowed once the special tokens are placed. */
  private contentBudget(maxLength: number, specials: number): number {
    if (maxLength === Infinity) return Infinity;
    checkLength('maxLength', maxLength);
    if (maxLength < specials) {
      throw new Error(`maxLength ${maxLength} cannot hold the ${specials} special tokens of the template`);
    }
    return maxLength - specials;
  }

  private pad(rows: number[][], padding: Padding, maxLength: number): Encoded {
    let width: number;
    if (padding === 'longest') width = rows.reduce((m, r) => Math.max(m, r.length), 0);
    else if (padding === 'max_length') {
      checkLength('maxLength', maxLength);
      width = maxLength;
      const over = rows.findIndex((r) => r.length > width);
      if (over >= 0)
        throw new Error(
          `padding 'max_length': sequence ${over} has ${rows[over]!.length} tokens > maxLength ${maxLength} (truncation is off)`,
        );
    } else if (padding === false) width = 0;
    else throw new Error(`padding must be 'longest', 'max_length' or false, got ${JSON.stringify(padding)}`);
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    for (const row of rows) {
      const n = Math.max(width, row.length);
      const ids = new Array<number>(n);
      const mask = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        const real = i < row.length;
        ids[i] = real ? row[i]! : this.padId;
        mask[i] = real ? 1 : 0;
      }
      inputIds.push(ids);
      attentionMask.push(mask);
    }
    return { inputIds, attentionMask };
  }
}

function readJson(path: string, required: boolean): Json | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(`${path}: not found (a Hugging Face tokenizer folder needs tokenizer.json)`);
    throw new Error(`${path}: cannot read: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    throw new Error(`${path}: malformed JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path}: expected a JSON object`);
  return value as Json;
}

/** Special tokens appear as strings or as AddedToken objects (`{"content": "<s>", …}`). */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as Json).content === 'string') return (value as Json).content as string;
  return undefined;
}

function checkLength(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${value}`);
}

/** The pipeline's normalizer with every Precompiled step replaced by the exact character map. */
function exactNormalizer(normalizer: NormalizerLike | null, config: Json | null, source: string): NormalizerLike | null {
  if ((normalizer as object | null) instanceof PrecompiledNormalizer) {
    const charsmap = config?.precompiled_charsmap;
    if (typeof charsmap !== 'string') throw new Error(`${source}: normalizer.precompiled_charsmap is missing`);
    return SentencePieceCharsmap.fromBase64(charsmap, source) as unknown as NormalizerLike;
  }
  if (normalizer instanceof SequenceNormalizer) {
    const configs = (config?.normalizers ?? []) as Json[];
    normalizer.normalizers = normalizer.normalizers.map((step, i) => exactNormalizer(step, configs[i] ?? null, source));
  }
  return normalizer;
}

/** Special-token ids around the sequences, from TemplateProcessing or RobertaProcessing (XLM-R's two forms). */
function parseTemplate(config: Json | null, idOf: Map<string, number>, source: string): Template {
  if (config?.type === 'RobertaProcessing') {
    const cls = (config.cls as [string, number])[1];
    const sep = (config.sep as [string, number])[1];
    return { single: { before: [cls], after: [sep] }, pair: { before: [cls], middle: [sep, sep], after: [sep] } };
  }
  if (config?.type !== 'TemplateProcessing') {
    throw new Error(`${source}: post_processor.type is ${JSON.stringify(config?.type)}; expected TemplateProcessing or RobertaProcessing`);
  }
  const specials = (config.special_tokens ?? {}) as Record<string, { ids: number[] }>;
  const split = (field: 'single' | 'pair', sequences: string[]): number[][] => {
    const parts: number[][] = [[]];
    for (const piece of config[field] as Json[]) {
      if ('Sequence' in piece) {
        const id = (piece.Sequence as Json).id as string;
        if (id !== sequences[parts.length - 1]) throw new Error(`${source}: post_processor.${field} has sequence ${id} out of order`);
        parts.push([]);
      } else {
        const name = (piece.SpecialToken as Json).id as string;
        const ids = specials[name]?.ids ?? (idOf.has(name) ? [idOf.get(name)!] : undefined);
        if (!ids) throw new Error(`${source}: post_processor.${field} uses special token ${JSON.stringify(name)} without ids`);
        parts[parts.length - 1]!.push(...ids);
      }
    }
    if (parts.length !== sequences.length + 1)
      throw new Error(`${source}: post_processor.${field} must hold sequences ${sequences.join(', ')}`);
    return parts;
  };
  const [sBefore, sAfter] = split('single', ['A']);
  const [pBefore, pMiddle, pAfter] = split('pair', ['A', 'B']);
  return { single: { before: sBefore!, after: sAfter! }, pair: { before: pBefore!, middle: pMiddle!, after: pAfter! } };
}
