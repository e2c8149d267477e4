/** `planTraining`: line, batch and step counts of a small run, and the eval file read as the evaluations read it. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTrainConfig, planTraining } from '../src/index.ts';
import { writeDryRunFixture } from './dry-run-fixture.ts';

const { dir, lines } = writeDryRunFixture('kotune-dry-');

test('the plan: 23 lines / batch 2 = 12 batches, accumulation 3 -> 4 steps an epoch, 8 in all, warmup ceil(0.8) = 1', async () => {
  const plan = await planTraining(loadTrainConfig(join(dir, 'run.json')));
  assert.equal(
    {
      lines: plan.trainLines,
      batches: plan.batchesPerEpoch,
      perEpoch: plan.stepsPerEpoch,
      total: plan.totalSteps,
      warmup: plan.warmupSteps,
      effective: plan.effectiveBatch,
      evalQueries: plan.evalQueries,
    },
    { lines: 23, batches: 12, perEpoch: 4, total: 8, warmup: 1, effective: 6, evalQueries: 5 },
  );
  const capped = await planTraining(loadTrainConfig(join(dir, 'run.json'), { overrides: { max_steps: 3 } }));
  assert.is(capped.totalSteps, 3);
  assert.is(capped.epochs, 0.75);
});

test('a reranker eval file of `candidates` lines (which kotune eval and the evaluations read) is counted, not refused', async () => {
  const candidates = join(dir, 'eval-candidates.jsonl');
  writeFileSync(
    candidates,
    lines
      .slice(0, 3)
      .map((line) => {
        const { query, pos, neg } = JSON.parse(line) as { query: string; pos: string[]; neg: string[] };
        return JSON.stringify({ query, candidates: [{ text: pos[0], relevance: 1 }, ...neg.map((text) => ({ text, relevance: 0 }))] });
      })
      .join('\n'),
  );
  const plan = await planTraining(loadTrainConfig(join(dir, 'run.json'), { overrides: { eval_data: candidates } }));
  assert.is(plan.evalQueries, 3);
});

test.run();
