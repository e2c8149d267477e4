/**
 * The native encoder layer (@kotune/engine's `nativeEncoderLayer`, @kotune/native's src/encoder.cc), which runs
 * every layer at inference, against the op-by-op model it stands in for: the same weights and inputs with the
 * native kernels off (every op on the backend), on wasm and cpu, for both built-in product tiles. The batch is
 * padded (three lengths, and a sequence with masked keys in its middle); on wasm its longest sequence has 600
 * tokens, so the attention takes its online-softmax path (keys in blocks of 512) as well as the one-block path
 * (the cpu backend's own ops would take 14 s a forward at that length: there, 100 tokens, the one-block path).
 * Tolerance: the fixtures' 1e-5 · max|b| for layer outputs (README), over every position, pads included.
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, nativeAdamW, nativeEncoderLayer, tf } from '@kotune/engine';
import { encoderMissing } from '../../native/test/support.ts';
import { Embedder, Reranker } from '../src/index.ts';
import { FIXTURE, maxRelativeError, report } from './fixture.ts';

if (encoderMissing !== undefined) console.log(`skip: the native encoder layer tests (${encoderMissing})`);
const test = encoderMissing === undefined ? uvuTest : uvuTest.skip;

const TOLERANCE = 1e-5;
const CONFIG = {
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  max_position_embeddings: 700,
  // Larger than transformers' 0.02, so that attention is far from uniform and a wrong mask or block shows.
  initializer_range: 0.15,
};

/** Token ids (pads after each length) and the attention mask, with ten keys in the middle of the second sequence masked too. */
function inputs(lengths: readonly number[]): { ids: number[][]; mask: number[][] } {
  const seq = lengths[0]!;
  const hole = (i: number) => i >= lengths[1]! / 2 && i < lengths[1]! / 2 + 10;
  const ids = lengths.map((n, b) => Array.from({ length: seq }, (_, i) => (i < n ? 5 + ((i * 7919 + b * 104729) % 31000) : 1)));
  const mask = lengths.map((n, b) => Array.from({ length: seq }, (_, i) => Number(i < n && !(b === 1 && hole(i)))));
  return { ids, mask };
}

/** Every layer's output, the embedder's embeddings and the reranker's logits, on the backend as it is set up now. */
function outputs(
  embedder: Embedder,
  reranker: Reranker,
  lengths: readonly number[],
): { layers: Float32Array[]; embeddings: Float32Array; logits: Float32Array } {
  return tf.tidy(() => {
    const { ids, mask } = inputs(lengths);
    const inputIds = tf.tensor2d(ids, undefined, 'int32');
    const attentionMask = tf.tensor2d(mask, undefined, 'int32');
    const { hiddenStates } = embedder.model.forward(inputIds, attentionMask, { outputHiddenStates: true });
    return {
      layers: hiddenStates!.slice(1).map((h) => h.dataSync() as Float32Array),
      embeddings: embedder.forward(inputIds, attentionMask).dataSync() as Float32Array,
      logits: reranker.forward(inputIds, attentionMask).dataSync() as Float32Array,
    };
  });
}

const WEIGHT_NAMES = [
  'attention.self.query',
  'attention.self.key',
  'attention.self.value',
  'attention.output.dense',
  'attention.output.LayerNorm',
  'intermediate.dense',
  'output.dense',
  'output.LayerNorm',
].flatMap((m) => [`${m}.weight`, `${m}.bias`]);

const CASES = [
  ['wasm', ['builtin', 'builtin-avx2'], [600, 437, 20]],
  ['cpu', ['builtin'], [100, 61, 7]],
] as const;
for (const [backend, kernels, lengths] of CASES) {
  test(`${backend}: native encoder layers equal the op-by-op model (padded batch, ${lengths[0]} tokens)`, async () => {
    const embedder = Embedder.random(CONFIG, FIXTURE, 7);
    const reranker = Reranker.random(CONFIG, FIXTURE, 8);
    try {
      await initBackend({ backend, native: 'off', log: null });
      const reference = outputs(embedder, reranker, lengths);
      for (const kernel of kernels) {
        await initBackend({ backend, native: kernel, log: null });
        // The native path is the one taken here.
        const weights = WEIGHT_NAMES.map((name) => embedder.variables().get(`encoder.layer.0.${name}`)!);
        tf.tidy(() =>
          assert.ok(nativeEncoderLayer(tf.zeros([1, 8, 64]), tf.zeros([1, 1, 1, 8]), weights, 4, 1e-5), 'the native layer did not run'),
        );
        const tensorsBefore = tf.memory().numTensors;
        const native = outputs(embedder, reranker, lengths);
        assert.is(tf.memory().numTensors, tensorsBefore, 'tensors leaked');
        native.layers.forEach((layer, i) => {
          assert.ok(report(`${backend} ${kernel} layer ${i} output`, maxRelativeError(layer, reference.layers[i]!)) <= TOLERANCE);
        });
        assert.ok(report(`${backend} ${kernel} embeddings`, maxRelativeError(native.embeddings, reference.embeddings)) <= TOLERANCE);
        assert.ok(report(`${backend} ${kernel} logits`, maxRelativeError(native.logits, reference.logits)) <= TOLERANCE);
      }
    } finally {
      embedder.dispose();
      reranker.dispose();
    }
  });
}

/**
 * AdamW on the native kernels rewrites a parameter's data in place, under the same data id: the layers packed from
 * the old values must be packed again (an evaluation during training runs the updated model). Checked against the
 * op-by-op model on the updated weights.
 */
for (const backend of ['wasm', 'cpu'] as const) {
  test(`${backend}: after an optimizer step in place, the native layers run the new weights`, async () => {
    const embedder = Embedder.random(CONFIG, FIXTURE, 9);
    const reranker = Reranker.random(CONFIG, FIXTURE, 10);
    const lengths = [40, 33, 7];
    try {
      await initBackend({ backend, native: 'builtin', log: null });
      outputs(embedder, reranker, lengths); // packs every layer
      for (const model of [embedder, reranker]) {
        for (const [name, p] of model.variables()) {
          if (!name.startsWith('encoder.layer.')) continue;
          const dataId = p.dataId;
          const [g, m, v] = [tf.randomNormal(p.shape, 0, 1, 'float32', 11), tf.zerosLike(p), tf.zerosLike(p)];
          const constants = { beta1: 0.9, oneMinusBeta1: 0.1, beta2: 0.999, oneMinusBeta2: 0.001, decay: 1, eps: 1e-8, gradScale: 1 };
          // First step: the update is stepSize·sign(g), up to eps; 0.05 moves every weight visibly.
          assert.ok(nativeAdamW(p, g, m, v, { ...constants, biasCorrection2Sqrt: Math.sqrt(0.001), stepSize: 0.05 / 0.1 }));
          assert.ok(p.dataId === dataId, `${name} was updated in place`);
          tf.dispose([g, m, v]);
        }
      }
      const updated = outputs(embedder, reranker, lengths);
      await initBackend({ backend, native: 'off', log: null });
      const reference = outputs(embedder, reranker, lengths);
      updated.layers.forEach((layer, i) => {
        assert.ok(report(`${backend} after the step: layer ${i} output`, maxRelativeError(layer, reference.layers[i]!)) <= TOLERANCE);
      });
      assert.ok(report(`${backend} after the step: logits`, maxRelativeError(updated.logits, reference.logits)) <= TOLERANCE);
    } finally {
      embedder.dispose();
      reranker.dispose();
    }
  });
}

uvuTest.run();
