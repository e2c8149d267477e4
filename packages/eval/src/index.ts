export { Bm25Index, whitespaceWords, type Bm25Options } from './bm25.ts';
export { renderBarChart, writeBarChart } from './chart.ts';
export {
  encodeCorpusCached,
  encodeIntoMatrix,
  retrievalMetrics,
  depthOf,
  type CachedCorpusOptions,
  type EncodeTexts,
} from './embed-eval.ts';
export { cacheKey, defaultCacheDir, EmbeddingCache, fileSha256, modelFingerprint, type CacheKeyParts } from './embedding-cache.ts';
export {
  CANDIDATE_ORDER_SEED,
  corpusTexts,
  readCorpusIds,
  readEvalQueries,
  readRerankQueries,
  type EvalQuery,
  type RerankQuery,
} from './inputs.ts';
export { parseSamplingRange, sampleNegatives, uniquePassages, type SampleNegativesInput, type SamplingRange } from './mining.ts';
export { ProgressBar } from './progress.ts';
export { bm25Scores, firstStageMetrics, firstStageName, rerankedMetrics, scoreCandidates, type ScorePairs } from './rerank-eval.ts';
export { chartSeries, evalCutoffs, EVAL_KS, markdownTables, type SystemResult } from './report.ts';
export { normalizeInPlace, searchTopK, TopK, VectorMatrix, type Hit } from './topk.ts';
export { loadEncoder, loadScorer, type LoadedEncoder, type LoadedScorer } from './models.ts';
