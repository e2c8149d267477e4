/**
 * Builds the demo reranker data from KorSTS (kakaobrain/KorNLUDatasets, CC BY-SA 4.0) as paraphrase retrieval:
 *
 *   korsts-train.jsonl  from sts-train: every pair scored ≥ 3.5 (of 5: "roughly equivalent" or closer), each
 *                       {query: one of its sentences (picked at random), pos: [the other], neg: 3 other sentences}
 *   korsts-eval.jsonl   200 pairs of sts-dev scored ≥ 3.5 (query = sentence1, positive = sentence2), none of
 *                       whose sentences occurs in train, each with 9 negatives
 *
 * Negatives are random other sentences of the same split, never one paired with the query or the positive at a
 * score ≥ 2 (a near-paraphrase) nor one sharing ≥ 60% of its character bigrams with either (Dice). Random
 * negatives keep the task within reach of the demo's tiny model trained from scratch in minutes; train has 3
 * a line (group size 4) to keep the file small. Deterministic for a seed.
 *
 *   pnpm exec tsx examples/data/make-korsts.ts [folder with KorSTS_sts-{train,dev}.tsv] [seed]
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@kotune/data';
import { writeFileAtomic } from '@kotune/metrics';
import { bigrams, dice } from './bigrams.ts';

const here = dirname(fileURLToPath(import.meta.url));
const dataDir = process.argv[2] ?? join(here, '../../../shared/data/kornlu'); // ../shared beside the checkout
const seed = Number(process.argv[3] ?? 42);
const MIN_SCORE = 3.5;
const RELATED_SCORE = 2;
const PARAPHRASE_DICE = 0.6;
const TRAIN_NEGATIVES = 3;
const EVAL_NEGATIVES = 9;
const EVAL_QUERIES = 200;

interface Pair {
  s1: string;
  s2: string;
  score: number;
}

/** `sts-<split>.tsv`: genre, filename, year, id, score, sentence1, sentence2 (tab-separated, no quoting). */
function readSts(split: string): Pair[] {
  const path = join(dataDir, `KorSTS_sts-${split}.tsv`);
  const [header, ...lines] = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  if (header.split('\t').slice(4).join(',') !== 'score,sentence1,sentence2') throw new Error(`${path}:1: unexpected header ${header}`);
  return lines.map((line, i) => {
    const fields = line.split('\t');
    const score = Number(fields[4]);
    if (fields.length !== 7 || !Number.isFinite(score)) throw new Error(`${path}:${i + 2}: expected 7 fields with a numeric score`);
    return { s1: fields[5].trim(), s2: fields[6].trim(), score };
  });
}

/** The distinct sentences of one split, with what each must not get as a negative. */
class Sentences {
  readonly texts: string[];
  readonly grams: Set<string>[];
  private readonly related = new Map<string, Set<string>>();

  constructor(pairs: readonly Pair[]) {
    const texts = new Set<string>();
    for (const { s1, s2, score } of pairs) {
      texts.add(s1).add(s2);
      if (score < RELATED_SCORE) continue;
      (this.related.get(s1) ?? this.related.set(s1, new Set()).get(s1)!).add(s2);
      (this.related.get(s2) ?? this.related.set(s2, new Set()).get(s2)!).add(s1);
    }
    this.texts = [...texts];
    this.grams = this.texts.map(bigrams);
  }

  /** `count` random negatives for query → positive. */
  negatives(rng: Rng, query: string, positive: string, count: number): string[] {
    const queryGrams = bigrams(query);
    const positiveGrams = bigrams(positive);
    const banned = new Set([query, positive, ...(this.related.get(query) ?? []), ...(this.related.get(positive) ?? [])]);
    const allowed = (i: number) =>
      !banned.has(this.texts[i]) &&
      dice(this.grams[i], queryGrams) < PARAPHRASE_DICE &&
      dice(this.grams[i], positiveGrams) < PARAPHRASE_DICE;
    const chosen = new Set<string>();
    for (let tries = 0; chosen.size < count && tries < 10_000; tries++) {
      const i = rng.int(this.texts.length);
      if (allowed(i)) chosen.add(this.texts[i]);
    }
    if (chosen.size < count) throw new Error(`only ${chosen.size} negatives for ${JSON.stringify(query)}`);
    return rng.shuffle([...chosen]);
  }
}

function writeJsonl(name: string, lines: object[]): void {
  writeFileAtomic(join(here, name), lines.map((line) => JSON.stringify(line)).join('\n') + '\n');
}

const rng = new Rng(seed);
const trainPairs = readSts('train');
const devPairs = readSts('dev');

const trainSentences = new Sentences(trainPairs);
const inTrain = new Set(trainSentences.texts);
const positives = (pairs: readonly Pair[]) => pairs.filter((p) => p.score >= MIN_SCORE && p.s1 !== p.s2);

const train = rng
  .shuffle(positives(trainPairs))
  .map((p) => (rng.int(2) === 0 ? [p.s1, p.s2] : [p.s2, p.s1]))
  .map(([query, pos]) => ({ query, pos: [pos], neg: trainSentences.negatives(rng, query, pos, TRAIN_NEGATIVES) }));

const devSentences = new Sentences(devPairs);
const heldOut = positives(devPairs).filter((p) => !inTrain.has(p.s1) && !inTrain.has(p.s2));
const seenQueries = new Set<string>();
const evalLines = rng
  .shuffle(heldOut)
  .filter((p) => !seenQueries.has(p.s1) && seenQueries.add(p.s1))
  .slice(0, EVAL_QUERIES)
  .map((p) => ({ query: p.s1, pos: [p.s2], neg: devSentences.negatives(rng, p.s1, p.s2, EVAL_NEGATIVES) }));
if (evalLines.length < EVAL_QUERIES) throw new Error(`only ${evalLines.length} held-out dev pairs scored ≥ ${MIN_SCORE}`);

writeJsonl('korsts-train.jsonl', train);
writeJsonl('korsts-eval.jsonl', evalLines);
console.log(
  `KorSTS: ${train.length} train lines (the pairs of sts-train scored ≥ ${MIN_SCORE}), ` +
    `${evalLines.length} eval lines of ${heldOut.length} held-out dev pairs (seed ${seed})`,
);
