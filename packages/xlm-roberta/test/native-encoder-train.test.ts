/**
 * The native training layer (@kotune/engine's `nativeEncoderLayerTrain`, @kotune/native's src/encoder_train.cc),
 * which runs every encoder layer's forward and backward in training, against the op-by-op model it stands in for
 * (its gradients from tf.js autodiff and the hand-written rules of fused.ts): the same weights, inputs and dropout
 * seed (dropout on at every site) with the native kernels off, on wasm and cpu, for every product kernel there is.
 * The batch is padded (three lengths, and a sequence with masked keys in its middle); on wasm its longest sequence
 * has 600 tokens, so attention takes the blocked path both ways (keys in blocks of 512: the online softmax forward
 * and the FlashAttention-style backward), as well as the one-block path. Checked: the loss, every parameter's
 * gradient (embeddings, all layers, head), and that gradient checkpointing (the native layer recomputing its
 * forward in the backward) gives the same bits; no tensor is left behind.
 * Tolerances (float32; the two paths add in different orders; measured ≤ 8e-6 and 1.5e-6): loss 1e-5 relative; per tensor
 * max|a − b| ≤ 1e-4 · max|b| (gradients go through up to two layers' backward, softmax and LayerNorm); the key bias,
 * whose true gradient is 0, to 1e-4 · max|query bias gradient|.
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, nativeEncoderLayerTrain, tf } from '@kotune/engine';
import { loadNative } from '@kotune/native';
import { encoderMissing } from '../../native/test/support.ts';
import { Embedder, Reranker } from '../src/index.ts';
import { FIXTURE, report } from './fixture.ts';

// The training layer is built where the inference layer is (x86-64 with AVX2 and FMA).
if (encoderMissing !== undefined) console.log(`skip: the native training layer tests (${encoderMissing})`);
const test = encoderMissing === undefined ? uvuTest : uvuTest.skip;

const LOSS_TOLERANCE = 1e-5;
const GRADIENT_TOLERANCE = 1e-4;
const CONFIG = {
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  max_position_embeddings: 700,
  initializer_range: 0.15,
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
};

function inputs(lengths: readonly number[]): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
  const seq = lengths[0]!;
  const hole = (i: number) => i >= lengths[1]! / 2 && i < lengths[1]! / 2 + 10;
  const ids = lengths.map((n, b) => Array.from({ length: seq }, (_, i) => (i < n ? 5 + ((i * 7919 + b * 104729) % 31000) : 1)));
  const mask = lengths.map((n, b) => Array.from({ length: seq }, (_, i) => Number(i < n && !(b === 1 && hole(i)))));
  return { ids: tf.tensor2d(ids, undefined, 'int32'), mask: tf.tensor2d(mask, undefined, 'int32') };
}

interface Result {
  loss: number;
  grads: Map<string, Float32Array>;
}

function lossAndGrads(variables: Map<string, tf.Variable>, loss: () => tf.Scalar): Result {
  const { value, grads } = tf.variableGrads(loss, [...variables.values()]);
  const result = {
    loss: value.dataSync()[0]!,
    grads: new Map([...variables].map(([name, v]) => [name, grads[v.name]!.dataSync() as Float32Array])),
  };
  tf.dispose([value, ...Object.values(grads)]);
  return result;
}

/** The embedder's and the reranker's training loss and gradients, dropout seeded. */
function run(embedder: Embedder, reranker: Reranker, lengths: readonly number[], gradientCheckpointing = false): Result[] {
  const { ids, mask } = inputs(lengths);
  try {
    const embedderResult = lossAndGrads(embedder.variables(), () => {
      const embeddings = embedder.forward(ids, mask, { training: true, seed: 11, gradientCheckpointing });
      return tf.sum(tf.mul(embeddings, tf.linspace(-1, 1, embeddings.size).reshape(embeddings.shape))) as tf.Scalar;
    });
    const rerankerResult = lossAndGrads(reranker.variables(), () => {
      const logits = reranker.forward(ids, mask, { training: true, seed: 12, gradientCheckpointing });
      return tf.mean(tf.square(tf.sub(logits, 0.5))) as tf.Scalar;
    });
    return [embedderResult, rerankerResult];
  } finally {
    tf.dispose([ids, mask]);
  }
}

const maxAbs = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxAbsDifference = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

function assertClose(label: string, actual: Result, expected: Result, lossTolerance: number, gradientTolerance: number): void {
  const lossError = Math.abs(actual.loss - expected.loss) / Math.abs(expected.loss);
  assert.ok(lossError <= lossTolerance, `${label} loss ${actual.loss} vs ${expected.loss}`);
  let worst = 0;
  let worstName = '';
  for (const [name, grad] of expected.grads) {
    // The key bias adds q·b_k to every score of a row, which softmax ignores: its true gradient is 0, and both paths
    // give rounding noise. It is held to the query bias's gradient scale instead.
    const scale = name.endsWith('attention.self.key.bias')
      ? maxAbs(expected.grads.get(name.replace('key.bias', 'query.bias'))!)
      : maxAbs(grad);
    const error = maxAbsDifference(actual.grads.get(name)!, grad) / scale;
    if (error > worst) [worst, worstName] = [error, name];
    assert.ok(error <= gradientTolerance, `${label} ${name}: ${error}`);
  }
  report(`${label} loss`, lossError);
  report(`${label} worst gradient (${worstName})`, worst);
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
const NO_DROPOUT = {
  attention: { threshold: 0, scale: 1, seed: 0 },
  hidden: { threshold: 0, scale: 1, attentionOutputSeed: 0, outputSeed: 0 },
};

const auto = loadNative('auto');
const kernels = ['builtin', 'builtin-avx2', ...('kernels' in auto && auto.kernels.kernel === 'openblas' ? ['openblas'] : [])];
const CASES = [
  ['wasm', [600, 437, 20]],
  ['cpu', [100, 61, 7]],
] as const;
for (const [backend, lengths] of CASES) {
  test(`${backend}: native training layers give the op-by-op model's loss and gradients (dropout on, ${lengths[0]} tokens)`, async () => {
    const embedder = Embedder.random(CONFIG, FIXTURE, 7);
    const reranker = Reranker.random(CONFIG, FIXTURE, 8);
    try {
      await initBackend({ backend, native: 'off', log: null });
      const [embedderReference, rerankerReference] = run(embedder, reranker, lengths);
      for (const kernel of kernels) {
        await initBackend({ backend, native: kernel, log: null });
        // The native path is the one taken here.
        const weights = WEIGHT_NAMES.map((name) => embedder.variables().get(`encoder.layer.0.${name}`)!);
        tf.tidy(() =>
          assert.ok(
            nativeEncoderLayerTrain(tf.zeros([1, 8, 64]), tf.zeros([1, 1, 1, 8]), weights, 4, 1e-5, () => NO_DROPOUT, false),
            'the native layer did not run',
          ),
        );
        const before = tf.memory().numTensors;
        const [embedderNative, rerankerNative] = run(embedder, reranker, lengths);
        assert.is(tf.memory().numTensors, before, 'tensors leaked');
        assertClose(`${backend} ${kernel} embedder`, embedderNative!, embedderReference!, LOSS_TOLERANCE, GRADIENT_TOLERANCE);
        assertClose(`${backend} ${kernel} reranker`, rerankerNative!, rerankerReference!, LOSS_TOLERANCE, GRADIENT_TOLERANCE);
        // Gradient checkpointing runs the same native forward again: the same bits.
        const [embedderRecomputed, rerankerRecomputed] = run(embedder, reranker, lengths, true);
        assert.is(tf.memory().numTensors, before, 'tensors leaked (checkpointing)');
        assertClose(`${backend} ${kernel} embedder, checkpointed`, embedderRecomputed!, embedderNative!, 0, 0);
        assertClose(`${backend} ${kernel} reranker, checkpointed`, rerankerRecomputed!, rerankerNative!, 0, 0);
      }
    } finally {
      embedder.dispose();
      reranker.dispose();
    }
  });
}

uvuTest.run();
