/**
 * Retrieval metrics as sentence-transformers' `InformationRetrievalEvaluator.compute_metrics` defines them,
 * on a ranked list of document ids and the set of relevant ids of one query:
 *
 *   accuracy@k  = 1 if any relevant doc is in the top k, else 0 (= hit rate, "has the right answer in the contexts")
 *   precision@k = hits in the top k / k            (k, even when fewer than k documents were retrieved)
 *   recall@k    = hits in the top k / |relevant|
 *   f1@k        = 2·P·R / (P + R), 0 when P + R = 0 (per query; the mean of these is reported, not F1 of the means)
 *   mrr@k       = 1 / rank of the first hit within the top k, else 0
 *   ndcg@k      = DCG(binary relevance of the top k) / DCG(min(|relevant|, k) ones), DCG = Σ relᵢ / log2(i + 2)
 *   map@k       = Σ over hits in the top k of (hits so far / rank), divided by min(k, |relevant|)
 *
 * Means are over the queries that have at least one relevant document; a query with no retrieved documents
 * (absent from the run) scores 0 everywhere, as sentence-transformers does (trec_eval would skip it).
 */

/** Metric name (`accuracy@1`, `ndcg@10`, ...) → value. */
export type IrMetrics = Record<string, number>;

/** Which cut-offs to compute, named as sentence-transformers' evaluator arguments. */
export interface IrCutoffs {
  accuracyAtK: readonly number[];
  /** Used for precision, recall and F1. */
  precisionRecallAtK: readonly number[];
  mrrAtK: readonly number[];
  ndcgAtK: readonly number[];
  mapAtK: readonly number[];
}

/** The cut-offs of docs/evaluation.md and the fixture: accuracy/precision/recall/F1 @ 1, 3, 5, 10; MRR@10; NDCG@10; MAP@100. */
export const DEFAULT_CUTOFFS: IrCutoffs = {
  accuracyAtK: [1, 3, 5, 10],
  precisionRecallAtK: [1, 3, 5, 10],
  mrrAtK: [10],
  ndcgAtK: [10],
  mapAtK: [100],
};

/** Cut-offs for the model-card table: every metric at each k of `ks`. */
export function cutoffsAt(ks: readonly number[]): IrCutoffs {
  return { accuracyAtK: ks, precisionRecallAtK: ks, mrrAtK: ks, ndcgAtK: ks, mapAtK: ks };
}

/** Metric names in output order (accuracy, precision, recall, f1 per k, then mrr, ndcg, map). */
export function metricNames(cutoffs: IrCutoffs = DEFAULT_CUTOFFS): string[] {
  const names: string[] = [];
  for (const k of cutoffs.accuracyAtK) names.push(`accuracy@${k}`);
  for (const k of cutoffs.precisionRecallAtK) names.push(`precision@${k}`);
  for (const k of cutoffs.precisionRecallAtK) names.push(`recall@${k}`);
  for (const k of cutoffs.precisionRecallAtK) names.push(`f1@${k}`);
  for (const k of cutoffs.mrrAtK) names.push(`mrr@${k}`);
  for (const k of cutoffs.ndcgAtK) names.push(`ndcg@${k}`);
  for (const k of cutoffs.mapAtK) names.push(`map@${k}`);
  return names;
}

export interface ScoredCandidate<Id = string> {
  id: Id;
  score: number;
}

function compareIds<Id>(a: Id, b: Id): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Ranks candidates by score, highest first; equal scores by id ascending (so that a ranking never depends
 * on input order); an id listed twice counts once, with its first score.
 */
export function rankCandidates<Id>(candidates: Iterable<ScoredCandidate<Id>>): Id[] {
  const seen = new Set<Id>();
  const unique: ScoredCandidate<Id>[] = [];
  for (const candidate of candidates) {
    if (Number.isNaN(candidate.score)) throw new Error(`score of document ${String(candidate.id)} is NaN`);
    if (seen.has(candidate.id)) continue;
    seen.add(candidate.id);
    unique.push(candidate);
  }
  unique.sort((a, b) => b.score - a.score || compareIds(a.id, b.id));
  return unique.map((c) => c.id);
}

function dcgOfOnes(count: number): number {
  let dcg = 0;
  for (let i = 0; i < count; i++) dcg += 1 / Math.log2(i + 2);
  return dcg;
}

/**
 * Metrics of one query. `ranked` is best first; a repeated id after its first position is ignored.
 * Throws when `relevant` is empty: such queries are left out of the means, and the caller decides how to say so.
 */
export function queryMetrics<Id>(ranked: readonly Id[], relevant: ReadonlySet<Id>, cutoffs: IrCutoffs = DEFAULT_CUTOFFS): IrMetrics {
  if (relevant.size === 0) throw new Error('queryMetrics: the query has no relevant document');
  const all = [...cutoffs.accuracyAtK, ...cutoffs.precisionRecallAtK, ...cutoffs.mrrAtK, ...cutoffs.ndcgAtK, ...cutoffs.mapAtK];
  for (const k of all) if (!Number.isInteger(k) || k < 1) throw new Error(`queryMetrics: cut-off ${k} is not a positive integer`);
  const depth = Math.max(...all);
  // isHit[i]: whether the (i+1)-th distinct document is relevant.
  const isHit: boolean[] = [];
  const seen = new Set<Id>();
  for (const id of ranked) {
    if (isHit.length === depth) break;
    if (seen.has(id)) continue;
    seen.add(id);
    isHit.push(relevant.has(id));
  }
  const hitsAt = (k: number) => {
    let hits = 0;
    for (let i = 0; i < Math.min(k, isHit.length); i++) if (isHit[i]) hits++;
    return hits;
  };

  const out: IrMetrics = {};
  for (const k of cutoffs.accuracyAtK) out[`accuracy@${k}`] = hitsAt(k) > 0 ? 1 : 0;
  const precision: Record<number, number> = {};
  const recall: Record<number, number> = {};
  for (const k of cutoffs.precisionRecallAtK) {
    precision[k] = hitsAt(k) / k;
    recall[k] = hitsAt(k) / relevant.size;
    out[`precision@${k}`] = precision[k];
  }
  for (const k of cutoffs.precisionRecallAtK) out[`recall@${k}`] = recall[k];
  for (const k of cutoffs.precisionRecallAtK) {
    const sum = precision[k] + recall[k];
    out[`f1@${k}`] = sum > 0 ? (2 * precision[k] * recall[k]) / sum : 0;
  }
  for (const k of cutoffs.mrrAtK) {
    let mrr = 0;
    for (let i = 0; i < Math.min(k, isHit.length); i++) {
      if (isHit[i]) {
        mrr = 1 / (i + 1);
        break;
      }
    }
    out[`mrr@${k}`] = mrr;
  }
  for (const k of cutoffs.ndcgAtK) {
    let dcg = 0;
    for (let i = 0; i < Math.min(k, isHit.length); i++) if (isHit[i]) dcg += 1 / Math.log2(i + 2);
    out[`ndcg@${k}`] = dcg / dcgOfOnes(Math.min(relevant.size, k));
  }
  for (const k of cutoffs.mapAtK) {
    let hits = 0;
    let sumPrecisions = 0;
    for (let i = 0; i < Math.min(k, isHit.length); i++) {
      if (isHit[i]) {
        hits++;
        sumPrecisions += hits / (i + 1);
      }
    }
    out[`map@${k}`] = sumPrecisions / Math.min(k, relevant.size);
  }
  return out;
}

/** One query to evaluate: its documents best first, and its relevant ids. */
export interface RankedQuery<Id = string> {
  ranked: readonly Id[];
  relevant: ReadonlySet<Id> | readonly Id[];
}

export interface IrEvaluation {
  /** Mean of each metric over the evaluated queries (every metric 0 when none were evaluated). */
  means: IrMetrics;
  /** Queries in the means (those with at least one relevant document). */
  evaluated: number;
  /** Queries left out because they have no relevant document. */
  skippedNoRelevant: number;
}

/**
 * Means of the metrics over queries: the function the CLI, `kotune eval` and the trainer's evaluation share.
 * Queries without relevant documents are skipped (counted in `skippedNoRelevant`); a query whose `ranked` is
 * empty counts, with 0 on every metric.
 */
export function evaluateRankings<Id>(queries: Iterable<RankedQuery<Id>>, cutoffs: IrCutoffs = DEFAULT_CUTOFFS): IrEvaluation {
  const names = metricNames(cutoffs);
  const sums: IrMetrics = Object.fromEntries(names.map((n) => [n, 0]));
  let evaluated = 0;
  let skippedNoRelevant = 0;
  for (const query of queries) {
    const relevant = query.relevant instanceof Set ? query.relevant : new Set(query.relevant as readonly Id[]);
    if (relevant.size === 0) {
      skippedNoRelevant++;
      continue;
    }
    const metrics = queryMetrics(query.ranked, relevant as ReadonlySet<Id>, cutoffs);
    for (const name of names) sums[name] += metrics[name];
    evaluated++;
  }
  const means: IrMetrics = {};
  for (const name of names) means[name] = evaluated > 0 ? sums[name] / evaluated : 0;
  return { means, evaluated, skippedNoRelevant };
}
