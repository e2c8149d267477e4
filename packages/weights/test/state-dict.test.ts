import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFile, mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadStateDict, readTorchCheckpoint } from '../src/index.ts';
import type { LoadedTensor } from '../src/index.ts';

const fixtures = new URL('./fixtures/', import.meta.url).pathname;
/** Tensors as torch.load reads them back, written by fixtures/make-fixtures.py. */
const expected = JSON.parse(await readFile(join(fixtures, 'expected.json'), 'utf8')) as Record<
  string,
  Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>
>;

function expectedValue(v: number | string, dtype: string): number | bigint {
  if (dtype === 'I64') return BigInt(v);
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  if (v === 'nan') return NaN;
  return v as number;
}

function assertMatchesTorch(folder: string, tensors: Map<string, LoadedTensor>) {
  const want = expected[folder]!;
  assert.equal([...tensors.keys()].sort(), Object.keys(want).sort(), `${folder}: tensor names`);
  for (const [name, w] of Object.entries(want)) {
    const t = tensors.get(name)!;
    assert.is(t.dtype, w.dtype, `${folder} ${name}: dtype`);
    assert.equal(t.shape, w.shape, `${folder} ${name}: shape`);
    const isFloat = ['F32', 'F64', 'F16', 'BF16'].includes(w.dtype);
    if (isFloat) assert.ok(t.data instanceof (w.dtype === 'F64' ? Float64Array : Float32Array), `${folder} ${name}: widened array type`);
    const got = Array.from(t.data as ArrayLike<number | bigint>);
    // Tolerance 0: half and bfloat16 widen exactly to float32, and F32/F64/int values are copied bit for bit.
    assert.equal(
      got,
      w.values.map((v) => expectedValue(v, w.dtype)),
      `${folder} ${name}: values`,
    );
  }
}

for (const folder of ['mixed', 'mixed-safetensors', 'module', 'module-sharded', 'module-sharded-safetensors']) {
  test(`${folder}: loadStateDict gives exactly what torch.load gives`, async () => {
    assertMatchesTorch(folder, await loadStateDict(join(fixtures, folder)));
  });
}

test('tied weights (identical views of one storage) are read once and shared', async () => {
  const tensors = await loadStateDict(join(fixtures, 'module'));
  assert.ok(tensors.get('decoder.weight') === tensors.get('embeddings.word_embeddings.weight'));
  // Two views of one storage are different tensors.
  const mixed = await loadStateDict(join(fixtures, 'mixed'));
  assert.is.not(mixed.get('shared.head')!.data.buffer, mixed.get('shared.tail')!.data.buffer);
});

test('model.safetensors wins over pytorch_model.bin, as in transformers', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kotune-weights-'));
  await copyFile(join(fixtures, 'module/pytorch_model.bin'), join(dir, 'pytorch_model.bin'));
  await copyFile(join(fixtures, 'mixed-safetensors/model.safetensors'), join(dir, 'model.safetensors'));
  assert.ok((await loadStateDict(dir)).has('f16.special'));
});

async function rejectsWith(promise: Promise<unknown>, ...parts: (string | RegExp)[]) {
  try {
    await promise;
  } catch (err) {
    const message = (err as Error).message;
    for (const part of parts)
      assert.ok(typeof part === 'string' ? message.includes(part) : part.test(message), `"${message}" should contain ${part}`);
    return;
  }
  assert.unreachable('expected an error');
}

test('the legacy (pre-1.6) torch format gets an "unsupported, re-save" error naming the file', async () => {
  const path = join(fixtures, 'legacy/pytorch_model.bin');
  await rejectsWith(readTorchCheckpoint(path), path, 'legacy', 'torch >= 1.6');
});

test('truncated and non-zip .bin files fail with the file name', async () => {
  const source = await readFile(join(fixtures, 'mixed/pytorch_model.bin'));
  const dir = await mkdtemp(join(tmpdir(), 'kotune-weights-'));
  for (const length of [0, 3, 100, Math.floor(source.length / 2), source.length - 1]) {
    const path = join(dir, `cut-${length}.bin`);
    await writeFile(path, source.subarray(0, length));
    await rejectsWith(readTorchCheckpoint(path), path);
  }
  const text = join(dir, 'text.bin');
  await writeFile(text, 'not a checkpoint at all');
  await rejectsWith(readTorchCheckpoint(text), text, 'not a torch.save zip archive');
});

test('a storage member shorter than its pickled element count is reported as truncated', async () => {
  // Shrink the recorded size of the storage of "f32.plain" (key 0, 48 bytes) in the central directory.
  const bytes = Buffer.from(await readFile(join(fixtures, 'mixed/pytorch_model.bin')));
  const name = Buffer.from('pytorch_model/data/0');
  let patched = false;
  for (
    let p = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    p >= 0;
    p = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), p + 4)
  ) {
    const nameLength = bytes.readUInt16LE(p + 28);
    if (bytes.subarray(p + 46, p + 46 + nameLength).equals(name)) {
      bytes.writeUInt32LE(40, p + 20);
      bytes.writeUInt32LE(40, p + 24);
      patched = true;
    }
  }
  assert.ok(patched);
  const path = join(await mkdtemp(join(tmpdir(), 'kotune-weights-')), 'pytorch_model.bin');
  await writeFile(path, bytes);
  await rejectsWith(readTorchCheckpoint(path), path, 'storage "0"', 'truncated');
});

test('ZIP64 end records are followed when the classic record is saturated', async () => {
  // torch always writes ZIP64 end records; saturating the classic one forces the reader onto them.
  const bytes = Buffer.from(await readFile(join(fixtures, 'mixed/pytorch_model.bin')));
  const eocd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  bytes.writeUInt16LE(0xffff, eocd + 8);
  bytes.writeUInt16LE(0xffff, eocd + 10);
  bytes.writeUInt32LE(0xffffffff, eocd + 16);
  const dir = await mkdtemp(join(tmpdir(), 'kotune-weights-'));
  await writeFile(join(dir, 'pytorch_model.bin'), bytes);
  assertMatchesTorch('mixed', await loadStateDict(dir));
});

/** Rewrites a zip's central directory the way >4 GiB archives have it: every size and offset in ZIP64 extras. */
function withZip64Extras(zip: Buffer): Buffer {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(eocd + 10);
  const start = zip.readUInt32LE(eocd + 16);
  const entries: Buffer[] = [];
  for (let p = start, n = 0; n < count; n++) {
    const nameLength = zip.readUInt16LE(p + 28);
    const length = 46 + nameLength + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
    const entry = Buffer.from(zip.subarray(p, p + 46 + nameLength));
    const extra = Buffer.alloc(28);
    extra.writeUInt16LE(0x0001, 0);
    extra.writeUInt16LE(24, 2);
    extra.writeBigUInt64LE(BigInt(entry.readUInt32LE(24)), 4);
    extra.writeBigUInt64LE(BigInt(entry.readUInt32LE(20)), 12);
    extra.writeBigUInt64LE(BigInt(entry.readUInt32LE(42)), 20);
    for (const field of [20, 24, 42]) entry.writeUInt32LE(0xffffffff, field);
    entry.writeUInt16LE(28, 30);
    entry.writeUInt16LE(0, 32);
    entries.push(entry, extra);
    p += length;
  }
  const directory = Buffer.concat(entries);
  const record = Buffer.alloc(56);
  record.writeUInt32LE(0x06064b50, 0);
  record.writeBigUInt64LE(44n, 4);
  record.writeBigUInt64LE(BigInt(count), 24);
  record.writeBigUInt64LE(BigInt(count), 32);
  record.writeBigUInt64LE(BigInt(directory.length), 40);
  record.writeBigUInt64LE(BigInt(start), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(start + directory.length), 8);
  locator.writeUInt32LE(1, 16);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0xffff, 8);
  end.writeUInt16LE(0xffff, 10);
  end.writeUInt32LE(0xffffffff, 12);
  end.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([zip.subarray(0, start), directory, record, locator, end]);
}

test('ZIP64 extra fields in the central directory (archives over 4 GiB) are read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kotune-weights-'));
  await writeFile(join(dir, 'pytorch_model.bin'), withZip64Extras(await readFile(join(fixtures, 'mixed/pytorch_model.bin'))));
  assertMatchesTorch('mixed', await loadStateDict(dir));
});

test('a pickle that names a global outside state dicts is refused, not run', async () => {
  // Same archive, with the pickle's "collections OrderedDict" global renamed to "posix system".
  const bytes = Buffer.from(await readFile(join(fixtures, 'mixed/pytorch_model.bin')));
  const at = bytes.indexOf('collections\nOrderedDict\n');
  assert.ok(at > 0);
  bytes.write('posix\nsystem\n\n\n\n\n\n\n\n\n\n\n', at, 'latin1');
  const path = join(await mkdtemp(join(tmpdir(), 'kotune-weights-')), 'pytorch_model.bin');
  await writeFile(path, bytes);
  await rejectsWith(readTorchCheckpoint(path), path, 'data.pkl', 'posix.system');
});

test('sharded index errors name the index file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kotune-weights-'));
  const index = join(dir, 'pytorch_model.bin.index.json');
  await writeFile(index, '{"weight_map": {"a": "pytorch_model-00001-of-00002.bin"}}');
  await rejectsWith(loadStateDict(dir), index, 'pytorch_model-00001-of-00002.bin', 'missing');
  await copyFile(join(fixtures, 'module-sharded/pytorch_model-00001-of-00002.bin'), join(dir, 'pytorch_model-00001-of-00002.bin'));
  await rejectsWith(loadStateDict(dir), index, '"a"', 'no such tensor');
  await writeFile(index, '{"weight_map": ');
  await rejectsWith(loadStateDict(dir), index, 'not valid JSON');
  await writeFile(index, '{"weight_map": {"a": "../../etc/passwd"}}');
  await rejectsWith(loadStateDict(dir), index, 'weight_map["a"]');
});

test('a folder without weights lists what was looked for', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kotune-weights-'));
  await mkdir(join(dir, 'sub'));
  await rejectsWith(loadStateDict(dir), dir, 'model.safetensors', 'pytorch_model.bin.index.json');
  await rejectsWith(loadStateDict(join(dir, 'nope')), 'not a folder');
});

test('truncated safetensors fails with the file name', async () => {
  const source = await readFile(join(fixtures, 'mixed-safetensors/model.safetensors'));
  const dir = await mkdtemp(join(tmpdir(), 'kotune-weights-'));
  await writeFile(join(dir, 'model.safetensors'), source.subarray(0, source.length - 5));
  await rejectsWith(loadStateDict(dir), join(dir, 'model.safetensors'), 'truncated');
});

test.run();
