import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KOTUNE_CPU } from '../src/cpu-backend.ts';
import {
  encoderParameterCount,
  ensureBackend,
  fitsWasm,
  formatEstimate,
  inferenceMemory,
  initBackend,
  tf,
  trainingMemory,
  type EncoderShape,
} from '../src/index.ts';
import { tfjsInternalsProblems } from '../src/tfjs-internals.ts';

/** test/fixtures/xlmr-tiny: 2 layers of 32. */
const TINY: EncoderShape = {
  vocabSize: 1000,
  hiddenSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 4,
  intermediateSize: 64,
  maxPositionEmbeddings: 514,
  typeVocabSize: 1,
};
/** e5-small-like (the bench's model): 12 × 384 with the ko-en-32k vocabulary. */
const E5_SMALL: EncoderShape = {
  vocabSize: 32002,
  hiddenSize: 384,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  intermediateSize: 1536,
  maxPositionEmbeddings: 514,
  typeVocabSize: 1,
};
const XLMR_BASE: EncoderShape = {
  vocabSize: 250002,
  hiddenSize: 768,
  numHiddenLayers: 12,
  numAttentionHeads: 12,
  intermediateSize: 3072,
  maxPositionEmbeddings: 514,
  typeVocabSize: 1,
};
const XLMR_LARGE: EncoderShape = { ...XLMR_BASE, hiddenSize: 1024, numHiddenLayers: 24, numAttentionHeads: 16, intermediateSize: 4096 };

const quiet = { log: null } as const;

test("parameter counts are those of transformers' XLMRobertaModel (with pooler)", () => {
  assert.is(encoderParameterCount(XLMR_BASE), 278_043_648);
  assert.is(encoderParameterCount(XLMR_LARGE), 559_890_432);
});

test('training: tiny and e5-small fit wasm; XLM-R base (16 bytes a parameter = 4.45 GB before activations) and large do not', () => {
  const step = { forward: { sequences: 16, length: 128 } };
  assert.ok(fitsWasm(trainingMemory(TINY, step)));
  assert.ok(fitsWasm(trainingMemory(E5_SMALL, { forward: { sequences: 4, length: 256 } })));
  const base = trainingMemory(XLMR_BASE, { forward: { sequences: 1, length: 32 } });
  assert.ok(base.parts.weights! + base.parts.gradients! + base.parts['AdamW moments']! > 4.4e9);
  assert.not.ok(fitsWasm(base));
  assert.not.ok(fitsWasm(trainingMemory(XLMR_LARGE, step)));
  assert.match(
    formatEstimate(trainingMemory(XLMR_LARGE, step)),
    /^training a 560M-parameter encoder \(24 × 1024\) on 16 × 128 tokens needs about \d+\.\d GB \(weights 2\.2 GB \+ gradients 2\.2 GB \+ AdamW moments 4\.5 GB \+ activations \d+\.\d GB\)$/,
  );
});

test('activations grow with the batch; gradient checkpointing keeps less of them', () => {
  const small = trainingMemory(E5_SMALL, { forward: { sequences: 4, length: 256 } });
  const big = trainingMemory(E5_SMALL, { forward: { sequences: 64, length: 256 } });
  const checkpointed = trainingMemory(E5_SMALL, { forward: { sequences: 64, length: 256 }, gradientCheckpointing: true });
  assert.ok(fitsWasm(small) && !fitsWasm(big) && fitsWasm(checkpointed));
});

test('inference: base fits wasm; large with a batch of 32 × 512 does not, with one short input it does', () => {
  assert.ok(fitsWasm(inferenceMemory(E5_SMALL, { sequences: 32, length: 512 })));
  assert.ok(fitsWasm(inferenceMemory(XLMR_BASE, { sequences: 32, length: 512 })));
  assert.not.ok(fitsWasm(inferenceMemory(XLMR_LARGE, { sequences: 32, length: 512 })));
  assert.ok(fitsWasm(inferenceMemory(XLMR_LARGE, { sequences: 1, length: 64 })));
});

test('by default a run wasm cannot hold goes to cpu with one line saying why; one that fits stays on wasm', async () => {
  const small = await initBackend({ ...quiet, memory: trainingMemory(TINY, { forward: { sequences: 16, length: 128 } }) });
  assert.is(small.name, 'wasm');
  const lines: string[] = [];
  const info = await initBackend({
    log: (l) => lines.push(l),
    memory: trainingMemory(XLMR_BASE, { forward: { sequences: 4, length: 128 } }),
  });
  assert.is(info.name, 'cpu');
  assert.is(tf.getBackend(), KOTUNE_CPU);
  assert.match(
    lines[0]!,
    /^backend: wasm skipped: training a 278M-parameter encoder .* needs about \d+\.\d GB \(.*\), more than wasm's 4 GB \(2³² bytes\) can hold; using the next one$/,
  );
  assert.match(lines[1]!, /^backend: cpu \(pure JavaScript\)/);
});

test('ensureBackend moves a default wasm to cpu for a model it cannot hold, and keeps it for one it can', async () => {
  // A different `native` choice makes initBackend choose again, by default: wasm.
  assert.is((await initBackend({ ...quiet, native: 'auto' })).name, 'wasm');
  assert.is((await ensureBackend(null, inferenceMemory(TINY, { sequences: 32, length: 512 }))).name, 'wasm');
  const lines: string[] = [];
  assert.is((await ensureBackend((l) => lines.push(l), inferenceMemory(XLMR_LARGE, { sequences: 32, length: 512 }))).name, 'cpu');
  assert.match(lines[0]!, /^backend: wasm skipped: running a 560M-parameter encoder/);
});

test('an explicit backend is respected: cpu stays cpu for a tiny run; wasm for a run it cannot hold is a clear error', async () => {
  const cpu = await initBackend({ backend: 'cpu', ...quiet, memory: trainingMemory(TINY, { forward: { sequences: 16, length: 128 } }) });
  assert.is(cpu.name, 'cpu');
  try {
    await initBackend({ backend: 'wasm', ...quiet, memory: trainingMemory(XLMR_LARGE, { forward: { sequences: 8, length: 128 } }) });
    assert.unreachable('wasm cannot hold XLM-R large training');
  } catch (err) {
    assert.match(
      String(err),
      /backend wasm was requested but cannot run this: training a 560M-parameter encoder .* more than wasm's 4 GB \(2³² bytes\) can hold; use --backend cpu/,
    );
  }
  // A wasm asked for by name is not moved by ensureBackend either: the user hears why it cannot run.
  await initBackend({ backend: 'wasm', ...quiet });
  try {
    await ensureBackend(null, inferenceMemory(XLMR_LARGE, { sequences: 32, length: 512 }));
    assert.unreachable('a forced wasm is not replaced');
  } catch (err) {
    assert.match(String(err), /backend wasm was requested but cannot run this/);
  }
});

test('the tfjs internals kotune relies on are there, and a missing one stops the backend with a sentence naming it', async () => {
  await initBackend({ backend: 'wasm', ...quiet });
  assert.equal(tfjsInternalsProblems('wasm'), []);
  assert.equal(tfjsInternalsProblems('cpu'), []);
  await initBackend({ backend: 'cpu', ...quiet });
  const wasm = tf.findBackend('wasm') as unknown as Record<string, unknown>;
  const original = wasm.typedArrayFromHeap;
  wasm.typedArrayFromHeap = undefined;
  try {
    await initBackend({ backend: 'wasm', ...quiet });
    assert.unreachable('a tfjs without typedArrayFromHeap must not start');
  } catch (err) {
    assert.match(
      String(err),
      /kotune relies on TensorFlow\.js 4\.22 internals that @tensorflow\/tfjs-core 4\.22\.0 lacks: the wasm backend's typedArrayFromHeap\(\)\. Install the versions kotune depends on/,
    );
  } finally {
    wasm.typedArrayFromHeap = original;
  }
  assert.is((await initBackend({ backend: 'wasm', ...quiet })).name, 'wasm');
});

test.run();
