/**
 * The queue over real HTTP on 127.0.0.1: the API key, concurrent requests gathered into one batch round, the
 * bounded queue's 503 + Retry-After, a disconnected client's queued work dropped, and close() finishing the
 * requests it has taken. The server waits up to a minute for a round to fill (`maxBatchWaitMs`), so a request
 * smaller than `maxBatchRequests` stays queued until the test sends more, aborts it, or closes the server:
 * every state is reached by what the test does, not by timing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import { Embedder } from '@kotune/xlm-roberta';
import { createServer, type KotuneServer } from '../src/index.ts';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url));
const KEY = 'test-key-3f9a';
const TEXTS = [
  '안녕하세요, 반갑습니다.',
  '서울은 대한민국의 수도입니다.',
  'The quick brown fox.',
  '배고프다',
  '좋은 꿈 꾸세요.',
  '저도 보고 싶어요.',
  '뭐라도 챙겨 드세요.',
];
let server: KotuneServer;
let url: string;
let embedder: Embedder;

function embed(inputs: string[], init: { key?: string | null; signal?: AbortSignal } = {}) {
  const key = init.key === undefined ? KEY : init.key;
  return fetch(`${url}/embed`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ inputs }),
    signal: init.signal,
  });
}

/** Polls `condition` every 10 ms, for at most 10 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting until ${what} (stats ${JSON.stringify(server.stats())})`);
}

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
  embedder = await Embedder.load(join(FIXTURE, 'embedder'), { log: null });
  server = await createServer({
    models: [join(FIXTURE, 'reranker'), join(FIXTURE, 'embedder')],
    port: 0,
    backend: 'wasm',
    quiet: true,
    apiKey: KEY,
    maxBatchWaitMs: 60_000,
    maxBatchRequests: 4,
    maxConcurrentRequests: 6,
  });
  url = await server.listen();
});
test.after(async () => {
  await server?.close();
  embedder?.dispose();
});

test('an API key: 401 in TEI shape without it or with a wrong one; /health stays open', async () => {
  for (const key of [null, 'wrong']) {
    const response = await embed(['a'], { key });
    assert.is(response.status, 401);
    assert.is(response.headers.get('www-authenticate'), 'Bearer');
    assert.equal(await response.json(), {
      error: 'missing or wrong API key: send the header `Authorization: Bearer <key>`',
      error_type: 'Unauthorized',
    });
  }
  assert.is((await fetch(`${url}/info`)).status, 401);
  assert.is((await fetch(`${url}/health`)).status, 200);
  assert.is(server.stats().queued, 0);
});

test('concurrent requests are gathered into one round, each answered with its own embeddings', async () => {
  const before = server.stats();
  const texts = TEXTS.slice(0, 4);
  const responses = await Promise.all(texts.map((text) => embed([text])));
  const after = server.stats();
  assert.is(after.rounds - before.rounds, 1, 'four single-text requests, one round');
  assert.is(after.roundInputs - before.roundInputs, 4);
  const expected = await embedder.encode(texts); // the same four texts in one batch, as the round ran them
  for (const [i, response] of responses.entries()) {
    assert.is(response.status, 200);
    assert.equal(await response.json(), [Array.from(expected[i]!)]);
  }
});

test('a full queue answers 503 with Retry-After at once; the queued request is still served', async () => {
  const held = embed(TEXTS.slice(0, 3)); // 3 inputs < maxBatchRequests 4: waits for company
  await until(() => server.stats().queued === 3, 'the 3 inputs are queued');
  const refused = await embed(TEXTS.slice(0, 4)); // 3 + 4 > maxConcurrentRequests 6
  assert.is(refused.status, 503);
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  assert.equal(await refused.json(), { error: 'Model is overloaded', error_type: 'Overloaded' });
  assert.is(server.stats().queued, 3, 'the refused request queued nothing');
  const joining = embed([TEXTS[4]!]); // 3 + 1: fits, and fills the round
  const [first, second] = await Promise.all([held, joining]);
  assert.is(first.status, 200);
  assert.is((await first.json()).length, 3);
  assert.is(second.status, 200);
});

test('a client that disconnects frees its queued work: nothing of it is computed', async () => {
  const before = server.stats();
  const controller = new AbortController();
  const abandoned = embed(TEXTS.slice(0, 3), { signal: controller.signal }).catch((error: Error) => error);
  await until(() => server.stats().queued === 3, 'the 3 inputs are queued');
  controller.abort();
  assert.instance(await abandoned, Error);
  await until(() => server.stats().queued === 0, 'the queue is empty');
  assert.is(server.stats().rounds, before.rounds, 'no round ran');
  // The queue takes requests as before.
  const full = await embed(TEXTS.slice(0, 4));
  assert.is(full.status, 200);
});

test('close() stops listening, finishes the requests it has taken, then resolves', async () => {
  const held = embed(TEXTS.slice(0, 2));
  await until(() => server.stats().queued === 2, 'the 2 inputs are queued');
  const closed = server.close();
  const response = await held; // the round no longer waits for company
  assert.is(response.status, 200);
  assert.equal(
    await response.json(),
    (await embedder.encode(TEXTS.slice(0, 2))).map((row) => Array.from(row)),
  );
  await closed;
  const error = await fetch(`${url}/health`).then(
    () => null,
    (e: Error & { cause?: { code?: string } }) => e,
  );
  assert.ok(error, 'the port no longer answers');
  assert.is(error!.cause?.code, 'ECONNREFUSED');
});

test.run();
