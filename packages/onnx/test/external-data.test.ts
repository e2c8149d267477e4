/**
 * Weights in external data files (what models over 2 GB, XLM-R large among them, need): the graph keeps only
 * references, the tensors sit 4 KiB-aligned in `model.onnx_data`, `model.onnx_data_1`, ..., and both
 * onnxruntime-node and transformers.js (told by config.json how many files there are) load them and give the
 * same outputs as the export with the weights inside. Tolerance: equal to the bit (the same graph and weights).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { AutoModel, env, Tensor } from '@huggingface/transformers';
import { initBackend } from '@kotune/engine';
import { verifyManifest } from '@kotune/weights';
import { Embedder } from '@kotune/xlm-roberta';
import * as ort from 'onnxruntime-node';
import { ModelProtoSchema, TensorProto_DataLocation } from '../src/gen/onnx_pb.ts';
import { exportOnnx } from '../src/index.ts';
import { cases, EMBEDDER_DIR, exportedCopy, ortOutput } from './support.ts';

await initBackend({ backend: 'wasm', log: null });
env.allowRemoteModels = false;
const batch = {
  inputIds: cases.embedder_forward.input_ids as number[][],
  attentionMask: cases.embedder_forward.attention_mask as number[][],
};
const run = async (dir: string) => {
  const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), { logSeverityLevel: 3 });
  const { data } = await ortOutput(session, batch);
  await session.release();
  return data;
};

test('external data in files of at most 4.1 MB: references in the graph, aligned tensors, the same outputs in both clients', async () => {
  const inline = await exportedCopy(EMBEDDER_DIR);
  const dir = await exportedCopy(EMBEDDER_DIR, { externalData: true, dataFileBytes: 4.1e6 });
  const files = readdirSync(join(dir, 'onnx')).sort();
  assert.equal(files, ['model.onnx', 'model.onnx_data', 'model.onnx_data_1'], 'the word embeddings (4.096 MB) fill the first file');
  assert.ok(statSync(join(dir, 'onnx', 'model.onnx')).size < 64_000, 'the graph alone');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.equal(config['transformers.js_config'], { use_external_data_format: 2 });

  const graph = fromBinary(ModelProtoSchema, readFileSync(join(dir, 'onnx', 'model.onnx'))).graph!;
  const external = graph.initializer.filter((t) => t.dataLocation === TensorProto_DataLocation.EXTERNAL);
  assert.ok(external.some((t) => t.name === 'embeddings.word_embeddings.weight'));
  for (const tensor of external) {
    const info = Object.fromEntries(tensor.externalData.map((e) => [e.key, e.value]));
    assert.is(Number(info.offset) % 4096, 0, `${tensor.name} is 4 KiB-aligned`);
    assert.ok(Number(info.offset) + Number(info.length) <= statSync(join(dir, 'onnx', info.location!)).size);
    assert.is(tensor.rawData.length, 0);
  }
  assert.ok(
    graph.initializer.filter((t) => t.dataLocation !== TensorProto_DataLocation.EXTERNAL).every((t) => t.rawData.length < 1024),
    'only small constants stay inline',
  );

  const expected = await run(inline);
  assert.equal(await run(dir), expected, 'onnxruntime-node: the same bits as the inline export');
  const dims = [batch.inputIds.length, batch.inputIds[0]!.length];
  const int64 = (rows: number[][]) => new Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), dims);
  const model = await AutoModel.from_pretrained(dir, { dtype: 'fp32', local_files_only: true });
  const { last_hidden_state: hidden } = await model({ input_ids: int64(batch.inputIds), attention_mask: int64(batch.attentionMask) });
  assert.equal(hidden.data, expected, 'transformers.js: the same bits');
  await model.dispose();
});

test('a tensor larger than a data file may be is an error naming it; the folder keeps its earlier export', async () => {
  const dir = await exportedCopy(EMBEDDER_DIR);
  try {
    await exportedCopy(EMBEDDER_DIR, { externalData: true, dataFileBytes: 1e6 });
    assert.unreachable('should fail');
  } catch (error) {
    assert.match(
      (error as Error).message,
      'tensor "embeddings.word_embeddings.weight" (4096256 bytes) is larger than a data file may be (1000000 bytes)',
    );
  }
  assert.ok(existsSync(join(dir, 'onnx', 'model.onnx')));
  try {
    await exportedCopy(EMBEDDER_DIR, { externalData: true, dataFileBytes: 100 });
    assert.unreachable('should fail');
  } catch (error) {
    assert.match((error as Error).message, 'dataFileBytes must be an integer from 4096 to 2146435072, got 100');
  }
});

test('a folder kotune saved still loads after the export rewrote its config.json (its checksums.json follows)', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'kotune-onnx-saved-')), 'model');
  const embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
  await embedder.save(dir);
  embedder.dispose();
  await exportOnnx(dir, { externalData: true, dataFileBytes: 4.1e6, log: null });
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))['transformers.js_config'], { use_external_data_format: 2 });
  assert.equal((await verifyManifest(dir)).problems, []);
  (await Embedder.load(dir, { log: null })).dispose();
});

test.run();
