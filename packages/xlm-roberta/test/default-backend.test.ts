/**
 * A program that never calls `initBackend` still runs fast: `Reranker.load` and `Embedder.load` initialise the
 * default backend (wasm, with the native kernels where the addon is built) instead of leaving TensorFlow.js on
 * its pure-JS cpu backend, whose banner asks for tfjs-node and which is ~50x slower. Each case runs in a fresh
 * process, where no backend has been chosen yet.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = (pkg: string) => fileURLToPath(new URL(`../../${pkg}/src/index.ts`, import.meta.url));
const fixtures = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny', import.meta.url));
const TFJS_BANNER = /looks like you are running TensorFlow\.js in Node\.js/;

/** Runs `body` (with `Reranker`, `Embedder`, `tf` and `fixtures` in scope) in a fresh Node process. */
async function fresh(body: string): Promise<{ out: string; err: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-default-backend-'));
  const script = join(dir, 'main.mts'); // an ES module wherever the folder is
  writeFileSync(
    script,
    [
      `import { Reranker, Embedder } from ${JSON.stringify(src('xlm-roberta'))};`,
      `import { tf } from ${JSON.stringify(src('engine'))};`,
      `const fixtures = ${JSON.stringify(fixtures)};`,
      body,
    ].join('\n'),
  );
  try {
    return await new Promise((resolve, reject) => {
      const { KOTUNE_BACKEND, ...env } = process.env; // the default, whatever the test run was given
      execFile(process.execPath, ['--import', 'tsx', script], { env }, (error, out, err) => {
        if (error) reject(new Error(`${error.message}\n${err}`));
        else resolve({ out, err });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertFast({ out, err }: { out: string; err: string }): void {
  assert.not.match(err, TFJS_BANNER);
  const backendLines = err.split('\n').filter((line) => line.startsWith('backend: '));
  assert.equal(backendLines.length, 1, err);
  assert.match(backendLines[0]!, /^backend: wasm \(/);
  assert.match(out, /^kotune-wasm\n/); // kotune's wasm backend (@kotune/engine's wasm-kernels.ts)
}

test('Reranker.load initialises the default backend when the caller has not; two loads at once initialise it once', async () => {
  const result = await fresh(`
    const [reranker] = await Promise.all([Reranker.load(fixtures + '/reranker'), Reranker.load(fixtures + '/reranker')]);
    const [score] = await reranker.score([['배고프다', '뭐라도 챙겨 드세요.']], { normalize: true });
    console.log(tf.getBackend());
    console.log(score);`);
  assertFast(result);
  const score = Number(result.out.split('\n')[1]);
  assert.ok(score > 0 && score < 1, result.out);
});

test('Embedder.load likewise', async () => {
  const result = await fresh(`
    const embedder = await Embedder.load(fixtures + '/embedder');
    const [vector] = await embedder.encode(['배고파']);
    console.log(tf.getBackend());
    console.log(vector.length);`);
  assertFast(result);
  assert.is(result.out.split('\n')[1], '32');
});

test('a backend the caller chose is kept, and its choice printed once by the caller only', async () => {
  const result = await fresh(`
    const { initBackend } = await import(${JSON.stringify(src('engine'))});
    await initBackend({ backend: 'cpu', log: null });
    await Reranker.load(fixtures + '/reranker');
    console.log(tf.getBackend());`);
  assert.is(result.out, 'kotune-cpu\n'); // kotune's cpu backend (@kotune/engine's cpu-backend.ts)
  assert.not.match(result.err, /^backend: /m);
});

test.run();
