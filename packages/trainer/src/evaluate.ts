/**
 * Evaluation during training on `eval_data`, with the very code `kotune eval` runs (@kotune/eval), so that
 * a run's eval lines and a later `kotune eval` of its checkpoint agree:
 *
 * - rerankers: each line's candidates (its positives then negatives, or a `candidates` list) are scored as
 *   pairs and reranked — MRR@k, NDCG@k, has-right-in-contexts (accuracy@k), ... (`readRerankQueries`,
 *   `scoreCandidates`, `rerankedMetrics`);
 * - embedders: every distinct passage of the file(s) forms one corpus and each query retrieves from all of it
 *   by cosine similarity, its positives being the relevant ones (`encodeIntoMatrix`, `searchTopK`,
 *   `retrievalMetrics`, as sentence-transformers' `InformationRetrievalEvaluator`).
 *
 * The configured instructions are put before queries and passages as the training batches have them.
 */
import { applyFormat, readTrainExamples } from '@kotune/data';
import { ensureBackend } from '@kotune/engine';
import {
  depthOf,
  encodeIntoMatrix,
  evalCutoffs,
  readRerankQueries,
  rerankedMetrics,
  retrievalMetrics,
  scoreCandidates,
  searchTopK,
  type EvalQuery,
  type RerankQuery,
} from '@kotune/eval';
import type { TrainConfig } from './config.ts';
import type { TrainModel } from './model.ts';

export type EvalSet = { kind: 'reranker'; queries: RerankQuery[] } | { kind: 'embedder'; queries: EvalQuery[]; corpus: string[] };

/** Reads and checks `eval_data` once, or returns null when the config has none. */
export async function readEvalSet(config: TrainConfig): Promise<EvalSet | null> {
  if (config.eval_data.length === 0) return null;
  // FlagEmbedding applies `*_instruction_format` only when an instruction is set, as the training batches do.
  const instructed = (format: string, instruction: string | null, text: string) =>
    instruction === null ? text : applyFormat(format, instruction, text);
  const query = (text: string) => instructed(config.query_instruction_format, config.query_instruction_for_retrieval, text);
  const passage = (text: string) => instructed(config.passage_instruction_format, config.passage_instruction_for_retrieval, text);
  if (config.task === 'reranker') {
    const queries: RerankQuery[] = [];
    for (const path of config.eval_data) {
      for (const q of await readRerankQueries(path)) queries.push({ ...q, query: query(q.query), candidates: q.candidates.map(passage) });
    }
    return { kind: 'reranker', queries };
  }
  // Passages are identified by their text: one repeated across lines is one corpus document.
  const ids = new Map<string, string>();
  const idOf = (text: string) => {
    let id = ids.get(text);
    if (id === undefined) ids.set(text, (id = String(ids.size)));
    return id;
  };
  const queries: EvalQuery[] = [];
  for await (const example of readTrainExamples(config.eval_data)) {
    example.neg.forEach(idOf);
    queries.push({ id: `${example.path}:${example.line}`, query: query(example.query), relevant: new Set(example.pos.map(idOf)) });
  }
  return { kind: 'embedder', queries, corpus: [...ids.keys()].map(passage) };
}

/** Mean metrics (`mrr@10`, `ndcg@10`, `accuracy@1`, ...) of the model on the set. */
export async function evaluate(config: TrainConfig, model: TrainModel, set: EvalSet): Promise<Record<string, number>> {
  await ensureBackend(); // a model made with `random` before any backend was chosen would run on tfjs's pure-JS default
  const cutoffs = evalCutoffs();
  const batchSize = config.per_device_eval_batch_size;
  if (model.kind === 'reranker' && set.kind === 'reranker') {
    const maxLength = Math.min(config.max_len, model.maxSequenceLength);
    const score = (pairs: [string, string][]) => model.score(pairs, { normalize: false, batchSize, maxLength });
    const scores = await scoreCandidates(set.queries, score, { progress: false, chunkPairs: Math.max(batchSize, 256) });
    return rerankedMetrics(set.queries, scores, cutoffs).means;
  }
  if (model.kind === 'embedder' && set.kind === 'embedder') {
    const encode = (maxLength: number) => (texts: string[]) => model.encode(texts, { batchSize, maxLength });
    const corpus = await encodeIntoMatrix(set.corpus, set.corpus.length, encode(config.passage_max_len), { progress: false });
    const queryVectors = await encode(config.query_max_len)(set.queries.map((q) => q.query));
    const hits = searchTopK(corpus, queryVectors, Math.min(depthOf(cutoffs), set.corpus.length));
    return retrievalMetrics(
      set.queries,
      hits,
      set.corpus.map((_, i) => String(i)),
      cutoffs,
    ).means;
  }
  throw new Error(`evaluate: a ${model.kind} cannot be evaluated on a ${set.kind} set`);
}
