/**
 * `pnpm kotune …` typed in a sub-folder of the repository: pnpm runs the script in the repository root, and
 * the relative paths the user typed must still mean their folder (INIT_CWD). Runs the real pnpm.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pnpmCommand } from '../../../test/support/pnpm.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const fixture = join(root, 'test/fixtures/xlmr-tiny/reranker');

function pnpm(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  const [command, ...first] = pnpmCommand();
  return new Promise((resolve) => {
    execFile(command, [...first, ...args], { cwd }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err });
    });
  });
}

test('pnpm kotune score in a sub-folder reads and writes the paths typed there', async () => {
  // Inside the repository (pnpm finds the workspace from the folder), in an ignored folder.
  const folder = join(root, '.cache', `user-folder-${process.pid}`);
  mkdirSync(join(folder, 'runs'), { recursive: true });
  try {
    cpSync(fixture, join(folder, 'runs', 'rr'), { recursive: true });
    writeFileSync(
      join(folder, 'pairs.jsonl'),
      '{"query": "배고프다", "passage": "뭐라도 챙겨 드세요."}\n{"query": "배고프다", "passage": "좋은 꿈 꾸세요."}\n',
    );
    const { code, err } = await pnpm(
      ['kotune', 'score', '--model', 'runs/rr', '--input', 'pairs.jsonl', '--output', 'scores.jsonl'],
      folder,
    );
    assert.is(code, 0, err);
    const lines = readFileSync(join(folder, 'scores.jsonl'), 'utf8').trim().split('\n');
    assert.is(lines.length, 2);
    for (const line of lines) assert.type(JSON.parse(line).score, 'number');
    assert.not.ok(existsSync(join(root, 'scores.jsonl')), 'nothing written in the repository root');
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test.run();
