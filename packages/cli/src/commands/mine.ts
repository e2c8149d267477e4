/**
 * `kotune mine`: hard negatives for `{"query", "pos", "neg"}` JSONL, as FlagEmbedding's `hn_mine.py`.
 * The candidate pool (the file's own passages, or `--candidate-pool` `{"text"}` lines) is ranked for each
 * query by an embedder (cosine, exact) or, without one, by BM25 over tokenizer pieces; ranks in
 * `--range-for-sampling` minus the positives and the query itself are sampled down to `--negative-number`,
 * topped up with random pool passages when too few. Other fields of each line are kept; `neg` is replaced.
 */
import { DataError, parseTrainExample, readJsonl, Rng } from '@kotune/data';
import { initBackend } from '@kotune/engine';
import {
  Bm25Index,
  defaultCacheDir,
  EmbeddingCache,
  encodeCorpusCached,
  loadEncoder,
  parseSamplingRange,
  ProgressBar,
  sampleNegatives,
  searchTopK,
  uniquePassages,
  whitespaceWords,
  type Hit,
} from '@kotune/eval';
import { writeFileAtomic } from '@kotune/metrics';
import { XLMRTokenizer } from '@kotune/tokenizer';
import { intFlag, parseCommandArgs, type Flags } from '../args.ts';
import { CliError } from '../errors.ts';

const SYNOPSIS =
  '--input FILE --output FILE [--embedder MODEL | --tokenizer DIR] [--candidate-pool FILE] [--range-for-sampling 10-210] [--negative-number 15]';
const FLAGS: Flags = {
  input: { type: 'string', required: true, help: '{query, pos, neg} JSONL' },
  output: { type: 'string', required: true, help: 'where to write the lines with "neg" filled' },
  'candidate-pool': { type: 'string', help: '{text} JSONL to draw negatives from (default: every pos and neg of --input)' },
  'range-for-sampling': { type: 'string', default: '10-210', help: 'ranks (0-based, end excluded) to sample negatives from' },
  'negative-number': { type: 'string', default: '15', help: 'negatives per query' },
  embedder: { type: 'string', help: 'embedder folder or id for the first stage (default: BM25)' },
  'query-instruction': { type: 'string', help: 'embedder: text put before each query (FlagEmbedding query_instruction_for_retrieval)' },
  tokenizer: { type: 'string', help: 'BM25: tokenizer folder whose pieces are the BM25 terms' },
  'bm25-terms': { type: 'string', default: 'pieces', help: 'BM25 terms: pieces (needs --tokenizer) | words (whitespace)' },
  'batch-size': { type: 'string', default: '32', help: 'embedder: texts per forward pass' },
  'max-length': { type: 'string', help: "embedder: tokens per text (default the folder's max_seq_length)" },
  seed: { type: 'string', default: '42', help: 'seed of the sampling and the padding' },
  'cache-dir': { type: 'string', help: `embedding cache folder (default ${defaultCacheDir()})` },
  'no-cache': { type: 'boolean', help: 'neither read nor write the embedding cache' },
  quiet: { type: 'boolean', help: 'no progress bars' },
};

function fail(message: string): never {
  throw new CliError(`mine: ${message}`);
}

interface Line {
  raw: Record<string, unknown>;
  query: string;
  pos: string[];
}

async function readLines(path: string): Promise<{ lines: Line[]; passages: string[] }> {
  const lines: Line[] = [];
  const passages: string[] = [];
  for await (const { line, value } of readJsonl(path)) {
    const example = parseTrainExample(value, path, line);
    lines.push({ raw: value as Record<string, unknown>, query: example.query, pos: example.pos });
    passages.push(...example.pos, ...example.neg);
  }
  if (lines.length === 0) throw new DataError(path, undefined, 'no lines');
  return { lines, passages };
}

async function readPool(path: string): Promise<string[]> {
  const texts: string[] = [];
  for await (const { line, value } of readJsonl(path)) {
    const text = (value as { text?: unknown } | null)?.text;
    if (typeof text !== 'string') throw new DataError(path, line, 'expected {"text": string}', { field: 'text' });
    texts.push(text);
  }
  return texts;
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('mine', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  let range;
  try {
    range = parseSamplingRange(v['range-for-sampling'] as string);
  } catch (error) {
    fail((error as Error).message);
  }
  const negativeNumber = intFlag('mine', 'negative-number', v['negative-number'], 15);
  const seed = Number(v.seed);
  if (!Number.isSafeInteger(seed)) fail(`--seed must be an integer, got '${String(v.seed)}'`);
  const terms = v['bm25-terms'] as string;
  if (!v.embedder) {
    if (terms !== 'pieces' && terms !== 'words') fail(`--bm25-terms must be pieces or words, got '${terms}'`);
    if (terms === 'pieces' && !v.tokenizer)
      fail('BM25 over pieces needs --tokenizer DIR (or give --embedder MODEL, or --bm25-terms words)');
  }
  const progress = !v.quiet;

  const input = v.input as string;
  const { lines, passages } = await readLines(input);
  const poolFile = (v['candidate-pool'] as string | undefined) ?? input;
  const pool = uniquePassages(v['candidate-pool'] ? await readPool(poolFile) : passages);
  if (pool.length === 0) fail(`the candidate pool ${poolFile} is empty`);
  const depth = Math.min(range.end, pool.length);

  let rankings: Hit[][];
  let firstStage: string;
  if (v.embedder) {
    await initBackend({ backend: v.backend as string | undefined });
    const batchSize = intFlag('mine', 'batch-size', v['batch-size'], 32);
    const maxLength = v['max-length'] === undefined ? undefined : intFlag('mine', 'max-length', v['max-length'], 512);
    const queryPrefix = v['query-instruction'] as string | undefined;
    const encoder = await loadEncoder(v.embedder as string, { batchSize, maxLength, queryPrefix });
    try {
      const cache = v['no-cache'] ? null : new EmbeddingCache((v['cache-dir'] as string | undefined) ?? defaultCacheDir());
      const { matrix, cached } = await encodeCorpusCached({
        file: poolFile,
        rows: pool.length,
        texts: () => pool,
        encode: encoder.encodePassages,
        model: encoder.fingerprint,
        options: { pool: v['candidate-pool'] ? 'candidate-pool' : 'input pos+neg', maxLength: maxLength ?? null },
        cache,
        chunkSize: Math.max(batchSize, 256),
        progress,
      });
      if (cached) console.error(`mine: pool embeddings from the cache (${pool.length} × ${matrix.dim})`);
      const queryBar = new ProgressBar('encoding queries', lines.length, progress);
      const queryVectors: Float32Array[] = [];
      for (let i = 0; i < lines.length; i += 256) {
        queryVectors.push(...(await encoder.encodeQueries(lines.slice(i, i + 256).map((l) => l.query))));
        queryBar.update(queryVectors.length);
      }
      queryBar.finish();
      const bar = new ProgressBar('mining', lines.length, progress);
      rankings = searchTopK(matrix, queryVectors, depth, (done) => bar.update(done));
      bar.finish();
    } finally {
      encoder.dispose();
    }
    firstStage = `embedder ${v.embedder as string} (cosine)`;
  } else {
    const tokenizer = terms === 'pieces' ? XLMRTokenizer.fromFolder(v.tokenizer as string) : null;
    const tokenize = (text: string): (string | number)[] => (tokenizer ? tokenizer.tokenize(text) : whitespaceWords(text));
    const index = new Bm25Index(pool.map(tokenize));
    const bar = new ProgressBar('mining', lines.length, progress);
    rankings = lines.map((line, i) => {
      const hits = index.search(tokenize(line.query), depth);
      bar.update(i + 1);
      return hits;
    });
    bar.finish();
    firstStage = `BM25 over ${terms === 'pieces' ? `tokenizer pieces (${v.tokenizer as string})` : 'whitespace words'}`;
  }

  const rng = new Rng(seed);
  let fromRange = 0;
  let padded = 0;
  const out: string[] = [];
  lines.forEach((line, i) => {
    const ranked = rankings[i].map((h) => h.index);
    const neg = sampleNegatives({ query: line.query, pos: line.pos, ranked, pool, range, negativeNumber, rng });
    const inRange = new Set(ranked.slice(range.start, range.end).map((row) => pool[row]));
    const mined = neg.filter((t) => inRange.has(t)).length;
    fromRange += mined;
    padded += neg.length - mined;
    out.push(JSON.stringify({ ...line.raw, neg }));
  });
  writeFileAtomic(v.output as string, `${out.join('\n')}\n`);

  const rows = [
    ['queries', String(lines.length)],
    ['candidate pool', `${pool.length} distinct passages (${v['candidate-pool'] ? poolFile : 'pos + neg of the input'})`],
    ['first stage', firstStage],
    ['range for sampling', `ranks ${range.start}-${range.end}`],
    ['negatives per query', `${(fromRange + padded) / lines.length} (asked ${negativeNumber})`],
    ['from the range', `${fromRange}`],
    ['random padding', `${padded}`],
    ['output', v.output as string],
  ];
  console.log(['| | |', '| --- | --- |', ...rows.map(([k, val]) => `| ${k} | ${val} |`)].join('\n'));
}
