/**
 * `kotune export --format onnx`: writes DIR/onnx/model.onnx for the fixture reranker and embedder (the graph
 * itself is tested in packages/onnx), external data on request, and clear errors for bad flags and folders.
 * The command runs in-process (its `run(argv)`), as main.ts would call it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import { run as exportCommand } from '../src/commands/export.ts';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'kotune-export-'));
const copy = (name: string) => {
  const dir = join(work, name);
  cpSync(join(FIXTURE, name), dir, { recursive: true });
  return dir;
};
const printed: string[] = [];
const log = console.log;

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
  console.log = (line: string) => printed.push(line);
});
test.after(() => {
  console.log = log;
  rmSync(work, { recursive: true, force: true });
});

test('export --format onnx: the reranker and the embedder (task from the folder), one line saying where', async () => {
  for (const name of ['reranker', 'embedder']) {
    const dir = copy(name);
    await exportCommand(['--format', 'onnx', '--model', dir]);
    assert.ok(existsSync(join(dir, 'onnx', 'model.onnx')));
    assert.match(printed.at(-1)!, `exported the ${name} to ${join(dir, 'onnx', 'model.onnx')} (4.2 MB)`);
  }
});

test('--external-data always writes model.onnx_data and tells transformers.js in config.json; never takes both back', async () => {
  const dir = copy('embedder');
  const config = readFileSync(join(dir, 'config.json'), 'utf8');
  await exportCommand(['--format', 'onnx', '--model', dir, '--external-data', 'always']);
  assert.ok(existsSync(join(dir, 'onnx', 'model.onnx_data')));
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))['transformers.js_config'], { use_external_data_format: 1 });
  await exportCommand(['--format', 'onnx', '--model', dir, '--external-data', 'never']);
  assert.ok(!existsSync(join(dir, 'onnx', 'model.onnx_data')), 'the stale data file is removed');
  assert.is(readFileSync(join(dir, 'config.json'), 'utf8'), config, 'config.json is as it was, byte for byte');
});

test('bad flags and folders are errors that say what is wrong', async () => {
  const dir = copy('reranker');
  const fails = async (argv: string[], message: string) => {
    try {
      await exportCommand(argv);
    } catch (error) {
      assert.match((error as Error).message, message);
      return;
    }
    assert.unreachable(`${argv.join(' ')} should fail`);
  };
  await fails(['--format', 'tflite', '--model', dir], "--format must be onnx, got 'tflite'");
  await fails(['--format', 'onnx', '--model', dir, '--type', 'classifier'], "--type must be reranker or embedder, got 'classifier'");
  await fails(['--format', 'onnx', '--model', dir, '--external-data', 'maybe'], '--external-data must be auto, always or never');
  await fails(['--format', 'onnx', '--model', join(work, 'missing')], 'not a model folder');
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, architectures: ['XLMRobertaForMaskedLM'] }));
  await fails(['--format', 'onnx', '--model', dir], 'names neither XLMRobertaForSequenceClassification (a reranker) nor XLMRobertaModel');
  await exportCommand(['--format', 'onnx', '--model', dir, '--type', 'reranker']);
  assert.ok(existsSync(join(dir, 'onnx', 'model.onnx')), '--type decides when the folder does not say');
});

test.run();
