/**
 * Corpus scale: 100k Korean passages encoded into one Float32 matrix, written to and read back from the
 * embedding cache, and searched exactly (top 10) by 1k queries, the path `kotune eval` and `kotune mine`
 * take. Target: the embeddings take 4 bytes × dim × N plus a constant, so the matrix's bytes, the growth of
 * ArrayBuffer memory and of RSS while encoding, and the growth while loading the cache are printed next to
 * 4 × dim × N.
 *
 * Passages are 1–3 sentences drawn (seeded) from the shipped KorSTS and chatbot data. The embedder is a
 * small random XLM-R (hidden 128, 2 layers) on the ko-en-32k tokenizer. Its speed is measured on 2k passages
 * first; when encoding all 100k would take more than ENCODE_BUDGET_S, only the first rows are encoded with
 * the model and the rest are random unit vectors fed through the same `encodeIntoMatrix` → `VectorMatrix` →
 * cache → `searchTopK` path (the output says how many of each). Queries are 1k of the model-encoded
 * passages, encoded again as queries, so each should find its own text first (a check that the rows
 * landed where they belong).
 *
 *   pnpm bench corpus-scale [-- --backend cpu] [-- --rows 100000]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Rng } from '@kotune/data';
import { activeBackend, backendFromArgv, initBackend } from '@kotune/engine';
import { Embedder } from '@kotune/xlm-roberta';
import { EmbeddingCache, encodeIntoMatrix, searchTopK, type EncodeTexts } from '../src/index.ts';

const root = new URL('../../../', import.meta.url).pathname;
const rowsFlag = process.argv.indexOf('--rows');
const ROWS = rowsFlag > 0 ? Number(process.argv[rowsFlag + 1]) : 100_000;
const QUERIES = 1000;
const K = 10;
const SPEED_SAMPLE = 2000;
/** Seconds of model encoding the bench allows itself (2 shared cores); beyond it the rest is random vectors. */
const ENCODE_BUDGET_S = 60;
const CONFIG = { hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 256, max_position_embeddings: 130 };
const MAX_LENGTH = 64;
const MiB = 2 ** 20;

// A collectable heap makes the memory figures mean something: without it they measure when V8 last collected.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function memory() {
  gc();
  const { rss, arrayBuffers } = process.memoryUsage();
  return { rss, arrayBuffers };
}

function sentences(): string[] {
  const sts = readFileSync('/work/shared/data/kornlu/KorSTS_sts-train.tsv', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.split('\t'))
    .filter((f) => f.length >= 7)
    .flatMap((f) => [f[5], f[6]]);
  const chatbot = readFileSync('/work/shared/data/chatbot/ChatbotData.csv', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.split(','))
    .filter((f) => f.length === 3)
    .flatMap((f) => [f[0], f[1]]);
  return [...new Set([...sts, ...chatbot].map((s) => s.trim()).filter((s) => s.length > 0))];
}

function passages(pool: readonly string[], n: number, rng: Rng): string[] {
  return Array.from({ length: n }, () => Array.from({ length: 1 + rng.int(3) }, () => pool[rng.int(pool.length)]).join(' '));
}

await initBackend({ backend: backendFromArgv(), log: null });
const embedder = Embedder.random(CONFIG, `${root}packages/tokenizer/assets/ko-en-32k`, 3, { pooling: 'mean', normalize: true });
const modelEncode: EncodeTexts = (texts) => embedder.encode(texts, { batchSize: 64, maxLength: MAX_LENGTH });
const pool = sentences();
const corpus = passages(pool, ROWS, new Rng(11));
const dim = CONFIG.hidden_size;
console.log(
  `backend ${activeBackend()?.name}; ${pool.length} distinct sentences → ${ROWS} passages (1–3 sentences, mean ${(corpus.reduce((n, t) => n + t.length, 0) / ROWS).toFixed(0)} chars); embedder hidden ${dim}, ${CONFIG.num_hidden_layers} layers, max ${MAX_LENGTH} tokens`,
);

// 1. Model speed on 2k passages (also warms the backend, whose heap then stays put for the memory figures).
let started = performance.now();
await modelEncode(corpus.slice(0, SPEED_SAMPLE));
const modelRate = SPEED_SAMPLE / ((performance.now() - started) / 1000);
const modelRows = Math.min(ROWS, Math.max(QUERIES, Math.floor((modelRate * ENCODE_BUDGET_S) / 1000) * 1000));
console.log(
  `model encoding: ${modelRate.toFixed(0)} passages/s on ${SPEED_SAMPLE} → ${modelRows === ROWS ? `all ${ROWS} rows with the model` : `${modelRows} rows with the model, the other ${ROWS - modelRows} random unit vectors (all ${ROWS} would take ${(ROWS / modelRate).toFixed(0)} s)`}`,
);

// 2. Encode into the matrix: model rows first, then random ones, through the same chunked path.
const fillRng = new Rng(12);
let encodedRows = 0;
const encode: EncodeTexts = async (texts) => {
  const fromModel = texts.slice(0, Math.max(0, modelRows - encodedRows));
  const vectors = fromModel.length > 0 ? await modelEncode(fromModel) : [];
  for (let i = fromModel.length; i < texts.length; i++) vectors.push(Float32Array.from({ length: dim }, () => fillRng.next() * 2 - 1));
  encodedRows += texts.length;
  return vectors;
};
const before = memory();
started = performance.now();
const matrix = await encodeIntoMatrix(corpus, ROWS, encode, { label: 'encoding corpus' });
const encodeSeconds = (performance.now() - started) / 1000;
const afterEncode = memory();
const expected = 4 * dim * ROWS;
const ratio = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB = ${(bytes / expected).toFixed(3)} × 4·dim·N`;
console.log(
  `encode: ${ROWS} rows in ${encodeSeconds.toFixed(1)} s = ${(ROWS / encodeSeconds).toFixed(0)} passages/s overall (${modelRows} by the model)`,
);
console.log(
  `embedding buffer: ${matrix.data.byteLength} bytes; 4 × dim × N = 4 × ${dim} × ${ROWS} = ${expected} bytes; ratio ${(matrix.data.byteLength / expected).toFixed(3)}`,
);
console.log(
  `while encoding: ArrayBuffer memory +${ratio(afterEncode.arrayBuffers - before.arrayBuffers)}, RSS +${ratio(afterEncode.rss - before.rss)}`,
);

// 3. Cache round trip: written as raw float32, read back into one new buffer.
const dir = mkdtempSync(join(tmpdir(), 'kotune-scale-'));
try {
  const cache = new EmbeddingCache(dir);
  started = performance.now();
  cache.save('scale', matrix, { model: 'random', corpusSha256: '-', options: {} });
  const saveSeconds = (performance.now() - started) / 1000;
  const beforeLoad = memory();
  started = performance.now();
  const loaded = cache.load('scale');
  const loadSeconds = (performance.now() - started) / 1000;
  const afterLoad = memory();
  if (!loaded) throw new Error('the cache entry just written did not load');
  const identical = Buffer.from(loaded.data.buffer).equals(Buffer.from(matrix.data.buffer));
  console.log(
    `cache: save ${saveSeconds.toFixed(2)} s, load ${loadSeconds.toFixed(2)} s (${(expected / MiB / loadSeconds).toFixed(0)} MiB/s), bit-identical ${identical}; while loading: ArrayBuffer memory +${ratio(afterLoad.arrayBuffers - beforeLoad.arrayBuffers)}, RSS +${ratio(afterLoad.rss - beforeLoad.rss)}`,
  );
  if (!identical) process.exitCode = 1;

  // 4. Exact top-10 search of 1k queries over the loaded matrix.
  const queryRows = Array.from({ length: QUERIES }, (_, i) => Math.floor((i * modelRows) / QUERIES));
  const queries = await modelEncode(queryRows.map((row) => corpus[row]));
  const beforeSearch = memory();
  started = performance.now();
  const hits = searchTopK(loaded, queries, K);
  const searchSeconds = (performance.now() - started) / 1000;
  const afterSearch = memory();
  const selfFirst = hits.filter((h, i) => corpus[h[0].index] === corpus[queryRows[i]]).length;
  console.log(
    `search: ${QUERIES} queries × ${ROWS} rows, top ${K} exact, in ${searchSeconds.toFixed(1)} s = ${(QUERIES / searchSeconds).toFixed(1)} queries/s (${((QUERIES * ROWS) / searchSeconds / 1e6).toFixed(1)} M dot products/s); RSS +${((afterSearch.rss - beforeSearch.rss) / MiB).toFixed(1)} MiB; own text ranked first for ${selfFirst}/${QUERIES} queries`,
  );
  console.log(
    `| rows | dim | model rows | encode passages/s | search queries/s | buffer bytes | 4·dim·N | ratio | RSS growth encoding | RSS growth cache load |`,
  );
  console.log(
    `| ${ROWS} | ${dim} | ${modelRows} | ${(ROWS / encodeSeconds).toFixed(0)} (model ${modelRate.toFixed(0)}) | ${(QUERIES / searchSeconds).toFixed(1)} | ${matrix.data.byteLength} | ${expected} | ${(matrix.data.byteLength / expected).toFixed(3)} | ${((afterEncode.rss - before.rss) / expected).toFixed(2)}× | ${((afterLoad.rss - beforeLoad.rss) / expected).toFixed(2)}× |`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
  embedder.dispose();
}
