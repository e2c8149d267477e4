import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from '@kotune/data';
import { initBackend } from '@kotune/engine';
import { loadTrainConfig, planTraining, train } from '../src/index.ts';
import { tinyConfig, toyDataDir, toyLines, writeConfig } from './support/tiny-run.ts';

/** Each kind of bad line, the message after `path:line: `, as the trainer reports it. */
const BAD_LINES: [string, string, RegExp][] = [
  ['malformed JSON', '{"query": "q", "pos": ["a"]', /invalid JSON|JSON/],
  ['missing query', '{"pos": ["a"], "neg": ["b"]}', /missing "query"/],
  ['empty query', '{"query": "  ", "pos": ["a"], "neg": ["b"]}', /query is empty/],
  ['empty pos', '{"query": "q", "pos": [], "neg": ["b"]}', /pos is empty/],
  ['non-string item', '{"query": "q", "pos": ["a"], "neg": ["b", 7]}', /neg\[1\] is a number, expected a string/],
  [
    'wrong-length score list',
    '{"query": "q", "pos": ["a"], "neg": ["b", "c"], "pos_scores": [1], "neg_scores": [0.5]}',
    /neg_scores has 1 items but neg has 2/,
  ],
];

/** train.jsonl: 8 good lines, a blank line (line 5, counted), then `bad` on line 7 of the file. */
function fileWith(dir: string, bad: string[]): string {
  const good = toyLines(8);
  const rows = [...good.slice(0, 4), '', good[4]!, ...bad, ...good.slice(5)];
  const path = join(dir, 'train.jsonl');
  writeFileSync(path, `${rows.join('\n')}\n`);
  return path;
}

for (const [what, line, message] of BAD_LINES) {
  test(`${what}: the run stops with "path:7: ..."`, async () => {
    const dir = toyDataDir('bad');
    const path = fileWith(dir, [line]);
    const config = loadTrainConfig(writeConfig(dir, 'run.json', tinyConfig('reranker')));
    const error = await planTraining(config).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(error, DataError);
    assert.ok((error as Error).message.startsWith(`${path}:7: `), (error as Error).message);
    assert.match((error as Error).message, message);
  });
}

test('skip_bad_lines counts every bad line by reason, and training runs on the good ones', async () => {
  await initBackend({ backend: 'wasm', log: null });
  const dir = toyDataDir('skip');
  fileWith(
    dir,
    BAD_LINES.map(([, line]) => line),
  );
  const config = loadTrainConfig(writeConfig(dir, 'run.json', tinyConfig('reranker', { skip_bad_lines: true, max_steps: 2 })));
  const plan = await planTraining(config);
  assert.is(plan.trainLines, 8);
  assert.is(plan.badTrainLines.count, BAD_LINES.length);
  assert.match(plan.badTrainLines.summary(), `skipped ${BAD_LINES.length} bad lines`);
  const printed: string[] = [];
  const result = await train(config, {
    print: (l) => printed.push(l),
    progressStream: { write: () => true } as unknown as NodeJS.WritableStream,
  });
  assert.is(result.globalStep, 2);
  assert.match(printed.join('\n'), `8 lines in ${join(dir, 'train.jsonl')} (skipped 6 bad lines`);
});

test.run();
