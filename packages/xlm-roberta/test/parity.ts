/**
 * Parity of the model with the float64 Hugging Face reference of the fixtures, registered once per backend
 * (`parity-cpu.test.ts`, `parity-wasm.test.ts`). Tolerance (fixture README, float32): max|a − b| ≤ 1e-5 · max|b|
 * for logits, embeddings, pooled vectors and layer outputs; position ids exact.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initBackend, l2Normalize, tf } from '@kotune/engine';
import { createPositionIdsFromInputIds, Embedder, firstToken, pool, Reranker } from '../src/index.ts';
import { cases, EMBEDDER_DIR, maxRelativeError, RERANKER_DIR, report } from './fixture.ts';

const TOLERANCE = 1e-5;

export function registerParityTests(backend: 'cpu' | 'wasm'): void {
  let reranker: Reranker;
  let embedder: Embedder;
  const ids = (rows: number[][]) => tf.tensor2d(rows, undefined, 'int32');

  test.before(async () => {
    await initBackend({ backend, log: null });
    reranker = await Reranker.load(RERANKER_DIR, { log: null });
    embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
  });
  test.after(() => {
    reranker.dispose();
    embedder.dispose();
  });

  for (const variant of ['pairs_longest_first', 'pairs_only_second']) {
    test(`${backend}: reranker logits, ${variant}`, () => {
      const c = cases.reranker_forward[variant];
      const logits = tf.tidy(() => reranker.forward(ids(c.input_ids), ids(c.attention_mask)).dataSync());
      assert.is(logits.length, c.logits.length);
      assert.ok(report(`${backend} reranker logits (${variant})`, maxRelativeError(logits, c.logits)) <= TOLERANCE); // 1e-5 relative (README)
    });
  }

  test(`${backend}: embedder position ids, CLS / mean (raw and normalised), pooler_output`, () => {
    const c = cases.embedder_forward;
    tf.tidy(() => {
      const inputIds = ids(c.input_ids);
      const mask = ids(c.attention_mask);
      assert.equal(Array.from(createPositionIdsFromInputIds(inputIds, 1).dataSync()), c.position_ids.flat()); // exact
      const { lastHiddenState, poolerOutput } = embedder.model.forward(inputIds, mask);
      const expected: Record<string, () => tf.Tensor> = {
        cls: () => firstToken(lastHiddenState),
        cls_normalized: () => embedder.forward(inputIds, mask, { normalize: true }),
        mean: () => pool(lastHiddenState, mask, 'mean'),
        pooler_output: () => poolerOutput!,
      };
      for (const [key, compute] of Object.entries(expected)) {
        const error = report(`${backend} embedder ${key}`, maxRelativeError(compute().dataSync(), c[key].flat()));
        assert.ok(error <= TOLERANCE, `${key}: ${error}`); // 1e-5 relative (README)
      }
    });
  });

  test(`${backend}: mean pooling through Embedder (normalised and not)`, async () => {
    const c = cases.embedder_forward;
    const mean = await Embedder.load(EMBEDDER_DIR, { log: null, pooling: 'mean' });
    try {
      tf.tidy(() => {
        for (const [normalize, key] of [
          [false, 'mean'],
          [true, 'mean_normalized'],
        ] as const) {
          const pooled = mean.forward(ids(c.input_ids), ids(c.attention_mask), { normalize }).dataSync();
          assert.ok(report(`${backend} embedder ${key}`, maxRelativeError(pooled, c[key].flat())) <= TOLERANCE); // 1e-5 relative (README)
        }
      });
    } finally {
      mean.dispose();
    }
  });

  test(`${backend}: debug layers (embedding output, each encoder layer)`, () => {
    const c = cases.debug_layers;
    tf.tidy(() => {
      const { hiddenStates } = embedder.model.forward(ids(c.input_ids), ids(c.attention_mask), { outputHiddenStates: true });
      const expected = [c.embedding_output, ...c.layer_outputs];
      assert.is(hiddenStates!.length, expected.length);
      hiddenStates!.forEach((state, i) => {
        const error = report(
          `${backend} ${i === 0 ? 'embedding_output' : `layer ${i - 1} output`}`,
          maxRelativeError(state.dataSync(), expected[i].flat()),
        );
        assert.ok(error <= TOLERANCE); // 1e-5 relative (README)
      });
    });
  });

  test(`${backend}: padding invariance (embedder and reranker)`, () => {
    const c = cases.padding_invariance;
    tf.tidy(() => {
      for (const variant of ['short', 'padded']) {
        const input = c.embedder[variant];
        const { lastHiddenState } = embedder.model.forward(ids(input.input_ids), ids(input.attention_mask));
        const real = lastHiddenState.slice([0, 0, 0], [1, c.embedder.short.input_ids[0].length, -1]);
        assert.ok(
          report(
            `${backend} last_hidden_state real positions (${variant})`,
            maxRelativeError(real.dataSync(), c.embedder.last_hidden_state_unpadded_positions.flat()),
          ) <= TOLERANCE,
        ); // 1e-5
        const cls = embedder.forward(ids(input.input_ids), ids(input.attention_mask), { normalize: true }).dataSync();
        assert.ok(maxRelativeError(cls, c.embedder.cls_normalized) <= TOLERANCE); // 1e-5 relative (README)
        const mean = l2Normalize(pool(lastHiddenState, ids(input.attention_mask), 'mean')).dataSync();
        assert.ok(report(`${backend} mean_normalized (${variant})`, maxRelativeError(mean, c.embedder.mean_normalized)) <= TOLERANCE); // 1e-5
        const pair = c.reranker[variant];
        const logit = reranker.forward(ids(pair.input_ids), ids(pair.attention_mask)).dataSync();
        assert.ok(report(`${backend} reranker logit (${variant})`, maxRelativeError(logit, [c.reranker.logit])) <= TOLERANCE); // 1e-5
      }
    });
  });
}
