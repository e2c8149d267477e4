/**
 * Embedder evaluation and search: the corpus is encoded in chunks straight into one Float32 matrix (cached
 * on disk), queries are encoded, and each query's exact top k by cosine similarity is ranked.
 */
import { evaluateRankings, type IrCutoffs, type IrEvaluation } from '@kotune/metrics';
import { cacheKey, EmbeddingCache, fileSha256, type CacheKeyParts } from './embedding-cache.ts';
import type { EvalQuery } from './inputs.ts';
import { ProgressBar } from './progress.ts';
import { evalCutoffs } from './report.ts';
import { VectorMatrix, type Hit } from './topk.ts';

/** Embeddings of `texts`, one vector per text. */
export type EncodeTexts = (texts: string[]) => Promise<Float32Array[]>;

/** Encodes `rows` texts chunk by chunk; only one chunk of texts and vectors is alive besides the matrix. */
export async function encodeIntoMatrix(
  texts: AsyncIterable<string> | Iterable<string>,
  rows: number,
  encode: EncodeTexts,
  { chunkSize = 256, label = 'encoding', progress = true }: { chunkSize?: number; label?: string; progress?: boolean } = {},
): Promise<VectorMatrix> {
  const bar = new ProgressBar(label, rows, progress);
  let matrix: VectorMatrix | null = null;
  let chunk: string[] = [];
  const flush = async () => {
    if (chunk.length === 0) return;
    const vectors = await encode(chunk);
    if (vectors.length !== chunk.length) throw new Error(`the embedder returned ${vectors.length} vectors for ${chunk.length} texts`);
    matrix ??= new VectorMatrix(rows, vectors[0].length);
    matrix.append(vectors);
    bar.add(chunk.length);
    chunk = [];
  };
  for await (const text of texts) {
    chunk.push(text);
    if (chunk.length === chunkSize) await flush();
  }
  await flush();
  bar.finish();
  if (!matrix || (matrix as VectorMatrix).count !== rows)
    throw new Error(`expected ${rows} texts to encode, got ${matrix ? (matrix as VectorMatrix).count : 0}`);
  return matrix;
}

export interface CachedCorpusOptions {
  /** The corpus file, hashed for the cache key. */
  file: string;
  rows: number;
  texts: () => AsyncIterable<string> | Iterable<string>;
  encode: EncodeTexts;
  /** Model fingerprint and encoding options (prefix, max length, ...): anything that changes the vectors. */
  model: string;
  options: Record<string, unknown>;
  /** null: no cache. */
  cache: EmbeddingCache | null;
  chunkSize?: number;
  progress?: boolean;
}

/** The corpus matrix from the cache when model, file content and options match; encoded (and stored) otherwise. */
export async function encodeCorpusCached(o: CachedCorpusOptions): Promise<{ matrix: VectorMatrix; cached: boolean }> {
  const parts: CacheKeyParts = { model: o.model, corpusSha256: await fileSha256(o.file), options: o.options };
  const key = cacheKey(parts);
  const hit = o.cache?.load(key);
  if (hit && hit.rows === o.rows) return { matrix: hit, cached: true };
  const matrix = await encodeIntoMatrix(o.texts(), o.rows, o.encode, {
    chunkSize: o.chunkSize,
    label: 'encoding corpus',
    progress: o.progress,
  });
  o.cache?.save(key, matrix, parts);
  return { matrix, cached: false };
}

export function retrievalMetrics(
  queries: readonly EvalQuery[],
  hits: readonly Hit[][],
  corpusIds: readonly string[],
  cutoffs: IrCutoffs = evalCutoffs(),
): IrEvaluation {
  return evaluateRankings(
    queries.map((q, i) => ({ ranked: hits[i].map((h) => corpusIds[h.index]), relevant: q.relevant })),
    cutoffs,
  );
}

export function depthOf(cutoffs: IrCutoffs): number {
  return Math.max(...cutoffs.accuracyAtK, ...cutoffs.precisionRecallAtK, ...cutoffs.mrrAtK, ...cutoffs.ndcgAtK, ...cutoffs.mapAtK);
}
