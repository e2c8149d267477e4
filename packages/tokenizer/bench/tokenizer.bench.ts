/**
 * Pair encodings per second at max_length 256 (`longest_first`, padded to the longest of each batch of 32):
 * `XLMRTokenizer.encodePairs` against the native Rust `tokenizers` package on the same pairs. Queries are KorNLI
 * hypotheses and chatbot questions; passages join 10 distinct KorNLI premises (≈ 250–400 tokens, so most are cut).
 * "cold" tokenizes pairs never seen by the tokenizer (first epoch: the per-word memo fills as it goes); "warm" runs
 * the same pairs again (later epochs). Rust's Node binding has no pair batching: pairs go through `encode(a, b)`,
 * awaited one by one and 32 at a time (the binding runs each on the libuv pool). Target: ours ≥ 3,000 pairs/s.
 */
import { readFileSync } from 'node:fs';
import { Tokenizer as RustTokenizer } from 'tokenizers';
import { XLMRTokenizer } from '../src/index.ts';

const MAX_LENGTH = 256;
const BATCH = 32;
const dir = new URL('../assets/ko-en-32k/', import.meta.url).pathname;
const rows = (file: string) =>
  readFileSync(new URL(`../test/data/${file}`, import.meta.url), 'utf8')
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => l.split('\t') as [string, string]);
const nli = rows('kornli/kornli-xnli-test.tsv');
const chat = rows('chatbot/chatbot-qa.tsv');
const premises = [...new Set(nli.map(([p]) => p))];
const pairs: [string, string][] = [];
for (let i = 0; i + 10 <= premises.length; i += 2) {
  const query = i % 2 ? nli[i % nli.length]![1] : chat[i % chat.length]![0];
  pairs.push([query, premises.slice(i, i + 10).join(' ')]);
}

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')} pairs/s`;
}

const ours = XLMRTokenizer.fromFolder(dir);
const oursPass = () => {
  const t0 = performance.now();
  for (let i = 0; i < pairs.length; i += BATCH)
    ours.encodePairs(pairs.slice(i, i + BATCH), { maxLength: MAX_LENGTH, truncation: 'longest_first', padding: 'longest' });
  return performance.now() - t0;
};
const cold = oursPass();
const warm = Math.min(oursPass(), oursPass());

const rust = RustTokenizer.fromFile(dir + 'tokenizer.json');
rust.setTruncation(MAX_LENGTH);
let t0 = performance.now();
for (const [a, b] of pairs) await rust.encode(a, b);
const rustSequential = performance.now() - t0;
t0 = performance.now();
for (let i = 0; i < pairs.length; i += BATCH) await Promise.all(pairs.slice(i, i + BATCH).map(([a, b]) => rust.encode(a, b)));
const rustConcurrent = performance.now() - t0;

const meanTokens =
  pairs.reduce((s, [a, b]) => s + ours.encodePairs([[a, b]], { maxLength: MAX_LENGTH, padding: false }).inputIds[0]!.length, 0) /
  pairs.length;
console.log(`${pairs.length} Korean query/passage pairs, max_length ${MAX_LENGTH}, mean ${meanTokens.toFixed(0)} tokens after truncation`);
console.log(`ours  cold (first pass)           ${rate(pairs.length, cold)}`);
console.log(`ours  warm (word memo filled)     ${rate(pairs.length, warm)}`);
console.log(`rust  encode(a, b), one by one    ${rate(pairs.length, rustSequential)}`);
console.log(`rust  encode(a, b), 32 at a time  ${rate(pairs.length, rustConcurrent)}`);
console.log(`target ≥ 3,000 pairs/s (ours cold): ${(pairs.length / cold) * 1000 >= 3000 ? 'met' : 'NOT met'}`);
