/**
 * Fresh initialisation (transformers' `_init_weights`), seeded dropout, gradients and config errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tf, initBackend } from '@kotune/engine';
import { configFromJson, Embedder, Reranker } from '../src/index.ts';
import { cases, FIXTURE, RERANKER_DIR } from './fixture.ts';

const SMALL = {
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 64,
  max_position_embeddings: 66,
  layer_norm_eps: 1e-5,
};
const batch = cases.reranker_forward.pairs_longest_first;
const ids = () => tf.tensor2d(batch.input_ids, undefined, 'int32');
const mask = () => tf.tensor2d(batch.attention_mask, undefined, 'int32');

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
});

function std(values: Float32Array): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
}

test('random init: normal(0, initializer_range), zero padding rows, LayerNorm 1/0, zero biases; reproducible by seed', () => {
  const a = Reranker.random(SMALL, FIXTURE, 123);
  const b = Reranker.random(SMALL, FIXTURE, 123);
  const c = Reranker.random(SMALL, FIXTURE, 124);
  const v = a.variables();
  assert.is(a.config.vocabSize, 32002, 'vocab_size defaults to the tokenizer');
  assert.is(a.config.typeVocabSize, 2, 'transformers default');
  const word = v.get('roberta.embeddings.word_embeddings.weight')!;
  assert.equal(word.shape, [32002, 32]);
  const words = word.dataSync() as Float32Array;
  assert.ok(
    words.subarray(32, 64).every((x) => x === 0),
    'row 1 (<pad>) is zero',
  );
  assert.ok(Math.abs(std(words) - 0.02) < 0.0005, `std ${std(words)}`); // 1M draws: std within 2.5% of 0.02
  assert.ok(
    v
      .get('roberta.embeddings.position_embeddings.weight')!
      .dataSync()
      .subarray(32, 64)
      .every((x) => x === 0),
  );
  assert.ok(
    v
      .get('roberta.encoder.layer.1.output.LayerNorm.weight')!
      .dataSync()
      .every((x) => x === 1),
  );
  assert.ok(
    v
      .get('roberta.encoder.layer.1.output.LayerNorm.bias')!
      .dataSync()
      .every((x) => x === 0),
  );
  assert.ok(
    v
      .get('classifier.out_proj.bias')!
      .dataSync()
      .every((x) => x === 0),
  );
  const query = v.get('roberta.encoder.layer.0.attention.self.query.weight')!.dataSync() as Float32Array;
  const key = v.get('roberta.encoder.layer.0.attention.self.key.weight')!.dataSync() as Float32Array;
  assert.not.equal(Array.from(query), Array.from(key), 'each tensor draws its own values');
  assert.equal(Array.from(query), Array.from(b.variables().get('roberta.encoder.layer.0.attention.self.query.weight')!.dataSync()));
  assert.not.equal(Array.from(query), Array.from(c.variables().get('roberta.encoder.layer.0.attention.self.query.weight')!.dataSync()));
  for (const model of [a, b, c]) model.dispose();
});

test('dropout: off by default, seeded when training, same seed → bit-equal, other seed → different', async () => {
  const reranker = await Reranker.load(RERANKER_DIR, { log: null });
  tf.tidy(() => {
    const evalLogits = Array.from(reranker.forward(ids(), mask()).dataSync());
    assert.equal(Array.from(reranker.forward(ids(), mask(), { training: false, seed: 5 }).dataSync()), evalLogits);
    const run = (seed: number) => Array.from(reranker.forward(ids(), mask(), { training: true, seed }).dataSync());
    assert.equal(run(5), run(5));
    assert.not.equal(run(5), run(6));
    assert.not.equal(run(5), evalLogits);
    assert.throws(() => reranker.forward(ids(), mask(), { training: true }), /seed/);
  });
  reranker.dispose();
  const noDropout = await Reranker.load(RERANKER_DIR, { log: null, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 });
  tf.tidy(() => {
    const trained = noDropout.forward(ids(), mask(), { training: true, seed: 1 }).dataSync();
    const plain = noDropout.forward(ids(), mask()).dataSync();
    assert.equal(Array.from(trained), Array.from(plain), 'rate 0 is the identity');
  });
  noDropout.dispose();
});

test('gradients reach every trainable variable (reranker and embedder)', () => {
  const reranker = Reranker.random(SMALL, FIXTURE, 1);
  const embedder = Embedder.random(SMALL, FIXTURE, 2);
  for (const [model, forward] of [
    [reranker, () => reranker.forward(ids(), mask(), { training: true, seed: 3 }).sum()],
    [embedder, () => embedder.forward(ids(), mask(), { training: true, seed: 3 }).slice([0, 0], [1, -1]).sum()],
  ] as const) {
    const variables = [...model.variables().values()];
    const { value, grads } = tf.variableGrads(forward as () => tf.Scalar, variables);
    assert.ok(Number.isFinite(value.dataSync()[0]));
    for (const variable of variables) {
      const grad = grads[variable.name];
      assert.ok(grad, `no gradient for a variable of shape [${variable.shape}]`);
      assert.equal(grad!.shape, variable.shape);
    }
    tf.dispose([value, ...Object.values(grads)]);
  }
  reranker.dispose();
  embedder.dispose();
});

test('hidden_act: tanh GELU differs from the exact one; unknown activations and layouts are clear errors', () => {
  const exact = Reranker.random(SMALL, FIXTURE, 9);
  const tanh = Reranker.random({ ...SMALL, hidden_act: 'gelu_new' }, FIXTURE, 9);
  tf.tidy(() => assert.not.equal(Array.from(exact.forward(ids(), mask()).dataSync()), Array.from(tanh.forward(ids(), mask()).dataSync())));
  exact.dispose();
  tanh.dispose();
  assert.throws(() => Reranker.random({ ...SMALL, hidden_act: 'gelu_magic' }, FIXTURE, 9), /hidden_act "gelu_magic" is not supported/);
  assert.throws(() => configFromJson({ ...SMALL, num_attention_heads: 5 }), /not a multiple of num_attention_heads/);
  assert.throws(() => configFromJson({ ...SMALL, position_embedding_type: 'relative_key' }), /relative_key/);
  assert.throws(() => Reranker.random({ ...SMALL, vocab_size: 1000 }, FIXTURE, 9), /tokenizer has 32002 ids/);
});

test('a sequence longer than the position table is a clear error', () => {
  const reranker = Reranker.random(SMALL, FIXTURE, 1);
  tf.tidy(() => {
    const long = tf.fill([1, 65], 5, 'int32') as tf.Tensor2D;
    assert.throws(() => reranker.forward(long, tf.onesLike(long)), /65 tokens exceed the model's 64 positions/);
  });
  reranker.dispose();
});

test.run();
