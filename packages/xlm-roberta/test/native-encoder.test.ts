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
import { initBackend, nativeEncoderLayer, tf } from '@kotune/engine';
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

uvuTest.run();
