/**
 * Loading and saving: the fixture folders re-export byte-identically, both key layouts load, and missing,
 * unexpected or mis-shaped tensors fail with the key in the message.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tf, initBackend } from '@kotune/engine';
import { loadStateDict, MANIFEST_FILE, readManifest, writeSafetensors, type TensorToWrite } from '@kotune/weights';
import { Embedder, Reranker } from '../src/index.ts';
import { EMBEDDER_DIR, RERANKER_DIR } from './fixture.ts';

const work = mkdtempSync(join(tmpdir(), 'xlmr-checkpoint-'));

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

/** Every file under `dir`, relative, sorted. */
function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) =>
      entry.isDirectory()
        ? [`${prefix}${entry.name}/`, ...listFiles(join(dir, entry.name), `${prefix}${entry.name}/`)]
        : [`${prefix}${entry.name}`],
    )
    .sort();
}

test('reranker fixture re-exports byte-identically (weights, config, tokenizer files)', async () => {
  const reranker = await Reranker.load(RERANKER_DIR, { log: null });
  const out = join(work, 'reranker');
  await reranker.save(out);
  reranker.dispose();
  // Plus checksums.json, which kotune adds to every folder it writes (and which lists every other file).
  assert.equal(listFiles(out), [...listFiles(RERANKER_DIR), MANIFEST_FILE].sort());
  assert.equal(Object.keys(readManifest(out)!.files).sort(), listFiles(RERANKER_DIR));
  for (const file of listFiles(RERANKER_DIR)) assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(RERANKER_DIR, file))), file);
});

test('embedder fixture re-exports byte-identically (sentence-transformers files included)', async () => {
  const embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
  assert.is(embedder.pooling, 'cls');
  assert.is(embedder.normalize, true);
  assert.is(embedder.maxSeqLength, 64);
  const out = join(work, 'embedder');
  await embedder.save(out);
  embedder.dispose();
  // The fixture's 2_Normalize/.gitkeep only exists so that git keeps the empty folder.
  assert.equal(listFiles(out), [...listFiles(EMBEDDER_DIR).filter((f) => !f.endsWith('.gitkeep')), MANIFEST_FILE].sort());
  for (const file of listFiles(out).filter((f) => !f.endsWith('/') && f !== MANIFEST_FILE)) {
    assert.ok(readFileSync(join(out, file)).equals(readFileSync(join(EMBEDDER_DIR, file))), file);
  }
  assert.not.ok(
    readdirSync(out).some((name) => name.startsWith('.save-')),
    'no staging folder left behind',
  );
});

async function rejects(action: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await action();
  } catch (error) {
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}

/** A copy of a fixture folder whose weights are `edit(stateDict)`. */
async function folderWithWeights(name: string, from: string, edit: (tensors: Map<string, TensorToWrite>) => void): Promise<string> {
  const dir = join(work, name);
  cpSync(from, dir, { recursive: true });
  const tensors = new Map<string, TensorToWrite>();
  for (const [key, t] of await loadStateDict(from)) tensors.set(key, { dtype: 'F32', shape: t.shape, data: t.data as Float32Array });
  edit(tensors);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

test('a bare XLMRobertaModel checkpoint loads as a reranker with a fresh classifier, and the reverse', async () => {
  const warnings: string[] = [];
  const reranker = await Reranker.load(EMBEDDER_DIR, { log: (line) => warnings.push(line), seed: 7 });
  assert.ok(
    warnings.some((w) => w.includes('classifier.out_proj.weight') && w.includes('newly initialised')),
    warnings.join('\n'),
  );
  assert.ok(
    warnings.some((w) => w.includes('pooler.dense')),
    'the pooler is dropped with a warning',
  );
  assert.equal([...reranker.variables().keys()].filter((k) => !k.startsWith('roberta.')).sort(), [
    'classifier.dense.bias',
    'classifier.dense.weight',
    'classifier.out_proj.bias',
    'classifier.out_proj.weight',
  ]);
  const fromEmbedder = reranker.variables().get('roberta.embeddings.word_embeddings.weight')!.dataSync();
  const stored = (await loadStateDict(EMBEDDER_DIR)).get('embeddings.word_embeddings.weight')!.data;
  assert.ok(fromEmbedder.every((v, i) => v === stored[i]));
  reranker.dispose();

  const embedder = await Embedder.load(RERANKER_DIR, { log: null });
  assert.ok([...embedder.variables().keys()].every((k) => k.startsWith('embeddings.') || k.startsWith('encoder.')));
  embedder.dispose();
});

test('missing, mis-shaped and unexpected tensors are errors naming the key', async () => {
  const missing = await folderWithWeights('missing', RERANKER_DIR, (t) => t.delete('roberta.encoder.layer.1.output.dense.bias'));
  await rejects(() => Reranker.load(missing, { log: null }), /missing tensor "roberta\.encoder\.layer\.1\.output\.dense\.bias"/);
  const shaped = await folderWithWeights('shaped', RERANKER_DIR, (t) =>
    t.set('classifier.dense.bias', { dtype: 'F32', shape: [31], data: new Float32Array(31) }),
  );
  await rejects(() => Reranker.load(shaped, { log: null }), /"classifier\.dense\.bias" has shape \[31\], the config needs \[32\]/);
  const extra = await folderWithWeights('extra', RERANKER_DIR, (t) =>
    t.set('roberta.encoder.layer.2.output.dense.bias', { dtype: 'F32', shape: [32], data: new Float32Array(32) }),
  );
  await rejects(() => Reranker.load(extra, { log: null }), /unexpected tensor "roberta\.encoder\.layer\.2\.output\.dense\.bias"/);
  await rejects(() => Embedder.load(extra, { log: null }), /unexpected tensor "roberta\.encoder\.layer\.2\.output\.dense\.bias"/);
  const withBuffer = await folderWithWeights('buffer', EMBEDDER_DIR, (t) =>
    t.set('embeddings.position_ids', { dtype: 'F32', shape: [1, 66], data: new Float32Array(66) }),
  );
  const embedder = await Embedder.load(withBuffer, { log: () => assert.unreachable('position_ids is a buffer: ignored silently') });
  embedder.dispose();
});

test('saving into a folder keeps its other files; overrides are recorded in config.json', async () => {
  const dir = join(work, 'run');
  cpSync(RERANKER_DIR, dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.jsonl'), '{}\n');
  const reranker = await Reranker.load(dir, { log: null, hiddenDropoutProb: 0.2 });
  await reranker.save(dir);
  reranker.dispose();
  assert.ok(existsSync(join(dir, 'metrics.jsonl')));
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.is(config.hidden_dropout_prob, 0.2);
  assert.is(config.attention_probs_dropout_prob, 0.1);
});

test('variables are tf.Variables under checkpoint names; dispose frees them', async () => {
  const before = tf.memory().numTensors;
  const reranker = await Reranker.load(RERANKER_DIR, { log: null });
  const variables = reranker.variables();
  assert.is(variables.size, 41);
  assert.ok(variables.get('roberta.encoder.layer.0.attention.self.query.weight') instanceof tf.Variable);
  assert.equal(variables.get('roberta.encoder.layer.0.intermediate.dense.weight')!.shape, [64, 32]); // [out, in]
  reranker.dispose();
  const embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
  assert.is(embedder.variables().size, 37, 'the pooler (2 tensors) is kept for saving but frozen');
  embedder.dispose();
  assert.is(tf.memory().numTensors, before);
});

test.run();
