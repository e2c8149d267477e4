import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { readJsonl, DataError, describeFileError, fileErrorReason, wordFileErrors } from '../src/index.ts';

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

test('malformed JSON names the path as given, the physical line and the column', async () => {
  const path = file('bad.jsonl', '{"a":1}\n\n{"a":\n{"a":3}\n');
  const error = await rejection(collect(path));
  assert.is(error.message, `${path}:3: invalid JSON at column 6 (unexpected end of the text)`);
  const comma = await rejection(collect(file('bad-comma.jsonl', '{"query": "q", "pos": ["a"],}\n')));
  assert.match(comma.message, /bad-comma\.jsonl:1: invalid JSON at column 29 \(Expected double-quoted property name\)$/);
  assert.is(error.path, path);
  assert.is(error.line, 3);
  assert.is(error.field, undefined);
});

test('skipBadLines reports each bad line and goes on', async () => {
  const path = file('skip.jsonl', '{"a":1}\nnot json\n{"a":3}\n[1,\n');
  const bad: number[] = [];
  const records = await collect(path, { skipBadLines: true, onBadLine: (e: DataError) => bad.push(e.line!) });
  assert.equal(
    records.map((r) => r.line),
    [1, 3],
  );
  assert.equal(bad, [2, 4]);
});

test('a missing file is a DataError naming the path, in words (no errno code)', async () => {
  const error = await rejection(collect(join(dir, 'missing.jsonl')));
  assert.is(error.message, `${join(dir, 'missing.jsonl')}: cannot read: no such file or folder`);
  assert.is((await rejection(collect(dir))).message, `${dir}: cannot read: is a folder, not a file`);
});

test('a line that is not valid UTF-8 is a bad line (never decoded into replacement characters); others are kept', async () => {
  const bytes = (...parts: (string | number[])[]) =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  // Line 2: a Latin-1 "é" (0xe9) inside a string; line 4: a UTF-8 sequence cut short. U+FFFD itself (line 3) is valid text.
  const path = file('latin1.jsonl', bytes('{"a":"ok"}\n{"a":"caf', [0xe9], '"}\n{"a":"\uFFFD"}\n{"a":"', [0xec, 0x95], '"}\n'));
  const error = await rejection(collect(path));
  assert.is(error.message, `${path}:2: invalid UTF-8 (the file must be UTF-8 text)`);
  assert.is(error.reason, 'invalid UTF-8');
  const bad: string[] = [];
  const kept = await collect(path, { skipBadLines: true, onBadLine: (e: DataError) => bad.push(e.message) });
  assert.equal(kept, [
    { line: 1, value: { a: 'ok' } },
    { line: 3, value: { a: '\uFFFD' } },
  ]);
  assert.equal(bad, [`${path}:2: invalid UTF-8 (the file must be UTF-8 text)`, `${path}:4: invalid UTF-8 (the file must be UTF-8 text)`]);
  // The check holds across chunk boundaries (one byte a chunk).
  assert.equal(await collect(path, { skipBadLines: true, chunkSize: 1 }), kept);
});

test('file-system errors in words, naming the path', () => {
  const error = (code: string, extra = {}) => Object.assign(new Error(`${code}: whatever, open '/x/y'`), { code, path: '/x/y', ...extra });
  assert.is(describeFileError(error('ENOENT')), '/x/y: no such file or folder');
  assert.is(describeFileError(error('EACCES')), '/x/y: permission denied');
  assert.is(describeFileError(error('EEXIST', { path: '/a', dest: '/b' })), '/a -> /b: already exists');
  assert.is(
    describeFileError(Object.assign(new Error("EWEIRD: something odd, open '/x/y'"), { code: 'EWEIRD', path: '/x/y' })),
    '/x/y: something odd',
  );
  assert.is(fileErrorReason(error('ENOSPC')), 'no space left on the disk');
  assert.is(describeFileError(new Error('plain')), null);
  assert.is(
    describeFileError(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' })),
    null,
    "Node's own ERR_ codes are not file errors",
  );
  assert.is(
    wordFileErrors("/q.txt: cannot read (ENOENT: no such file or directory, open '/q.txt')"),
    '/q.txt: cannot read (no such file or folder)',
  );
  assert.is(wordFileErrors("x: EACCES: permission denied, rename '/a' -> '/b'; EWEIRD: odd"), 'x: permission denied; EWEIRD: odd');
});

test('empty file and file without trailing newline', async () => {
  assert.equal(await collect(file('empty.jsonl', '')), []);
  assert.equal(await collect(file('nonl.jsonl', '1\n2')), [
    { line: 1, value: 1 },
    { line: 2, value: 2 },
  ]);
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
