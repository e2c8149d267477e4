/**
 * The README's TypeScript example runs exactly as printed, in the repository (`kotune` resolves to the
 * workspace's package and its sources), offline, on the fixture models put in a Hugging Face cache under the repo
 * ids it names (test/support/readme-example.ts). It must run fast by default: one `backend: wasm` line, never
 * TensorFlow.js's pure-JS banner. test/install/pack-install.ts runs the same code from the tarballs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareReadmeExample, readmeTypeScript } from './support/readme-example.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the README has its TypeScript example, importing from kotune', () => {
  const blocks = readmeTypeScript();
  assert.is(blocks.length, 1);
  assert.match(blocks[0]!, /from 'kotune';/);
});

test('the README example runs as printed: scores, a cosine similarity, a fine-tuned model, on wasm', async () => {
  const [code] = readmeTypeScript();
  // Inside the repository, where `kotune` resolves (node_modules), in an ignored folder.
  const dir = join(root, '.cache', `readme-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    const env = prepareReadmeExample(dir, code!);
    writeFileSync(join(dir, 'example.mts'), code!);
    const { KOTUNE_BACKEND, KOTUNE_NATIVE, ...inherited } = process.env; // the defaults a user gets
    const { out, err } = await new Promise<{ out: string; err: string }>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', 'example.mts'], { cwd: dir, env: { ...inherited, ...env } }, (error, out, err) => {
        if (error) reject(new Error(`${error.message}\n${err}`));
        else resolve({ out, err });
      });
    });
    // console.log(scores, cosineSimilarity(q, p)): `[ 0.6… ] 0.4…`
    assert.match(out, /^\[ 0\.\d+ \] -?[01]\.\d+\n/);
    assert.ok(existsSync(join(dir, 'runs/my-run/model.safetensors')), 'the fine-tuned model is exported');
    assert.match(err, /^done: 100 steps; model saved to .*runs\/my-run$/m);
    assert.not.match(err, /looks like you are running TensorFlow\.js in Node\.js/);
    const backendLines = err.split('\n').filter((line) => line.startsWith('backend: '));
    assert.is(backendLines.length, 1, err);
    assert.match(backendLines[0]!, /^backend: wasm \(/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
