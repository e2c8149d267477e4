/**
 * Hard-negative sampling as FlagEmbedding's `scripts/hn_mine.py` (`find_knn_neg`): from a query's ranking of
 * the candidate pool, keep ranks `[start, end)`, drop the positives and the query's own text, sample
 * `negativeNumber` of them at random when there are more, and pad with random pool passages when fewer.
 * Unlike hn_mine, the padding also avoids passages already chosen and the query itself (hn_mine can
 * repeat a negative, which puts the same passage twice in a training group).
 */
import type { Rng } from '@kotune/data';

export interface SamplingRange {
  start: number;
  end: number;
}

/** `"10-210"` → `{start: 10, end: 210}` (0-based ranks, end excluded, as the Python slice). */
export function parseSamplingRange(text: string): SamplingRange {
  const match = /^(\d+)-(\d+)$/.exec(text.trim());
  if (!match) throw new Error(`range for sampling must look like "10-210", got '${text}'`);
  const range = { start: Number(match[1]), end: Number(match[2]) };
  if (range.end <= range.start) throw new Error(`range for sampling '${text}': the end must be above the start`);
  return range;
}

/** A pool of distinct passages (first occurrence order), as hn_mine's `list(set(corpus))` but deterministic. */
export function uniquePassages(texts: Iterable<string>): string[] {
  return [...new Set(texts)];
}

export interface SampleNegativesInput {
  query: string;
  pos: readonly string[];
  /** Pool rows, best first (at least `range.end` of them when the pool is that large). */
  ranked: readonly number[];
  pool: readonly string[];
  range: SamplingRange;
  negativeNumber: number;
  rng: Rng;
}

export function sampleNegatives({ query, pos, ranked, pool, range, negativeNumber, rng }: SampleNegativesInput): string[] {
  const positives = new Set(pos);
  const inRange = ranked.slice(range.start, range.end).filter((row) => !positives.has(pool[row]) && pool[row] !== query);
  const chosen = inRange.length > negativeNumber ? rng.sample(inRange, negativeNumber) : inRange;
  const negatives = chosen.map((row) => pool[row]);
  if (negatives.length < negativeNumber) {
    const taken = new Set([...negatives, ...positives, query]);
    const spare = pool.filter((text) => !taken.has(text));
    negatives.push(...rng.sample(spare, Math.min(spare.length, negativeNumber - negatives.length)));
  }
  return negatives;
}
