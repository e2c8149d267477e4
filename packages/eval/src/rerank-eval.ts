/**
 * Reranker evaluation: metrics of the first-stage order of each query's candidates (`firstStageName` says
 * what that order is), of BM25 over the candidates, and of the order a reranker's scores give (ties keep the
 * first-stage order).
 */
import { evaluateRankings, rankCandidates, type IrCutoffs, type IrEvaluation } from '@kotune/metrics';
import { Bm25Index } from './bm25.ts';
import type { RerankQuery } from './inputs.ts';
import { ProgressBar } from './progress.ts';
import { evalCutoffs } from './report.ts';

/** Relevance scores of `[query, passage]` pairs, one per pair, higher is more relevant. */
export type ScorePairs = (pairs: [string, string][]) => Promise<number[]>;

export function firstStageMetrics(queries: readonly RerankQuery[], cutoffs: IrCutoffs = evalCutoffs()): IrEvaluation {
  return evaluateRankings(
    queries.map((q) => ({ ranked: q.candidates.map((_, i) => i), relevant: q.relevant })),
    cutoffs,
  );
}

/** What the first-stage row of a table is: the file's ranking, a seeded random order, or both. */
export function firstStageName(queries: readonly RerankQuery[], seed: number): string {
  const shuffled = queries.filter((q) => q.order === 'shuffled').length;
  if (shuffled === 0) return 'first stage (file order)';
  if (shuffled === queries.length) return `random order (seed ${seed})`;
  return `first stage (file order; {query, pos, neg} lines in random order, seed ${seed})`;
}

/**
 * BM25 scores of each query's candidates, over `tokenize`'s terms, with idf from every distinct candidate of
 * the set (ties keep the first-stage order when ranked).
 */
export function bm25Scores<Token>(queries: readonly RerankQuery[], tokenize: (text: string) => Token[]): number[][] {
  const documents = [...new Set(queries.flatMap((q) => q.candidates))];
  const row = new Map(documents.map((text, i) => [text, i]));
  const index = new Bm25Index(documents.map(tokenize));
  return queries.map((q) => {
    const scores = index.scores(tokenize(q.query));
    return q.candidates.map((text) => scores.get(row.get(text)!) ?? 0);
  });
}

export function rerankedMetrics(
  queries: readonly RerankQuery[],
  scores: readonly number[][],
  cutoffs: IrCutoffs = evalCutoffs(),
): IrEvaluation {
  return evaluateRankings(
    queries.map((q, i) => ({
      ranked: rankCandidates(scores[i].map((score, index) => ({ id: index, score }))),
      relevant: q.relevant,
    })),
    cutoffs,
  );
}

/**
 * Scores every candidate of every query, sending pairs to `score` in chunks of about `chunkPairs` (whole
 * queries per chunk, so that small groups still fill a batch).
 */
export async function scoreCandidates(
  queries: readonly Pick<RerankQuery, 'query' | 'candidates'>[],
  score: ScorePairs,
  { chunkPairs = 256, label = 'scoring', progress = true }: { chunkPairs?: number; label?: string; progress?: boolean } = {},
): Promise<number[][]> {
  const total = queries.reduce((n, q) => n + q.candidates.length, 0);
  const bar = new ProgressBar(label, total, progress);
  const out: number[][] = [];
  let start = 0;
  while (start < queries.length) {
    let end = start;
    const pairs: [string, string][] = [];
    while (end < queries.length && (pairs.length === 0 || pairs.length + queries[end].candidates.length <= chunkPairs)) {
      for (const passage of queries[end].candidates) pairs.push([queries[end].query, passage]);
      end++;
    }
    const scores = await score(pairs);
    if (scores.length !== pairs.length) throw new Error(`the reranker returned ${scores.length} scores for ${pairs.length} pairs`);
    let offset = 0;
    for (let i = start; i < end; i++) {
      out.push(scores.slice(offset, offset + queries[i].candidates.length));
      offset += queries[i].candidates.length;
    }
    bar.add(pairs.length);
    start = end;
  }
  bar.finish();
  return out;
}
