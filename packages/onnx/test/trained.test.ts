/**
 * Models kotune trained (a few steps from the fixture checkpoints, as the trainer's tests train them), exported
 * and run in onnxruntime-node and transformers.js: the same outputs as the trained model in kotune, on a padded
 * batch with a sequence of every position. Tolerance (fixture README, float32): max|a − b| ≤ 1e-5 · max|b|.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { AutoModel, AutoModelForSequenceClassification, env, Tensor } from '@huggingface/transformers';
import { initBackend } from '@kotune/engine';
import { loadTrainConfig, train } from '@kotune/trainer';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import * as ort from 'onnxruntime-node';
import { quiet, tinyConfig, toyDataDir, writeConfig } from '../../trainer/test/support/tiny-run.ts';
import { exportOnnx } from '../src/index.ts';
import {
  kotuneOutput,
  maxRelativeError,
  ortOutput,
  padBatch,
  randomSequence,
  report,
  RERANKER_DIR,
  EMBEDDER_DIR,
  type Batch,
} from './support.ts';

await initBackend({ backend: 'wasm', log: null });
env.allowRemoteModels = false;
const TOLERANCE = 1e-5;
const batch = padBatch([64, 9, 30].map((length, i) => randomSequence(length, 32002, 5 + i)));

/** Trains `task` for 6 steps and returns the run folder, where the trainer exported the final model. */
async function trained(task: 'reranker' | 'embedder'): Promise<string> {
  const dir = toyDataDir(`onnx-${task}`);
  const config = loadTrainConfig(writeConfig(dir, 'run.json', tinyConfig(task, { learning_rate: 5e-3 })));
  return (await train(config, quiet)).outputDir;
}

async function transformersJsOutput(dir: string, task: 'reranker' | 'embedder', { inputIds, attentionMask }: Batch): Promise<Float32Array> {
  const dims = [inputIds.length, inputIds[0]!.length];
  const int64 = (rows: number[][]) => new Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), dims);
  const inputs = { input_ids: int64(inputIds), attention_mask: int64(attentionMask) };
  const model = await (task === 'reranker' ? AutoModelForSequenceClassification : AutoModel).from_pretrained(dir, {
    dtype: 'fp32',
    local_files_only: true,
  });
  const output = await model(inputs);
  await model.dispose();
  return (task === 'reranker' ? output.logits : output.last_hidden_state).data as Float32Array;
}

for (const task of ['reranker', 'embedder'] as const) {
  test(`a trained ${task}: onnxruntime-node and transformers.js give kotune's outputs`, async () => {
    const dir = await trained(task);
    const model = task === 'reranker' ? await Reranker.load(dir, { log: null }) : await Embedder.load(dir, { log: null });
    const base = task === 'reranker' ? await Reranker.load(RERANKER_DIR, { log: null }) : await Embedder.load(EMBEDDER_DIR, { log: null });
    const expected = kotuneOutput(model, batch);
    assert.ok(maxRelativeError(kotuneOutput(base, batch), expected) > 1e-3, "training moved the outputs away from the fixture's");
    await exportOnnx(dir, { log: null });
    const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), { logSeverityLevel: 3 });
    assert.ok(report(`trained ${task}, ORT vs kotune`, maxRelativeError((await ortOutput(session, batch)).data, expected)) <= TOLERANCE);
    await session.release();
    assert.ok(
      report(`trained ${task}, transformers.js vs kotune`, maxRelativeError(await transformersJsOutput(dir, task, batch), expected)) <=
        TOLERANCE,
    );
    model.dispose();
    base.dispose();
  });
}

test.run();
