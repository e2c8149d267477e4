import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../src/index.ts';

const fixture = new URL('../../../test/fixtures/xlmr-tiny/reranker/model.safetensors', import.meta.url).pathname;

test('reads the fixture reranker: 41 F32 tensors with HF names', async () => {
  const { metadata, tensors } = await readSafetensors(fixture);
  assert.is(metadata.format, 'pt');
  assert.is(tensors.size, 41);
  const word = tensors.get('roberta.embeddings.word_embeddings.weight')!;
  assert.equal(word.shape, [32002, 32]);
  assert.is(word.dtype, 'F32');
  // Row 1 (padding index) is zero in the fixture.
  assert.ok(Array.from(word.data.slice(32, 64) as Float32Array).every((v) => v === 0));
});

test('write then read gives back the same bytes as the Python writer', async () => {
  const { metadata, tensors } = await readSafetensors(fixture);
  const dir = await mkdtemp(join(tmpdir(), 'kotune-st-'));
  const out = join(dir, 'model.safetensors');
  await writeSafetensors(out, new Map([...tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: t.data }])), metadata);
  const [a, b] = await Promise.all([readFile(fixture), readFile(out)]);
  assert.ok(a.equals(b), 'byte-identical to the file written by the Python safetensors library');
});

test.run();
