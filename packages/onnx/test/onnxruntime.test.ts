/**
 * The export in onnxruntime-node, against kotune's own forward pass and the fixtures' float64 reference
 * (test/fixtures/xlmr-tiny). Tolerance (fixture README, float32): max|a − b| ≤ 1e-5 · max|b|. Each batch runs
 * on the graph as written (optimisations off) and as onnxruntime fuses it (all optimisations on): padded
 * batches, sequences of the full 64 positions, and the two-token empty text.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import * as ort from 'onnxruntime-node';
import { ModelProtoSchema, TensorProto_DataType, type ValueInfoProto } from '../src/gen/onnx_pb.ts';
import { IR_VERSION, OPSET, writeOnnx } from '../src/index.ts';
import {
  cases,
  EMBEDDER_DIR,
  exportedCopy,
  kotuneOutput,
  maxRelativeError,
  ortOutput,
  padBatch,
  randomSequence,
  report,
  RERANKER_DIR,
  type Batch,
} from './support.ts';

await initBackend({ backend: 'wasm', log: null });
const TOLERANCE = 1e-5;
const LEVELS = ['disabled', 'all'] as const;

const reranker = await Reranker.load(RERANKER_DIR, { log: null });
const embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
const rerankerDir = await exportedCopy(RERANKER_DIR);
const embedderDir = await exportedCopy(EMBEDDER_DIR);
const session = (dir: string, level: 'disabled' | 'extended' | 'all', optimizedModelFilePath?: string) =>
  ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), {
    graphOptimizationLevel: level,
    logSeverityLevel: 3,
    ...(optimizedModelFilePath ? { optimizedModelFilePath } : {}),
  });

const fromCase = (c: { input_ids: number[][]; attention_mask: number[][] }): Batch => ({
  inputIds: c.input_ids,
  attentionMask: c.attention_mask,
});
/** Lengths 64 (every position), 2 (an empty text: <s></s>), 37 and 5, padded to 64. */
const mixedBatch = padBatch([64, 2, 37, 5].map((length, i) => randomSequence(length, 32002, 17 + i)));

test('the files: DIR/onnx/model.onnx, opset 12, int64 inputs with dynamic batch and sequence axes, named outputs', () => {
  for (const [dir, output, dims] of [
    [rerankerDir, 'logits', ['batch_size', '1']],
    [embedderDir, 'last_hidden_state', ['batch_size', 'sequence_length', '32']],
  ] as const) {
    const model = fromBinary(ModelProtoSchema, readFileSync(join(dir, 'onnx', 'model.onnx')));
    assert.is(model.irVersion, BigInt(IR_VERSION));
    assert.equal(
      model.opsetImport.map((o) => [o.domain, Number(o.version)]),
      [['', OPSET]],
    );
    const shape = (v: ValueInfoProto) =>
      v.type!.value.case === 'tensorType' ? v.type!.value.value.shape!.dim.map((d) => String(d.value.value)) : [];
    const elem = (v: ValueInfoProto) => (v.type!.value.case === 'tensorType' ? v.type!.value.value.elemType : -1);
    assert.equal(
      model.graph!.input.map((v) => [v.name, elem(v), shape(v)]),
      [
        ['input_ids', TensorProto_DataType.INT64, ['batch_size', 'sequence_length']],
        ['attention_mask', TensorProto_DataType.INT64, ['batch_size', 'sequence_length']],
      ],
    );
    assert.equal(
      model.graph!.output.map((v) => [v.name, elem(v), shape(v)]),
      [[output, TensorProto_DataType.FLOAT, dims]],
    );
    assert.ok(!existsSync(join(dir, 'onnx', 'model.onnx_data')), 'a small model keeps its weights inside');
  }
  for (const file of ['modules.json', '1_Pooling/config.json', 'sentence_bert_config.json', 'tokenizer.json']) {
    assert.ok(existsSync(join(embedderDir, file)), `${file} stays beside the export`);
  }
});

test('reranker logits equal kotune and the float64 reference (padded batches, 64-token pairs), fused or not', async () => {
  for (const level of LEVELS) {
    const s = await session(rerankerDir, level);
    for (const name of ['pairs_longest_first', 'pairs_only_second']) {
      const batch = fromCase(cases.reranker_forward[name]);
      const { data, dims } = await ortOutput(s, batch);
      assert.equal(dims, [8, 1]);
      assert.ok(report(`ORT ${level} vs kotune, ${name}`, maxRelativeError(data, kotuneOutput(reranker, batch))) <= TOLERANCE);
      assert.ok(
        report(`ORT ${level} vs float64 reference, ${name}`, maxRelativeError(data, cases.reranker_forward[name].logits)) <= TOLERANCE,
      );
    }
    const { data } = await ortOutput(s, mixedBatch);
    assert.ok(report(`ORT ${level} vs kotune, lengths 64/2/37/5`, maxRelativeError(data, kotuneOutput(reranker, mixedBatch))) <= TOLERANCE);
    await s.release();
  }
});

test('embedder last_hidden_state equals kotune everywhere and the reference CLS vectors, fused or not', async () => {
  const batch = fromCase(cases.embedder_forward);
  const hidden = 32;
  for (const level of LEVELS) {
    const s = await session(embedderDir, level);
    const { data, dims } = await ortOutput(s, batch);
    assert.equal(dims, [8, 64, hidden]);
    assert.ok(report(`ORT ${level} vs kotune, 8 texts padded to 64`, maxRelativeError(data, kotuneOutput(embedder, batch))) <= TOLERANCE);
    const cls = Array.from({ length: 8 }, (_, b) => Array.from(data.subarray(b * 64 * hidden, b * 64 * hidden + hidden))).flat();
    assert.ok(report(`ORT ${level} CLS vs float64 reference`, maxRelativeError(cls, cases.embedder_forward.cls.flat())) <= TOLERANCE);
    const mixed = await ortOutput(s, mixedBatch);
    assert.ok(
      report(`ORT ${level} vs kotune, lengths 64/2/37/5`, maxRelativeError(mixed.data, kotuneOutput(embedder, mixedBatch))) <= TOLERANCE,
    );
    await s.release();
  }
});

test('padding changes nothing: the reference text alone and padded to 20 gives the same states at its tokens', async () => {
  const { short, padded, last_hidden_state_unpadded_positions: expected } = cases.padding_invariance.embedder;
  const s = await session(embedderDir, 'all');
  const alone = await ortOutput(s, fromCase(short));
  const withPads = await ortOutput(s, fromCase(padded));
  const tokens = short.input_ids[0].length * 32;
  assert.ok(report('ORT unpadded vs reference', maxRelativeError(alone.data, expected.flat())) <= TOLERANCE);
  assert.ok(report('ORT padded vs unpadded', maxRelativeError(withPads.data.subarray(0, tokens), alone.data)) <= TOLERANCE);
  await s.release();
});

test('onnxruntime fuses the graph: Attention, SkipLayerNormalization and BiasGelu in every layer, nothing left over', async () => {
  for (const dir of [rerankerDir, embedderDir]) {
    const optimized = join(dir, 'optimized.onnx');
    await (await session(dir, 'extended', optimized)).release();
    const ops: Record<string, number> = {};
    for (const node of fromBinary(ModelProtoSchema, readFileSync(optimized)).graph!.node) ops[node.opType] = (ops[node.opType] ?? 0) + 1;
    const layers = 2;
    assert.is(ops.Attention, layers, JSON.stringify(ops));
    assert.is(ops.SkipLayerNormalization, 2 * layers + 1, "both LayerNorms of each layer and the embeddings'");
    assert.is(ops.BiasGelu, layers);
    for (const unfused of ['Softmax', 'Erf', 'ReduceMean', 'Pow', 'Sqrt', 'Transpose', 'LayerNormalization'])
      assert.is(ops[unfused], undefined, unfused);
  }
});

test('writeOnnx: a model in memory into a folder of its own (only onnx/ is written), the same logits', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'kotune-onnx-')), 'bench');
  const result = await writeOnnx(reranker, dir);
  assert.equal(readdirSync(dir), ['onnx']);
  assert.equal(result, {
    task: 'reranker',
    modelPath: join(dir, 'onnx', 'model.onnx'),
    dataPaths: [],
    bytes: statSync(result.modelPath).size,
  });
  const batch = fromCase(cases.reranker_forward.pairs_only_second);
  const s = await session(dir, 'all');
  assert.ok(maxRelativeError((await ortOutput(s, batch)).data, kotuneOutput(reranker, batch)) <= TOLERANCE);
  await s.release();
});

test.after(() => {
  reranker.dispose();
  embedder.dispose();
});

test.run();
