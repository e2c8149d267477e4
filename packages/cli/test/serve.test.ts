/**
 * `kotune serve` as users run it (a child process on 127.0.0.1, a free port): its answers equal `kotune score
 * --normalize` and `kotune encode` on the same inputs (the commands run in-process on JSONL files), and SIGTERM
 * lets a queued request finish before the process exits 0. The server holds a round until 8 inputs are queued
 * (`--max-batch-requests 8`, a minute's wait), so the comparison requests send 8 inputs and the SIGTERM test can
 * leave 3 queued for certain.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import { run as score } from '../src/commands/score.ts';
import { run as encode } from '../src/commands/encode.ts';
import { run as serve } from '../src/commands/serve.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const FIXTURE = join(root, 'test/fixtures/xlmr-tiny');
const cases = JSON.parse(readFileSync(join(FIXTURE, 'cases.json'), 'utf8'));
const PAIRS: [string, string][] = cases.tokenization.cases.find((c: { name: string }) => c.name === 'pairs_no_truncation').inputs;
const QUERY = PAIRS[0]![0];
const PASSAGES = PAIRS.map(([, passage]) => passage); // 8, two of them longer than the model's 64 tokens with QUERY
const TEXTS: string[] = cases.tokenization.cases
  .find((c: { name: string }) => c.name === 'singles_no_truncation')
  .inputs.map((text: string) => text || 'a'); // 8 texts, one of 132 tokens (TEI refuses an empty one)

const work = mkdtempSync(join(tmpdir(), 'kotune-serve-cli-'));
const E5 = join(work, 'e5');
let child: ChildProcess;
let url: string;
let stderr = '';
let exited: Promise<number | null>;

async function post(path: string, body: unknown): Promise<any> {
  const response = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.is(response.status, 200, `${path}: ${response.status}`);
  return response.json();
}
const readLines = (path: string) =>
  readFileSync(path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line));
const jsonl = (name: string, rows: unknown[]) => {
  const path = join(work, name);
  writeFileSync(path, rows.map((row) => JSON.stringify(row)).join('\n'));
  return path;
};

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
  cpSync(join(FIXTURE, 'embedder'), E5, { recursive: true });
  const stConfig = JSON.parse(readFileSync(join(E5, 'config_sentence_transformers.json'), 'utf8'));
  writeFileSync(
    join(E5, 'config_sentence_transformers.json'),
    JSON.stringify({ ...stConfig, prompts: { query: 'query: ', passage: 'passage: ' } }),
  );
  child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      main,
      'serve',
      '--model',
      join(FIXTURE, 'reranker'),
      '--model',
      `e5-tiny=${E5}`,
      '--port',
      '0',
      '--backend',
      'wasm',
      '--max-batch-requests',
      '8',
      '--max-batch-wait-ms',
      '60000',
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  child.stderr!.on('data', (data) => (stderr += data));
  url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    child.stdout!.on('data', (data) => {
      stdout += data;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+);/.exec(stdout);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`kotune serve exited ${code} before listening:\n${stderr}`)));
  });
});
test.after(() => {
  if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

test('kotune serve answers what kotune score --normalize gives for the same pairs', async () => {
  const output = join(work, 'scores.jsonl');
  await score([
    '--model',
    join(FIXTURE, 'reranker'),
    '--input',
    jsonl(
      'pairs.jsonl',
      PASSAGES.map((passage) => ({ query: QUERY, passage })),
    ),
    '--normalize',
    '--output',
    output,
  ]);
  const expected = readLines(output).map((line) => line.score as number);
  const tei = await post('/rerank', { query: QUERY, texts: PASSAGES, truncate: true });
  assert.equal(
    tei.map((r: { index: number; score: number }) => [r.index, r.score]).sort((a: number[], b: number[]) => a[0]! - b[0]!),
    expected.map((s, i) => [i, s]),
  );
  const cohere = await post('/v1/rerank', { query: QUERY, documents: PASSAGES });
  assert.equal(
    cohere.results.map((r: { index: number }) => expected[r.index]),
    cohere.results.map((r: { relevance_score: number }) => r.relevance_score),
  );
});

test('kotune serve answers what kotune encode gives, with the folder prompt as --prefix', async () => {
  const input = jsonl(
    'texts.jsonl',
    TEXTS.map((text) => ({ text })),
  );
  const output = join(work, 'embeddings.jsonl');
  await encode(['--model', E5, '--input', input, '--prefix', 'query: ', '--output', output]);
  const withPrefix = readLines(output).map((line) => Float32Array.from(line.embedding));
  const tei = await post('/embed', { inputs: TEXTS, prompt_name: 'query', truncate: true });
  assert.equal(
    tei.map((row: number[]) => Float32Array.from(row)),
    withPrefix,
  );
  await encode(['--model', E5, '--input', input, '--output', output]);
  const plain = readLines(output).map((line) => Float32Array.from(line.embedding));
  // TEI's OpenAI route truncates only with --auto-truncate: the 132-token text is left out here.
  const openAi = await post('/v1/embeddings', {
    input: TEXTS.filter((_, i) => i !== 6).concat(TEXTS[0]!),
    model: 'text-embedding-3-small',
  });
  assert.equal(
    openAi.data.map((d: { embedding: number[] }) => Float32Array.from(d.embedding)),
    [...plain.filter((_, i) => i !== 6), plain[0]],
  );
});

test('SIGTERM: the queued request is answered, then the process exits 0 and the port is closed', async () => {
  const held = fetch(`${url}/rerank`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: QUERY, texts: PASSAGES.slice(0, 3) }),
  });
  for (let i = 0; i < 1000; i++) {
    const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
    if (/^te_queue_size 3$/m.test(metrics)) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  child.kill('SIGTERM');
  const response = await held;
  assert.is(response.status, 200);
  assert.is((await response.json()).length, 3);
  assert.is(await exited, 0, stderr);
  assert.match(stderr, 'SIGTERM: finishing the requests in flight, then exiting');
  const refused = await fetch(`${url}/health`).then(
    () => null,
    (e: Error & { cause?: { code?: string } }) => e.cause?.code,
  );
  assert.is(refused, 'ECONNREFUSED');
});

test('bad flags stop before any model loads, with exit-code-2 errors', async () => {
  for (const [argv, message] of [
    [[], '--model is required'],
    [['--model', 'x', '--port', 'http'], '--port must be an integer'],
  ] as const) {
    try {
      await serve([...argv]);
      assert.unreachable('expected an error');
    } catch (error) {
      assert.is((error as Error).constructor.name, 'CliError');
      assert.match((error as Error).message, message);
    }
  }
});

test.run();
