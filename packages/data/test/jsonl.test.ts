import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { readJsonl, DataError } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-jsonl-'));
function file(name: string, text: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
async function collect(path: string, options = {}) {
  const out = [];
  for await (const record of readJsonl(path, options)) out.push(record);
  return out;
}
async function rejection(promise: Promise<unknown>): Promise<DataError> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, DataError);
    return error as DataError;
  }
  throw new Error('expected a DataError');
}

test('BOM on the first line, CRLF endings, blank lines counted', async () => {
  const path = file('bom.jsonl', '\uFEFF{"a":1}\r\n\r\n   \r\n{"b":"한국어"}\r\n\n{"c":[1,2]}');
  assert.equal(await collect(path), [
    { line: 1, value: { a: 1 } },
    { line: 4, value: { b: '한국어' } },
    { line: 6, value: { c: [1, 2] } },
  ]);
});

test('a BOM on a later line is not stripped (it is not whitespace to JSON)', async () => {
  const path = file('bom2.jsonl', '{"a":1}\n\uFEFF{"a":2}\n');
  const error = await rejection(collect(path));
  assert.is(error.line, 2);
});

test('multi-byte characters split across chunks decode intact', async () => {
  const path = file('split.jsonl', '{"q":"안녕하세요 세계"}\n{"q":"é€😀"}\n');
  assert.equal(await collect(path, { chunkSize: 1 }), [
    { line: 1, value: { q: '안녕하세요 세계' } },
    { line: 2, value: { q: 'é€😀' } },
  ]);
});

test('malformed JSON names the path as given and the physical line', async () => {
  const path = file('bad.jsonl', '{"a":1}\n\n{"a":\n{"a":3}\n');
  const error = await rejection(collect(path));
  assert.ok(error.message.startsWith(`${path}:3: invalid JSON (`), error.message);
  assert.is(error.path, path);
  assert.is(error.line, 3);
  assert.is(error.field, undefined);
});

test('skipBadLines reports each bad line and goes on', async () => {
  const path = file('skip.jsonl', '{"a":1}\nnot json\n{"a":3}\n[1,\n');
  const bad: number[] = [];
  const records = await collect(path, { skipBadLines: true, onBadLine: (e: DataError) => bad.push(e.line!) });
  assert.equal(records.map((r) => r.line), [1, 3]);
  assert.equal(bad, [2, 4]);
});

test('a missing file is a DataError naming the path', async () => {
  const error = await rejection(collect(join(dir, 'missing.jsonl')));
  assert.ok(error.message.startsWith(`${join(dir, 'missing.jsonl')}: cannot read (ENOENT`), error.message);
});

test('empty file and file without trailing newline', async () => {
  assert.equal(await collect(file('empty.jsonl', '')), []);
  assert.equal(await collect(file('nonl.jsonl', '1\n2')), [{ line: 1, value: 1 }, { line: 2, value: 2 }]);
});

test('streams a large file with bounded memory and stops reading when the consumer stops', async () => {
  // ~60 MB: if the reader slurped the file, heap growth would exceed the file size.
  const path = join(dir, 'large.jsonl');
  const out = createWriteStream(path);
  const passage = '가나다라마바사아자차카타파하 '.repeat(20);
  const lines = 150_000;
  for (let i = 0; i < lines; i++) {
    if (!out.write(JSON.stringify({ query: `q${i}`, pos: [passage], neg: [passage] }) + '\n')) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  let peak = 0;
  let count = 0;
  for await (const record of readJsonl(path)) {
    count++;
    if (count % 10_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed - before);
    if ((record.value as { query: string }).query !== `q${record.line - 1}`) throw new Error('out of order');
  }
  assert.is(count, lines);
  assert.ok(peak < 40e6, `heap grew by ${(peak / 1e6).toFixed(1)} MB while streaming a 60 MB file`);

  // Breaking out early must release the file (no dangling stream keeping the process alive).
  let seen = 0;
  for await (const _ of readJsonl(path)) if (++seen === 5) break;
  assert.is(seen, 5);
});

test.run();
