/**
 * What the ONNX tests share: fixture models copied into a scratch folder and exported there, kotune's own
 * outputs for a batch of token ids, and onnxruntime-node runs of an export.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import * as ort from 'onnxruntime-node';
import { exportOnnx, type OnnxExportOptions } from '../src/index.ts';

export { cases, EMBEDDER_DIR, FIXTURE, maxRelativeError, report, RERANKER_DIR } from '../../xlm-roberta/test/fixture.ts';

/** A scratch copy of the model folder `source` with its ONNX export written into it. */
export async function exportedCopy(source: string, options: OnnxExportOptions = {}): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'kotune-onnx-')), 'model');
  cpSync(source, dir, { recursive: true });
  await exportOnnx(dir, { ...options, log: null });
  return dir;
}

/** A padded batch of token ids and its attention mask, row-major `[batch, sequence]`. */
export interface Batch {
  inputIds: number[][];
  attentionMask: number[][];
}

/** Right-pads `rows` with `padId` to the longest (mask 0 on the padding), as the tokenizers do. */
export function padBatch(rows: number[][], padId = 1): Batch {
  const length = Math.max(...rows.map((r) => r.length));
  return {
    inputIds: rows.map((r) => [...r, ...Array<number>(length - r.length).fill(padId)]),
    attentionMask: rows.map((r) => [...Array<number>(r.length).fill(1), ...Array<number>(length - r.length).fill(0)]),
  };
}

/** `<s> ... </s>` of `length` tokens with ids drawn from a seeded generator (no pads, no specials inside). */
export function randomSequence(length: number, vocabSize: number, seed: number): number[] {
  let state = seed >>> 0;
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0);
  return [0, ...Array.from({ length: length - 2 }, () => 4 + (next() % (vocabSize - 5))), 2];
}

/** kotune's reranker logits `[batch × num_labels]` or embedder `last_hidden_state` `[batch × sequence × hidden]`, flat. */
export function kotuneOutput(model: Reranker | Embedder, batch: Batch): Float32Array {
  return tf.tidy(() => {
    const ids = tf.tensor2d(batch.inputIds, undefined, 'int32');
    const mask = tf.tensor2d(batch.attentionMask, undefined, 'int32');
    const out = model instanceof Reranker ? model.model.forward(ids, mask) : model.model.forward(ids, mask).lastHiddenState;
    return out.dataSync() as Float32Array;
  });
}

/** The export's output for `batch` in onnxruntime-node: `logits` or `last_hidden_state`, flat. */
export async function ortOutput(session: ort.InferenceSession, batch: Batch): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const dims = [batch.inputIds.length, batch.inputIds[0]!.length];
  const int64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), dims);
  const outputs = await session.run({ input_ids: int64(batch.inputIds), attention_mask: int64(batch.attentionMask) });
  const [output] = Object.values(outputs);
  return { data: output!.data as Float32Array, dims: output!.dims };
}
