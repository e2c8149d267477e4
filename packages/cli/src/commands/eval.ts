/**
 * `kotune eval`: retrieval metrics of one or more rerankers or embedders, as a model-card table (F1, Recall,
 * Precision, MRR, NDCG at top-k 1, 3, 5, 10), a JSON file and a bar chart.
 *
 *   rerankers: --data FILE   {"query", "pos", "neg"} lines (candidates = pos and neg in a random order, seeded by
 *                            --seed: as listed, every positive would come first) or {"query", "candidates":
 *                            [{"text", "relevance"}]} lines (a first stage's ranking, kept). The table's first
 *                            rows are baselines that do not know the answer: that order, then BM25 over the
 *                            candidates with the first model's tokenizer pieces as terms.
 *   embedders: --corpus FILE {"id", "text"} lines and --queries FILE {"query", "relevant": [ids]} lines;
 *              the corpus embeddings are cached on disk per model, corpus content and options.
 */
import { initBackend } from '@kotune/engine';
import {
  bm25Scores,
  CANDIDATE_ORDER_SEED,
  corpusTexts,
  defaultCacheDir,
  depthOf,
  EmbeddingCache,
  encodeCorpusCached,
  evalCutoffs,
  firstStageMetrics,
  firstStageName,
  loadEncoder,
  loadScorer,
  markdownTables,
  ProgressBar,
  readCorpusIds,
  readEvalQueries,
  readRerankQueries,
  rerankedMetrics,
  retrievalMetrics,
  scoreCandidates,
  searchTopK,
  writeBarChart,
  type SystemResult,
} from '@kotune/eval';
import { writeFileAtomic } from '@kotune/metrics';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { intFlag, parseCommandArgs, type Flags } from '../args.ts';
import { CliError } from '../errors.ts';

const SYNOPSIS = '--model MODEL [--model MODEL ...] (--data FILE | --corpus FILE --queries FILE) [--output-dir DIR]';
const FLAGS: Flags = {
  model: { type: 'string', multiple: true, required: true, help: 'model folder or Hugging Face id; repeat to compare models in one table' },
  type: { type: 'string', help: 'reranker | embedder (default: embedder when --corpus is given, else reranker)' },
  data: { type: 'string', help: 'reranker set: {query, pos, neg} or {query, candidates: [{text, relevance}]} JSONL' },
  corpus: { type: 'string', help: 'embedder corpus: {id, text} JSONL' },
  queries: { type: 'string', help: 'embedder queries: {query, relevant: [ids]} JSONL' },
  'query-prefix': { type: 'string', help: 'embedder: text put before each query (e.g. "query: ")' },
  'passage-prefix': { type: 'string', help: 'embedder: text put before each passage (e.g. "passage: ")' },
  'batch-size': { type: 'string', help: 'pairs or texts per forward pass', default: '32' },
  'max-length': {
    type: 'string',
    help: "tokens per pair (reranker, specials included) or text (embedder; default the folder's max_seq_length)",
  },
  seed: { type: 'string', default: String(CANDIDATE_ORDER_SEED), help: 'reranker: seed of the candidate order of {query, pos, neg} lines' },
  'output-dir': { type: 'string', help: 'write eval.json, eval.md and eval.png here' },
  title: { type: 'string', help: 'chart title' },
  'cache-dir': { type: 'string', help: `embedding cache folder (default ${defaultCacheDir()})` },
  'no-cache': { type: 'boolean', help: 'embedder: neither read nor write the embedding cache' },
  quiet: { type: 'boolean', help: 'no progress bars' },
};

function fail(message: string): never {
  throw new CliError(`eval: ${message}`);
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('eval', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  const models = v.model as string[];
  const type = (v.type as string | undefined) ?? (v.corpus ? 'embedder' : 'reranker');
  if (type !== 'reranker' && type !== 'embedder') fail(`--type must be reranker or embedder, got '${type}'`);
  const batchSize = intFlag('eval', 'batch-size', v['batch-size'], 32);
  const maxLength = v['max-length'] === undefined ? undefined : intFlag('eval', 'max-length', v['max-length'], 512);
  const progress = !v.quiet;
  const cutoffs = evalCutoffs();
  const systems: SystemResult[] = [];
  let queryCount = 0;
  let skipped = 0;

  if (type === 'reranker') {
    if (!v.data) fail('rerankers need --data FILE');
    if (v.corpus || v.queries) fail('--corpus / --queries are for embedders (--type embedder)');
    const seed = Number(v.seed);
    if (!Number.isSafeInteger(seed)) fail(`--seed must be an integer, got '${String(v.seed)}'`);
    const queries = await readRerankQueries(v.data as string, { seed });
    await initBackend({ backend: v.backend as string | undefined });
    const first = firstStageMetrics(queries, cutoffs);
    queryCount = first.evaluated;
    skipped = first.skippedNoRelevant;
    systems.push({ name: firstStageName(queries, seed), metrics: first.means });
    for (const [i, model] of models.entries()) {
      const scorer = await loadScorer(model, { batchSize, maxLength });
      try {
        if (i === 0) {
          const bm25 = rerankedMetrics(queries, bm25Scores(queries, scorer.tokenize), cutoffs).means;
          systems.push({ name: `BM25 (${model} tokenizer pieces)`, metrics: bm25 });
        }
        const scores = await scoreCandidates(queries, scorer.score, {
          label: `scoring ${model}`,
          progress,
          chunkPairs: Math.max(batchSize, 256),
        });
        systems.push({ name: model, metrics: rerankedMetrics(queries, scores, cutoffs).means });
      } finally {
        scorer.dispose();
      }
    }
  } else {
    if (!v.corpus || !v.queries) fail('embedders need --corpus FILE and --queries FILE');
    if (v.data) fail('--data is for rerankers (--type reranker)');
    const corpusPath = v.corpus as string;
    const corpusIds = await readCorpusIds(corpusPath);
    const queries = await readEvalQueries(v.queries as string, new Set(corpusIds));
    await initBackend({ backend: v.backend as string | undefined });
    const cache = v['no-cache'] ? null : new EmbeddingCache((v['cache-dir'] as string | undefined) ?? defaultCacheDir());
    const depth = Math.min(depthOf(cutoffs), corpusIds.length);
    for (const model of models) {
      const options = {
        queryPrefix: v['query-prefix'] as string | undefined,
        passagePrefix: v['passage-prefix'] as string | undefined,
        maxLength,
      };
      const encoder = await loadEncoder(model, { batchSize, ...options });
      try {
        const { matrix, cached } = await encodeCorpusCached({
          file: corpusPath,
          rows: corpusIds.length,
          texts: () => corpusTexts(corpusPath),
          encode: encoder.encodePassages,
          model: encoder.fingerprint,
          options: { passagePrefix: options.passagePrefix ?? '', maxLength: maxLength ?? null },
          cache,
          chunkSize: Math.max(batchSize, 256),
          progress,
        });
        if (cached) console.error(`eval: ${model}: corpus embeddings from the cache (${corpusIds.length} × ${matrix.dim})`);
        const queryBar = new ProgressBar(`encoding queries ${model}`, queries.length, progress);
        const queryVectors: Float32Array[] = [];
        for (let i = 0; i < queries.length; i += 256) {
          queryVectors.push(...(await encoder.encodeQueries(queries.slice(i, i + 256).map((q) => q.query))));
          queryBar.update(queryVectors.length);
        }
        queryBar.finish();
        const searchBar = new ProgressBar(`searching ${model}`, queries.length, progress);
        const hits = searchTopK(matrix, queryVectors, depth, (done) => searchBar.update(done));
        searchBar.finish();
        const result = retrievalMetrics(queries, hits, corpusIds, cutoffs);
        queryCount = result.evaluated;
        skipped = result.skippedNoRelevant;
        systems.push({ name: model, metrics: result.means });
      } finally {
        encoder.dispose();
      }
    }
  }

  const markdown = markdownTables(systems);
  console.log(markdown);
  console.log(`${queryCount} queries${skipped > 0 ? ` (${skipped} without a relevant document skipped)` : ''}`);
  if (v['output-dir']) {
    const dir = v['output-dir'] as string;
    mkdirSync(dir, { recursive: true });
    const summary = {
      task: type,
      queries: queryCount,
      queries_skipped_no_relevant: skipped,
      systems: Object.fromEntries(systems.map((s) => [s.name, s.metrics])),
    };
    writeFileAtomic(join(dir, 'eval.json'), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileAtomic(join(dir, 'eval.md'), markdown);
    writeBarChart(join(dir, 'eval.png'), systems, {
      title: (v.title as string | undefined) ?? `${type} evaluation (${queryCount} queries)`,
    });
    console.log(`wrote ${join(dir, 'eval.json')}, eval.md, eval.png`);
  }
}
