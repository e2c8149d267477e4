import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend, tf } from '@kotune/engine';
import { learningRateSchedule } from '@kotune/optim';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { isEvalLine, loadTrainConfig, PLOT_FILES, readMetricsLog, train, type TrainLogLine } from '../src/index.ts';
import { quiet, tinyConfig, toyDataDir, toyLines, writeConfig } from './support/tiny-run.ts';

await initBackend({ backend: 'wasm', log: null });
const TRAIN_KEYS = ['epoch', 'grad_norm', 'learning_rate', 'loss', 'samples_per_second', 'step'];

/** metrics.jsonl follows docs/run-folder.md: train lines with exactly its six keys, eval lines {step, eval}. */
function checkMetricsLog(dir: string, totalSteps: number, rate: (step: number) => number): TrainLogLine[] {
  const lines = readMetricsLog(join(dir, 'metrics.jsonl'));
  const trainLines = lines.filter((l) => !isEvalLine(l)) as TrainLogLine[];
  assert.equal(
    trainLines.map((l) => l.step),
    Array.from({ length: totalSteps }, (_, i) => i + 1),
    'one line per step (logging_steps 1), from 1',
  );
  for (const line of trainLines) {
    assert.equal(Object.keys(line).sort(), TRAIN_KEYS);
    for (const key of TRAIN_KEYS) assert.ok(Number.isFinite((line as unknown as Record<string, number>)[key]), `${key} is a finite number`);
    assert.is(line.learning_rate, rate(line.step - 1), `step ${line.step} logs the rate it used`);
  }
  const evals = lines.filter(isEvalLine);
  assert.ok(evals.length > 0);
  for (const line of evals) {
    assert.equal(Object.keys(line).sort(), ['eval', 'step']);
    for (const key of ['mrr@10', 'ndcg@10', 'accuracy@1']) assert.ok(line.eval[key]! >= 0 && line.eval[key]! <= 1, key);
  }
  return trainLines;
}

test('a tiny reranker trains, its export reloads with the same scores, metrics.jsonl and plots are written', async () => {
  const dir = toyDataDir('train-rr');
  const config = loadTrainConfig(
    writeConfig(
      dir,
      'rr.json',
      tinyConfig('reranker', {
        eval_data: 'eval.jsonl',
        eval_steps: 3,
        warmup_steps: 2,
        gradient_accumulation_steps: 2,
        dropout: 0.1,
      }),
    ),
  );
  const result = await train(config, { ...quiet, keepModel: true });
  assert.is(result.globalStep, 6);
  assert.is(result.outputDir, join(dir, 'out'), 'the run folder, where the final model is exported');
  assert.ok(result.lastEval && result.lastEval['mrr@10'] !== undefined);
  const trained = result.model!;
  assert.is(trained.kind, 'reranker');
  const lines = checkMetricsLog(result.outputDir, 6, learningRateSchedule('linear', 1e-3, { warmupSteps: 2, totalSteps: 6 }));
  assert.is(lines[0]!.learning_rate, 0, 'warmup: the first step runs at rate 0');
  assert.ok(lines.every((l) => l.epoch > 0 && l.epoch <= (6 * 2 * 4) / 24));
  for (const file of Object.values(PLOT_FILES)) assert.ok(existsSync(join(result.outputDir, file)), file);
  assert.ok(existsSync(join(result.outputDir, 'checkpoint-6', 'trainer_state.json')));

  const pairs = toyLines(3)
    .map((l) => JSON.parse(l) as { query: string; pos: string[]; neg: string[] })
    .flatMap(
      (e) =>
        [
          [e.query, e.pos[0]!],
          [e.query, e.neg[0]!],
        ] as [string, string][],
    );
  const reloaded = await Reranker.load(result.outputDir, { log: null });
  const inMemory = trained.kind === 'reranker' ? await trained.score(pairs) : [];
  // Same float32 weights, same code: equal to the bit (tolerance 0).
  assert.equal(await reloaded.score(pairs), inMemory);
  const base = await Reranker.load(tinyConfig('reranker').model_name_or_path as string, { log: null });
  assert.not.equal(await base.score(pairs), inMemory, 'training changed the scores');
  for (const model of [reloaded, base]) model.dispose();
  trained.dispose();
});

test('a tiny embedder trains with GradCache (mini_batch_size 2) and reloads with the same embeddings', async () => {
  const dir = toyDataDir('train-em');
  const config = loadTrainConfig(
    writeConfig(
      dir,
      'em.json',
      tinyConfig('embedder', {
        eval_data: 'eval.jsonl',
        eval_steps: 3,
        mini_batch_size: 2,
        loss: 'mnrl_symmetric',
        dropout: 0.1,
        lr_scheduler_type: 'cosine',
        query_instruction_for_retrieval: 'query: ',
        passage_instruction_for_retrieval: 'passage',
        passage_instruction_format: '<{}> {}',
      }),
    ),
  );
  const result = await train(config, { ...quiet, keepModel: true });
  checkMetricsLog(result.outputDir, 6, learningRateSchedule('cosine', 1e-3, { warmupSteps: 0, totalSteps: 6 }));
  assert.ok(readdirSync(result.outputDir).includes('1_Pooling'), 'a sentence-transformers folder');
  const trained = result.model!;
  const texts = ['질문 1: 날씨 어때', '답 1: 오늘은 맑아요', '전혀 다른 문장'];
  const reloaded = await Embedder.load(result.outputDir, { log: null });
  assert.equal(
    reloaded.prompts,
    { query: 'query: ', document: '<passage> ' },
    'the instructions are saved as sentence-transformers prompts',
  );
  const inMemory = trained.kind === 'embedder' ? await trained.encode(texts, { maxLength: 24 }) : [];
  // Tolerance 0: the export holds the very float32 weights.
  assert.equal(await reloaded.encode(texts, { maxLength: 24 }), inMemory);
  reloaded.dispose();
  trained.dispose();
});

test('infonce with knowledge distillation and bce train and keep tf.memory() flat across steps, evals and saves', async () => {
  const dir = toyDataDir('train-mem', 16);
  const runs = [
    tinyConfig('embedder', {
      loss: 'infonce',
      knowledge_distillation: true,
      temperature: 0.05,
      max_steps: 12,
      eval_data: 'eval.jsonl',
      eval_steps: 4,
      save_steps: 4,
      output_dir: 'em',
    }),
    tinyConfig('reranker', {
      loss: 'bce',
      max_steps: 12,
      eval_data: 'eval.jsonl',
      eval_steps: 4,
      save_steps: 4,
      gradient_accumulation_steps: 3,
      output_dir: 'rr',
    }),
  ];
  for (const [i, raw] of runs.entries()) {
    const before = tf.memory();
    const seen: { numTensors: number; numBytes: number }[] = [];
    const result = await train(loadTrainConfig(writeConfig(dir, `mem${i}.json`, raw)), {
      ...quiet,
      onStep: () => seen.push({ numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes }),
    });
    assert.is(result.globalStep, 12);
    // After step 1 (which creates AdamW's moments) nothing grows: not over steps, evaluations nor checkpoints.
    assert.equal(
      seen.slice(1),
      seen.slice(1).map(() => seen[1]),
      `${raw.task}: tensors and bytes flat from step 2 on`,
    );
    assert.equal(
      { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes },
      { numTensors: before.numTensors, numBytes: before.numBytes },
      'everything released at the end',
    );
  }
});

test.run();
