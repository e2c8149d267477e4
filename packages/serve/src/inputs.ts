/**
 * Input validation on the main thread, before anything is queued, as TEI's tokenization step does it
 * (core/src/tokenization.rs): an empty input is 400 "`inputs` cannot be empty"; an input of more than
 * `max_input_length * 250` characters is refused without `truncate` and cut to that many characters with it (TEI's
 * MAX_CHAR_MULTIPLIER: it bounds the tokenizer's work; the cut keeps far more text than the kept tokens need); an
 * input of more than `max_input_length` tokens is refused without `truncate` (422 "`inputs` must have less than N
 * tokens. Given: M") and cut by the model's own rule with it. The token counts found here bound the batches and
 * fill `usage`; the worker tokenizes again inside `Reranker.score` / `Embedder.encode`, so what it computes is
 * exactly what `kotune score` / `kotune encode` compute for the same texts.
 */
import { XLMRTokenizer } from '@kotune/tokenizer';
import { inputEmpty, inputValidation } from './errors.ts';
import type { LoadedModel } from './protocol.ts';

/** TEI's MAX_CHAR_MULTIPLIER. */
const MAX_CHAR_MULTIPLIER = 250;

export interface Checked<T> {
  inputs: T[];
  /** Tokens of each input as it will be computed (after truncation), special tokens included. */
  tokens: number[];
  /** Characters of the inputs as sent (TEI's `x-compute-characters`). */
  characters: number;
}

/** Unicode code points (Rust's `chars().count()`); `s.length` counts UTF-16 units. */
function countChars(text: string): number {
  let surrogates = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xdc00 && unit <= 0xdfff) surrogates++;
  }
  return text.length - surrogates;
}

/** The first `limit` code points of `text`. */
function firstChars(text: string, limit: number): string {
  let chars = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xdc00 && unit <= 0xdfff) continue;
    if (chars === limit) return text.slice(0, i);
    chars++;
  }
  return text;
}

function tooManyTokens(limit: number, given: number) {
  return inputValidation(`\`inputs\` must have less than ${limit} tokens. Given: ${given}`);
}

/** A served model's tokenizer and limits, on the main thread. */
export class InputChecker {
  readonly model: LoadedModel;
  private readonly tokenizer: XLMRTokenizer;
  private readonly pairSpecials: number;
  private readonly singleSpecials: number;

  constructor(model: LoadedModel) {
    this.model = model;
    this.tokenizer = XLMRTokenizer.fromFolder(model.tokenizerFolder);
    // The template's special tokens: what an empty text or pair encodes to (`<s></s>`, `<s></s></s></s>` for XLM-R).
    this.pairSpecials = this.tokenizer.encodePairs([['', '']], { truncation: false, padding: false }).inputIds[0]!.length;
    this.singleSpecials = this.tokenizer.encodeBatch([''], { truncation: false, padding: false }).inputIds[0]!.length;
  }

  private get charLimit(): number {
    return this.model.maxInputLength * MAX_CHAR_MULTIPLIER;
  }

  /** (query, text) pairs for `Reranker.score`; the query is tokenized once. */
  pairs(query: string, texts: string[], truncate: boolean): Checked<[string, string]> {
    const maxLength = this.model.maxInputLength;
    const queryChars = countChars(query);
    let queryTokens: number | null = null;
    let characters = 0;
    const inputs: [string, string][] = [];
    const tokens: number[] = [];
    for (const text of texts) {
      if (query === '' && text === '') throw inputEmpty();
      const chars = queryChars + countChars(text);
      characters += chars;
      let pair: [string, string] = [query, text];
      if (chars > this.charLimit) {
        if (!truncate) throw inputValidation(`\`inputs\` must have less than ${this.charLimit} characters. Given: ${chars}`);
        pair = [firstChars(query, this.charLimit / 2), firstChars(text, this.charLimit / 2)];
      }
      const [q, p] = pair;
      const qTokens = q === query ? (queryTokens ??= this.tokenizer.tokenize(query).length) : this.tokenizer.tokenize(q).length;
      const length = this.pairSpecials + qTokens + this.tokenizer.tokenize(p).length;
      if (length > maxLength && !truncate) throw tooManyTokens(maxLength, length);
      inputs.push(pair);
      // Reranker.score cuts by FlagReranker's rule, which also cuts a query over 3/4 of the limit in a pair that
      // fits: those pairs are counted by the rule itself.
      const cut = length > maxLength || 4 * qTokens > 3 * maxLength;
      tokens.push(cut ? this.tokenizer.encodeRerankerPairs([pair], { maxLength, padding: false }).inputIds[0]!.length : length);
    }
    return { inputs, tokens, characters };
  }

  /** Texts for `Embedder.encode` with `prefix` (a prompt) put before each. */
  texts(texts: string[], prefix: string, truncate: boolean): Checked<string> {
    const maxLength = this.model.maxInputLength;
    let characters = 0;
    const inputs: string[] = [];
    const tokens: number[] = [];
    for (let text of texts) {
      if (text === '') throw inputEmpty();
      const chars = countChars(text);
      characters += chars;
      if (chars > this.charLimit) {
        if (!truncate) throw inputValidation(`\`inputs\` must have less than ${this.charLimit} characters. Given: ${chars}`);
        text = firstChars(text, this.charLimit);
      }
      // As Embedder.encode: the text lower-cased when the folder says so, then the prefix put before it.
      const length = this.singleSpecials + this.tokenizer.tokenize(prefix + (this.model.doLowerCase ? text.toLowerCase() : text)).length;
      if (length > maxLength && !truncate) throw tooManyTokens(maxLength, length);
      inputs.push(text);
      tokens.push(Math.min(length, maxLength));
    }
    return { inputs, tokens, characters };
  }
}
