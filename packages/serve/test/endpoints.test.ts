/**
 * Every endpoint over real HTTP on 127.0.0.1, against the tiny fixture reranker and two embedders (the fixture,
 * and a copy whose sentence-transformers config has e5's prompts): response shapes, sort orders and defaults as
 * TEI / Cohere / OpenAI give them, values equal to the library calls `kotune score` / `kotune encode` make
 * (exactly: same float64 scores, same float32 embeddings), and each kind of bad request answered with its status
 * and a JSON error in TEI's shape.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { createServer, type KotuneServer } from '../src/index.ts';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url));
const cases = JSON.parse(readFileSync(join(FIXTURE, 'cases.json'), 'utf8'));
const inputsOf = (name: string) => cases.tokenization.cases.find((c: { name: string }) => c.name === name).inputs;
/** Korean / English / mixed texts of 7 to 22 tokens (the fixture's `singles` without the empty and the 132-token one). */
const TEXTS: string[] = inputsOf('singles').filter((text: string, i: number) => text !== '' && i !== 6);
const LONG_TEXT: string = inputsOf('singles_no_truncation')[6]; // 132 tokens > the fixture's 64
const PAIRS: [string, string][] = inputsOf('pairs_no_truncation'); // two of them are longer than 64 tokens
const QUERY = PAIRS[0]![0];
const SHORT_PASSAGES = PAIRS.filter((_, i) => i !== 4 && i !== 5).map(([, p]) => p);
const ALL_PASSAGES = PAIRS.map(([, p]) => p);

const work = mkdtempSync(join(tmpdir(), 'kotune-serve-endpoints-'));
const E5 = join(work, 'e5');
let server: KotuneServer;
let url: string;
let reranker: Reranker;
let embedder: Embedder;

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}
async function call(path: string, body?: unknown, init: { headers?: Record<string, string>; raw?: string } = {}): Promise<Answer> {
  const response = await fetch(
    url + path,
    body === undefined && init.raw === undefined
      ? {}
      : {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...init.headers },
          body: init.raw ?? JSON.stringify(body),
        },
  );
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? '' : JSON.parse(text) };
}
const floats = (rows: Float32Array[]) => rows.map((row) => Array.from(row));

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
  cpSync(join(FIXTURE, 'embedder'), E5, { recursive: true });
  const stConfig = JSON.parse(readFileSync(join(E5, 'config_sentence_transformers.json'), 'utf8'));
  writeFileSync(
    join(E5, 'config_sentence_transformers.json'),
    JSON.stringify({ ...stConfig, prompts: { query: 'query: ', passage: 'passage: ' } }),
  );
  reranker = await Reranker.load(join(FIXTURE, 'reranker'), { log: null });
  embedder = await Embedder.load(join(FIXTURE, 'embedder'), { log: null });
  server = await createServer({
    models: [join(FIXTURE, 'reranker'), join(FIXTURE, 'embedder/'), E5],
    port: 0,
    backend: 'wasm',
    quiet: true,
  });
  url = await server.listen();
});
test.after(async () => {
  await server?.close();
  reranker?.dispose();
  embedder?.dispose();
  rmSync(work, { recursive: true, force: true });
});

test('binds 127.0.0.1 by default; models are named by their folder', () => {
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(
    server.models.map((m) => [m.name, m.kind]),
    [
      ['reranker', 'reranker'],
      ['embedder', 'embedder'],
      ['e5', 'embedder'],
    ],
  );
});

test('POST /rerank: [{index, score}] best first, sigmoid scores equal to Reranker.score (kotune score --normalize)', async () => {
  const expected = await reranker.score(
    SHORT_PASSAGES.map((p) => [QUERY, p]),
    { normalize: true },
  );
  const { status, body, headers } = await call('/rerank', { query: QUERY, texts: SHORT_PASSAGES });
  assert.is(status, 200);
  assert.equal(
    body.map((r: { index: number }) => r.index),
    expected.map((_, i) => i).sort((a, b) => expected[b]! - expected[a]!),
  );
  for (const rank of body) {
    assert.equal(Object.keys(rank), ['index', 'score']);
    assert.is(rank.score, expected[rank.index]);
  }
  const tokens = reranker.tokenizer.encodeRerankerPairs(
    SHORT_PASSAGES.map((p) => [QUERY, p]),
    { maxLength: 64, padding: false },
  ).inputIds;
  assert.is(headers.get('x-compute-tokens'), String(tokens.reduce((n, row) => n + row.length, 0)));
});

test('POST /rerank: raw_scores gives the logits, return_text the texts; equal scores come in reverse input order (TEI)', async () => {
  const logits = await reranker.score([
    [QUERY, 'b'],
    [QUERY, 'a'],
    [QUERY, 'b'],
  ]);
  const { body } = await call('/rerank', { query: QUERY, texts: ['b', 'a', 'b'], raw_scores: true, return_text: true });
  // Stable ascending, then reversed: the two equal 'b' scores come out as index 2, then 0.
  assert.equal(
    body.map((r: { index: number }) => r.index),
    logits[0]! > logits[1]! ? [2, 0, 1] : [1, 2, 0],
  );
  for (const rank of body) {
    assert.equal(Object.keys(rank), ['index', 'text', 'score']);
    assert.is(rank.score, logits[rank.index]);
    assert.is(rank.text, ['b', 'a', 'b'][rank.index]);
  }
});

test('POST /rerank: over-long pairs are 422 without truncate, cut as Reranker.score cuts them with it', async () => {
  const refused = await call('/rerank', { query: QUERY, texts: ALL_PASSAGES });
  assert.is(refused.status, 422);
  const firstLong = reranker.tokenizer.encodePairs([[QUERY, ALL_PASSAGES[4]!]], { truncation: false, padding: false }).inputIds[0]!.length;
  assert.ok(firstLong > 64);
  assert.equal(refused.body, {
    error: `Input validation error: \`inputs\` must have less than 64 tokens. Given: ${firstLong}`,
    error_type: 'Validation',
  });
  const expected = await reranker.score(
    ALL_PASSAGES.map((p) => [QUERY, p]),
    { normalize: true },
  );
  const { status, body } = await call('/rerank', { query: QUERY, texts: ALL_PASSAGES, truncate: true });
  assert.is(status, 200);
  for (const rank of body) assert.is(rank.score, expected[rank.index]);
});

test('POST /embed: [[floats]] for a string or a list, equal to Embedder.encode (kotune encode) in float32', async () => {
  const expected = floats(await embedder.encode(TEXTS));
  const batch = await call('/embed', { inputs: TEXTS, model: 'embedder' });
  assert.is(batch.status, 200);
  assert.equal(batch.body, expected);
  const single = await call('/embed', { inputs: TEXTS[1], model: 'embedder' });
  assert.equal(single.body, [expected[1]]);
  const raw = await call('/embed', { inputs: TEXTS, model: 'embedder', normalize: false });
  assert.equal(raw.body, floats(await embedder.encode(TEXTS, { normalize: false })));
});

test('POST /embed: prompt_name puts the folder prompt before each text, as kotune encode --prefix', async () => {
  const { body } = await call('/embed', { inputs: TEXTS, model: 'e5', prompt_name: 'query' });
  assert.equal(body, floats(await embedder.encode(TEXTS, { prefix: 'query: ' })));
  const unknown = await call('/embed', { inputs: TEXTS, model: 'e5', prompt_name: 'document' });
  assert.is(unknown.status, 422);
  assert.match(unknown.body.error, 'Available prompts: ["query","passage"]');
  const none = await call('/embed', { inputs: TEXTS, model: 'embedder', prompt_name: 'query' });
  assert.is(none.status, 422);
  assert.match(none.body.error, 'no prompts were found');
});

test('POST /embed: dimensions keeps the first N values, then normalises (TEI); 0 or too many is 422', async () => {
  const raw = await embedder.encode(TEXTS, { normalize: false });
  const { body } = await call('/embed', { inputs: TEXTS, model: 'embedder', dimensions: 8 });
  body.forEach((vector: number[], i: number) => {
    assert.is(vector.length, 8);
    assert.ok(Math.abs(Math.hypot(...vector) - 1) < 1e-6);
    const scale = vector[0]! / raw[i]![0]!;
    vector.forEach((v, j) => assert.ok(Math.abs(v - raw[i]![j]! * scale) <= 1e-6 * Math.abs(v) + 1e-9, `row ${i} value ${j}`));
  });
  assert.is((await call('/embed', { inputs: TEXTS, model: 'embedder', dimensions: 0 })).status, 422);
  const tooMany = await call('/embed', { inputs: TEXTS, model: 'embedder', dimensions: 33 });
  assert.equal(tooMany.body, {
    error: 'Input validation error: `dimensions` should be smaller than the maximum embedding dimension.',
    error_type: 'Validation',
  });
});

test('POST /v1/embeddings: OpenAI shape, float or base64, usage counts the tokens', async () => {
  const expected = await embedder.encode(TEXTS);
  const { status, body } = await call('/v1/embeddings', { input: TEXTS, model: 'embedder' });
  assert.is(status, 200);
  assert.equal(Object.keys(body), ['object', 'data', 'model', 'usage']);
  assert.is(body.object, 'list');
  assert.is(body.model, 'embedder');
  assert.equal(
    body.data,
    expected.map((row, index) => ({ object: 'embedding', embedding: Array.from(row), index })),
  );
  const tokens = embedder.tokenizer.encodeBatch(TEXTS, { padding: false }).inputIds.reduce((n, row) => n + row.length, 0);
  assert.equal(body.usage, { prompt_tokens: tokens, total_tokens: tokens });
  const base64 = await call('/v1/embeddings', { input: TEXTS[0], model: 'embedder', encoding_format: 'base64' });
  const bytes = Buffer.from(base64.body.data[0].embedding, 'base64');
  assert.equal(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), expected[0]);
  const alias = await call('/embeddings', { input: TEXTS[0], model: 'embedder' });
  assert.equal(alias.body.data[0].embedding, Array.from(expected[0]!));
});

test('POST /v1/rerank: Cohere / Jina results best first, top_n, return_documents, {text} documents', async () => {
  const expected = await reranker.score(
    SHORT_PASSAGES.map((p) => [QUERY, p]),
    { normalize: true },
  );
  const best = expected.map((_, i) => i).sort((a, b) => expected[b]! - expected[a]!);
  // One reranker is served, so a client's default model name (here Cohere's) is ignored, as TEI ignores OpenAI's.
  const documents = SHORT_PASSAGES.map((text, i) => (i % 2 ? { text } : text));
  const { status, body } = await call('/v1/rerank', {
    model: 'rerank-multilingual-v3.0',
    query: QUERY,
    documents,
    top_n: 3,
    return_documents: true,
  });
  assert.is(status, 200);
  assert.is(body.model, 'reranker');
  assert.match(body.id, /^[0-9a-f-]{36}$/);
  assert.equal(
    body.results,
    best.slice(0, 3).map((index) => ({ index, relevance_score: expected[index], document: { text: SHORT_PASSAGES[index] } })),
  );
  const plain = await call('/v1/rerank', { query: QUERY, documents: SHORT_PASSAGES });
  assert.equal(
    plain.body.results,
    best.map((index) => ({ index, relevance_score: expected[index] })),
  );
  assert.ok(plain.body.usage.total_tokens > 0);
});

test('GET /health and GET /info (TEI Info of the first model, every model under "models")', async () => {
  const health = await call('/health');
  assert.is(health.status, 200);
  assert.is(health.body, '');
  const { body } = await call('/info');
  assert.equal(Object.keys(body), [
    'model_id',
    'model_sha',
    'model_dtype',
    'served_model_name',
    'model_type',
    'max_concurrent_requests',
    'max_input_length',
    'max_batch_tokens',
    'max_batch_requests',
    'max_client_batch_size',
    'auto_truncate',
    'tokenization_workers',
    'version',
    'sha',
    'docker_label',
    'models',
  ]);
  assert.is(body.served_model_name, 'reranker');
  assert.equal(body.model_type, { reranker: { id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 } } });
  assert.is(body.max_input_length, 64);
  assert.is(body.max_client_batch_size, 32);
  assert.is(body.auto_truncate, false);
  assert.equal(body.models[1].model_type, { embedding: { pooling: 'cls' } });
  assert.is((await call('/info?model=e5')).body.served_model_name, 'e5');
  const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
  assert.match(metrics, /^te_queue_size 0$/m);
});

test('bad requests: status and TEI error shape for each', async () => {
  const expectError = async (answer: Promise<Answer>, status: number, errorType: string, message: RegExp | string) => {
    const { status: got, body } = await answer;
    assert.is(got, status, JSON.stringify(body));
    assert.equal(Object.keys(body), ['error', 'error_type']);
    assert.is(body.error_type, errorType);
    assert.match(body.error, message);
  };
  await expectError(
    call('/rerank', undefined, { raw: '{"query": "q", "texts": [' }),
    400,
    'Validation',
    'Failed to parse the request body as JSON',
  );
  await expectError(call('/rerank', undefined, { raw: '' }), 400, 'Validation', 'Failed to parse the request body as JSON');
  await expectError(
    call('/rerank', { query: 'q', texts: ['a'] }, { headers: { 'content-type': 'text/plain' } }),
    415,
    'Validation',
    'Content-Type: application/json',
  );
  await expectError(call('/rerank', { query: 'q', texts: [1] }), 422, 'Validation', '`texts[0]` must be string');
  await expectError(call('/rerank', { query: 'q', texts: 'a' }), 422, 'Validation', '`texts` must be array');
  await expectError(call('/rerank', { texts: ['a'] }), 422, 'Validation', 'missing field `query`');
  await expectError(call('/rerank', { query: 'q', texts: ['a'], raw_scores: 'yes' }), 422, 'Validation', '`raw_scores` must be boolean');
  await expectError(call('/embed', { inputs: 7, model: 'embedder' }), 422, 'Validation', '`inputs` must be a string or a list of strings');
  await expectError(call('/rerank', { query: 'q', texts: [] }), 400, 'Empty', /^`texts` cannot be empty$/);
  await expectError(call('/embed', { inputs: [], model: 'embedder' }), 400, 'Empty', /^`inputs` cannot be empty$/);
  await expectError(
    call('/embed', { inputs: ['a', ''], model: 'embedder' }),
    400,
    'Empty',
    /^Input validation error: `inputs` cannot be empty$/,
  );
  await expectError(
    call('/rerank', { query: 'q', texts: Array(33).fill('a') }),
    413,
    'Validation',
    /^batch size 33 > maximum allowed batch size 32$/,
  );
  await expectError(
    call('/embed', { inputs: [LONG_TEXT], model: 'embedder' }),
    422,
    'Validation',
    /^Input validation error: `inputs` must have less than 64 tokens\. Given: 132$/,
  );
  await expectError(
    call('/embed', { inputs: ['x'.repeat(64 * 250 + 1)], model: 'embedder' }),
    422,
    'Validation',
    'must have less than 16000 characters. Given: 16001',
  );
  await expectError(
    call('/rerank', { query: 'q', texts: ['a'], truncation_direction: 'left' }),
    422,
    'Validation',
    '"left" is not supported',
  );
  await expectError(
    call('/rerank', { query: 'q', texts: ['a'], truncation_direction: 'up' }),
    422,
    'Validation',
    '`truncation_direction` must be equal to one of the allowed values: "left" or "right"',
  );
  await expectError(call('/rerank', { query: 'q', texts: ['a'], model: 'embedder' }), 424, 'Backend', 'model is not a re-ranker model');
  await expectError(call('/embed', { inputs: 'a' }), 422, 'Validation', 'several embedders are served (embedder, e5)');
  await expectError(call('/embed', { inputs: 'a', model: 'bge-m3' }), 404, 'NotFound', "model 'bge-m3' is not served");
  await expectError(
    call('/rerank', undefined, { raw: JSON.stringify({ query: 'q', texts: ['x'.repeat(2_000_000)] }) }),
    413,
    'Validation',
    'larger than the limit of 2000000 bytes',
  );
  await expectError(call('/nowhere', { a: 1 }), 404, 'NotFound', 'no route POST /nowhere');
  // The texts past a correct one are still checked: one bad input refuses the whole request, nothing is queued.
  assert.is(server.stats().queued, 0);
});

test('POST /v1/embeddings errors come as TEI gives them there: {message, code, type}', async () => {
  const { status, body } = await call('/v1/embeddings', { input: [], model: 'embedder' });
  assert.is(status, 400);
  assert.equal(body, { message: '`inputs` cannot be empty', code: 400, type: 'Empty' });
  const wrong = await call('/v1/embeddings', { input: 'a', model: 'embedder', encoding_format: 'int8' });
  assert.is(wrong.status, 422);
  assert.equal(Object.keys(wrong.body), ['message', 'code', 'type']);
});

test.run();
