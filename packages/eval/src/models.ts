/**
 * The models behind `kotune eval / mine / score-data`, seen through the two function types the evaluation
 * code takes (`ScorePairs`, `EncodeTexts`), plus what identifies a model for the embedding cache.
 * The model package is imported on first use, so that the metric, table and search code of this package
 * can be used without starting TensorFlow.js.
 */
import { existsSync, statSync } from 'node:fs';
import { modelFingerprint } from './embedding-cache.ts';
import type { EncodeTexts } from './embed-eval.ts';
import type { ScorePairs } from './rerank-eval.ts';

export interface LoadedScorer {
  score: ScorePairs;
  /** The model's tokenizer pieces (ids) of a text, e.g. as BM25 terms. */
  tokenize(text: string): number[];
  dispose(): void;
}

export interface LoadedEncoder {
  /** Queries get `queryPrefix`, passages `passagePrefix`. */
  encodeQueries: EncodeTexts;
  encodePassages: EncodeTexts;
  /** For the cache key: the folder's files for a local model, else the name as given. */
  fingerprint: string;
  dispose(): void;
}

export async function loadScorer(
  model: string,
  options: { batchSize?: number; maxLength?: number; normalize?: boolean } = {},
): Promise<LoadedScorer> {
  const { Reranker } = await import('@kotune/xlm-roberta');
  const reranker = await Reranker.load(model);
  return {
    score: (pairs) =>
      reranker.score(pairs, { normalize: options.normalize ?? false, batchSize: options.batchSize, maxLength: options.maxLength }),
    tokenize: (text) => reranker.tokenizer.tokenize(text),
    dispose: () => reranker.dispose(),
  };
}

export async function loadEncoder(
  model: string,
  options: { batchSize?: number; maxLength?: number; queryPrefix?: string; passagePrefix?: string } = {},
): Promise<LoadedEncoder> {
  const { Embedder } = await import('@kotune/xlm-roberta');
  const embedder = await Embedder.load(model);
  const encodeWith =
    (prefix: string | undefined): EncodeTexts =>
    (texts) =>
      embedder.encode(texts, { prefix: prefix ?? '', batchSize: options.batchSize, maxLength: options.maxLength });
  const local = existsSync(model) && statSync(model).isDirectory();
  return {
    encodeQueries: encodeWith(options.queryPrefix),
    encodePassages: encodeWith(options.passagePrefix),
    fingerprint: local ? modelFingerprint(model) : `name:${model}`,
    dispose: () => embedder.dispose(),
  };
}
