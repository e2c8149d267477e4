/**
 * Exports that clients can use to the last token (issue 16, item 6), in transformers.js, the client that
 * crashed: a model with 512 positions and the shipped tokenizer (whose tokenizer_config.json says 512) is
 * exported, and `tokenizer(text, { truncation: true })` on a text far longer than the model cuts it at the
 * exported `model_max_length`, 510 (512 − pad_token_id 1 − 1), which the model runs, equal to kotune. The 512
 * kotune wrote before makes transformers.js fail in the position-embedding Gather (`idx=512`), as reported.
 * Tolerance (fixture README, float32): max|a − b| ≤ 1e-5 · max|b|.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoModel, AutoModelForSequenceClassification, AutoTokenizer, env, type Tensor } from '@huggingface/transformers';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { exportOnnx } from '../src/index.ts';
import { kotuneOutput, maxRelativeError, report } from './support.ts';

await initBackend({ backend: 'wasm', log: null });
env.allowRemoteModels = false;
const TOKENIZER = fileURLToPath(new URL('../../tokenizer/assets/ko-en-32k', import.meta.url));
const CONFIG = { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4, intermediate_size: 64, max_position_embeddings: 512 };
const text = Array.from({ length: 600 }, (_, i) => `단어${i}`).join(' ');

const work = mkdtempSync(join(tmpdir(), 'kotune-max-length-'));

/** The model saved by kotune, then exported to ONNX in the same folder. */
async function exported(model: Reranker | Embedder): Promise<string> {
  const dir = join(work, model instanceof Embedder ? 'embedder' : 'reranker');
  await model.save(dir);
  await exportOnnx(dir, { log: null });
  return dir;
}

const rows = (ids: Tensor) => (ids.tolist() as bigint[][]).map((row) => row.map(Number));

for (const kind of ['embedder', 'reranker'] as const) {
  test(`${kind}: transformers.js truncates at the exported 510 and runs; the former 512 crashes it`, async () => {
    const model = kind === 'embedder' ? Embedder.random(CONFIG, TOKENIZER, 5, { pooling: 'mean' }) : Reranker.random(CONFIG, TOKENIZER, 5);
    const dir = await exported(model);
    assert.is(JSON.parse(readFileSync(`${dir}/tokenizer_config.json`, 'utf8')).model_max_length, 510);
    const load = (path: string) =>
      kind === 'embedder'
        ? AutoModel.from_pretrained(path, { dtype: 'fp32', local_files_only: true })
        : AutoModelForSequenceClassification.from_pretrained(path, { dtype: 'fp32', local_files_only: true });
    const encode = async (path: string) => {
      const tokenizer = await AutoTokenizer.from_pretrained(path, { local_files_only: true });
      return kind === 'embedder' ? tokenizer(text, { truncation: true }) : tokenizer('질문', { text_pair: text, truncation: true });
    };

    const inputs = await encode(dir);
    const ids = rows(inputs.input_ids as Tensor);
    // transformers.js 4.3 cuts after adding the special tokens (its last token is a piece, not </s> as with the
    // Rust tokenizers and kotune); what matters here is the length, and the model's outputs for these very ids.
    assert.is(ids[0]!.length, 510, 'cut at model_max_length');
    const client = await load(dir);
    const output = await client(inputs);
    const values = (kind === 'embedder' ? output.last_hidden_state : output.logits).data as Float32Array;
    const expected = kotuneOutput(model, { inputIds: ids, attentionMask: [ids[0]!.map(() => 1)] });
    assert.ok(report(`${kind}: transformers.js vs kotune at 510 tokens`, maxRelativeError(values, expected)) <= 1e-5);
    await client.dispose();
    model.dispose();

    // The export as it was before: the same folder telling clients 512.
    const old = `${dir}-as-before`;
    cpSync(dir, old, { recursive: true });
    const config = JSON.parse(readFileSync(`${old}/tokenizer_config.json`, 'utf8'));
    writeFileSync(`${old}/tokenizer_config.json`, JSON.stringify({ ...config, model_max_length: 512 }));
    const oldInputs = await encode(old);
    assert.is(rows(oldInputs.input_ids as Tensor)[0]!.length, 512);
    const oldClient = await load(old);
    const printError = console.error; // transformers.js prints the failed run's inputs: 512 of them, twice
    console.error = () => {};
    try {
      await oldClient(oldInputs);
      assert.unreachable('512 tokens need position 513 of a 512-row table');
    } catch (error) {
      assert.match(String((error as Error).message ?? error), /Gather.*idx=512/);
    } finally {
      console.error = printError;
      await oldClient.dispose();
    }
  });
}

test.after(() => rmSync(work, { recursive: true, force: true }));

test.run();
