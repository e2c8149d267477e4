/**
 * `kotune score` and `kotune encode` on the fixture folders: one output line per input line, in order, equal to
 * the library's `Reranker.score` / `Embedder.encode`; bad lines stop with `file:line: reason`; a failed run
 * leaves no output file. The commands run in-process (their `run(argv)`), as main.ts would call them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@kotune/engine';
import { Embedder, Reranker } from '@kotune/xlm-roberta';
import { run as score } from '../src/commands/score.ts';
import { run as encode } from '../src/commands/encode.ts';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url));
const cases = JSON.parse(readFileSync(join(FIXTURE, 'cases.json'), 'utf8'));
const tokenization = (name: string) => cases.tokenization.cases.find((c: { name: string }) => c.name === name);
const work = mkdtempSync(join(tmpdir(), 'kotune-score-encode-'));
const file = (name: string, lines: string[]) => {
  const path = join(work, name);
  writeFileSync(path, lines.join('\n'));
  return path;
};
const readLines = (path: string) =>
  readFileSync(path, 'utf8')
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));

test.before(async () => {
  await initBackend({ backend: 'wasm', log: null });
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('score: one {"score"} line per pair, in order, as Reranker.score (sigmoid with --normalize)', async () => {
  const pairs: [string, string][] = tokenization('pairs_longest_first').inputs;
  // A BOM, CRLF endings and a blank line in the middle: accepted, and the blank line gives no output line.
  const lines = pairs.map(([query, passage]) => JSON.stringify({ query, passage, id: 'extra fields are ignored' }));
  const input = file('pairs.jsonl', [`\ufeff${lines[0]}\r`, ...lines.slice(1, 4), '', ...lines.slice(4)]);
  const reranker = await Reranker.load(join(FIXTURE, 'reranker'), { log: null });
  const expected = await reranker.score(pairs, { maxLength: 64, batchSize: 3 });
  const expectedProbabilities = await reranker.score(pairs, { maxLength: 64, normalize: true });
  reranker.dispose();
  const output = join(work, 'scores.jsonl');
  await score([
    '--model',
    join(FIXTURE, 'reranker'),
    '--input',
    input,
    '--max-length',
    '64',
    '--batch-size',
    '3',
    '--output',
    output,
    '--backend',
    'wasm',
  ]);
  assert.equal(
    readLines(output).map((l) => l.score),
    expected,
  );
  await score(['--model', join(FIXTURE, 'reranker'), '--input', input, '--normalize', '--output', output]);
  assert.equal(
    readLines(output).map((l) => l.score),
    expectedProbabilities,
    'the default max length is capped at the model (64)',
  );
});

test('encode: one {"embedding"} line per text with the folder pooling + Normalize, float32 values exactly', async () => {
  const texts: string[] = tokenization('singles').inputs;
  const input = file(
    'texts.jsonl',
    texts.map((text) => JSON.stringify({ text })),
  );
  const embedder = await Embedder.load(join(FIXTURE, 'embedder'), { log: null });
  const expected = await embedder.encode(texts, { prefix: 'query: ', maxLength: 16 });
  embedder.dispose();
  const output = join(work, 'embeddings.jsonl');
  await encode(['--model', join(FIXTURE, 'embedder'), '--input', input, '--prefix', 'query: ', '--max-length', '16', '--output', output]);
  const embeddings = readLines(output).map((l) => l.embedding as number[]);
  assert.is(embeddings.length, texts.length);
  embeddings.forEach((embedding, i) => assert.equal(Float32Array.from(embedding), expected[i]));
  assert.ok(embeddings.every((e) => Math.abs(Math.hypot(...e) - 1) < 1e-6)); // normalised (float32 rounding)
});

test("encode: the folder's default prompt, --prompt-name, --prefix (sentence-transformers' order)", async () => {
  const texts: string[] = tokenization('singles').inputs.slice(0, 3);
  const input = file(
    'prompted.jsonl',
    texts.map((text) => JSON.stringify({ text })),
  );
  const embedder = await Embedder.load(join(FIXTURE, 'embedder'), {
    log: null,
    prompts: { query: 'query: ', document: 'passage: ' },
    defaultPromptName: 'query',
  });
  const model = join(work, 'prompted');
  await embedder.save(model);
  const expected = async (prefix: string) => (await embedder.encode(texts, { prefix })).map((e) => Array.from(e));
  const output = join(work, 'prompted-out.jsonl');
  const run = async (flags: string[]) => {
    await encode(['--model', model, '--input', input, '--output', output, ...flags]);
    return readLines(output)
      .map((l) => l.embedding as number[])
      .map((e) => Array.from(Float32Array.from(e)));
  };
  assert.equal(await run([]), await expected('query: '), 'the default prompt');
  assert.equal(await run(['--prompt-name', 'document']), await expected('passage: '));
  assert.equal(await run(['--prefix', '']), await expected(''));
  embedder.dispose();
  try {
    await run(['--prefix', 'x', '--prompt-name', 'query']);
    assert.unreachable('both given');
  } catch (error) {
    assert.match((error as Error).message, /give --prefix or --prompt-name, not both/);
  }
});

test('bad lines stop with file:line: reason and leave no output file', async () => {
  const output = join(work, 'never.jsonl');
  const attempts: [typeof score, string[], RegExp][] = [
    [score, ['{"query": "q", "passage": "p"}', '', '{"query": "q"}'], /bad\.jsonl:3: field "passage" is missing/],
    [score, ['{"query": "q", "passage": 7}'], /bad\.jsonl:1: field "passage" must be a string, got 7/],
    [score, ['{"query": "q", "passage": "p"}', '{"query": "q", "passage": "p"'], /bad\.jsonl:2: invalid JSON/],
    [encode, ['{"text": "a"}', '["text"]'], /bad\.jsonl:2: expected a JSON object with "text"/],
  ];
  for (const [command, lines, pattern] of attempts) {
    const input = file('bad.jsonl', lines);
    const model = join(FIXTURE, command === score ? 'reranker' : 'embedder');
    try {
      await command(['--model', model, '--input', input, '--output', output]);
      assert.unreachable('expected an error');
    } catch (error) {
      assert.match((error as Error).message, pattern);
    }
    assert.not.ok(existsSync(output));
  }
});

test('an --output that cannot be written stops before any work, in words naming it', async () => {
  const input = file('one.jsonl', ['{"query": "q", "passage": "p"}']);
  const missing = join(work, 'no-such-folder', 'out.jsonl');
  for (const [output, message] of [
    [missing, `--output ${missing}: cannot write there: no such file or folder`],
    [work, `--output ${work} is a folder; give a file path`],
  ]) {
    await score(['--model', join(FIXTURE, 'reranker'), '--input', input, '--output', output!]).then(
      () => assert.unreachable('expected an error'),
      (e: Error) => assert.is(e.message, message),
    );
  }
});

test('a saved folder whose weights changed after saving (checksums.json) stops score and encode, saying which file and what to do', async () => {
  const input = { score: file('pair.jsonl', ['{"query": "q", "passage": "p"}']), encode: file('text.jsonl', ['{"text": "t"}']) };
  const reranker = await Reranker.load(join(FIXTURE, 'reranker'));
  const embedder = await Embedder.load(join(FIXTURE, 'embedder'));
  const folders = { score: join(work, 'saved-reranker'), encode: join(work, 'saved-embedder') };
  await reranker.save(folders.score);
  await embedder.save(folders.encode);
  reranker.dispose();
  embedder.dispose();
  const advice =
    'checksums.json records the files as kotune saved them: copy the folder again from where it came, or delete checksums.json to load it as it is';
  // 1,000 bytes overwritten inside the reranker's weights; the embedder's cut to 1,000 bytes.
  const fd = openSync(join(folders.score, 'model.safetensors'), 'r+');
  writeSync(fd, Buffer.alloc(1000, 7), 0, 1000, 2000);
  closeSync(fd);
  truncateSync(join(folders.encode, 'model.safetensors'), 1000);
  for (const [command, folder, pattern] of [
    [
      score,
      folders.score,
      `${folders.score}: model.safetensors does not match its SHA-256 in checksums.json (corrupt or changed). ${advice}`,
    ],
    [encode, folders.encode, `${folders.encode}: model.safetensors has 1000 bytes, checksums.json says `],
  ] as const) {
    const output = join(work, 'never.jsonl');
    await command(['--model', folder, '--input', command === score ? input.score : input.encode, '--output', output]).then(
      () => assert.unreachable('expected an error'),
      (e: Error) => {
        assert.ok(e.message.startsWith(pattern), e.message);
        assert.not.match(e.message, /ENOENT|EEXIST|errno/);
      },
    );
    assert.not.ok(existsSync(output));
  }
});

test.run();
