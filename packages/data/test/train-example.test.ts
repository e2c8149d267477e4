import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadLineTally, DataError, parseTrainExample, readTrainExamples } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-train-'));
function file(name: string, lines: string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}
async function collect(paths: string[], options = {}) {
  const out = [];
  for await (const example of readTrainExamples(paths, options)) out.push(example);
  return out;
}

const cases: [string, string, string | undefined][] = [
  ['[1,2]', 'expected a JSON object, got an array', undefined],
  ['"text"', 'expected a JSON object, got a string', undefined],
  ['{"pos":["a"],"neg":[]}', 'missing "query"', 'query'],
  ['{"query":3,"pos":["a"]}', 'query is a number, expected a string', 'query'],
  ['{"query":"  ","pos":["a"]}', 'query is empty', 'query'],
  ['{"query":"q","neg":["b"]}', 'missing "pos"', 'pos'],
  ['{"query":"q","pos":"a"}', 'pos is a string, expected an array of strings', 'pos'],
  ['{"query":"q","pos":[]}', 'pos is empty', 'pos'],
  ['{"query":"q","pos":["a","b",7]}', 'pos[2] is a number, expected a string', 'pos'],
  ['{"query":"q","pos":["a"],"neg":{"x":1}}', 'neg is an object, expected an array of strings', 'neg'],
  ['{"query":"q","pos":["a"],"neg":["b",null]}', 'neg[1] is null, expected a string', 'neg'],
  ['{"query":"q","pos":["a",""],"neg":["b"]}', 'pos[1] is an empty string', 'pos'],
  ['{"query":"q","pos":["a"],"neg":["b"," \\n "]}', 'neg[1] is an empty string', 'neg'],
  ['{"query":"q","pos":["a","b","c"],"neg":[],"pos_scores":[1,2]}', 'pos_scores has 2 items but pos has 3', 'pos_scores'],
  ['{"query":"q","pos":["a"],"neg":["b"],"pos_scores":0.5}', 'pos_scores is a number, expected an array of numbers', 'pos_scores'],
  ['{"query":"q","pos":["a"],"neg":["b","c"],"neg_scores":["0.1",0.2]}', 'neg_scores[0] is a string, expected a number', 'neg_scores'],
  ['{"query":"q","pos":["a"],"neg":["b","c"],"neg_scores":[0.1,1e999]}', 'neg_scores[1] is not a finite number', 'neg_scores'],
  ['{"query":"q","pos":["a"],"prompt":["x"]}', 'prompt is an array, expected a string', 'prompt'],
  ['{"query":"q","pos":["a"],"query_prompt":1}', 'query_prompt is a number, expected a string', 'query_prompt'],
];

for (const [json, detail, field] of cases) {
  test(`invalid line: ${detail}`, async () => {
    const path = file('bad.jsonl', ['{"query":"ok","pos":["p"],"neg":["n"]}', '', json]);
    try {
      await collect([path]);
      assert.unreachable('should have thrown');
    } catch (error) {
      assert.instance(error, DataError);
      const e = error as DataError;
      assert.is(e.message, `${path}:3: ${detail}`);
      assert.is(e.line, 3);
      assert.is(e.path, path);
      assert.is(e.field, field);
    }
  });
}

test('valid line: optional fields read, unknown ones ignored, missing neg is []', () => {
  const example = parseTrainExample(
    {
      query: 'q',
      pos: ['a', 'b'],
      neg: ['c'],
      pos_scores: [1, 0.5],
      neg_scores: [-2],
      prompt: 'P: ',
      query_prompt: 'Q',
      passage_prompt: 'D',
      type: 'x',
    },
    'f.jsonl',
    7,
  );
  assert.equal(example, {
    query: 'q',
    pos: ['a', 'b'],
    neg: ['c'],
    posScores: [1, 0.5],
    negScores: [-2],
    prompt: 'P: ',
    queryPrompt: 'Q',
    passagePrompt: 'D',
    path: 'f.jsonl',
    line: 7,
  });
  assert.equal(parseTrainExample({ query: 'q', pos: ['a'] }, 'f.jsonl', 1).neg, []);
});

test('several files are read in order with their own line numbers', async () => {
  const a = file('a.jsonl', ['{"query":"a1","pos":["x"]}', '{"query":"a2","pos":["x"]}']);
  const b = file('b.jsonl', ['', '{"query":"b2","pos":["x"]}']);
  const examples = await collect([a, b]);
  assert.equal(
    examples.map((e) => `${e.path === a ? 'a' : 'b'}:${e.line}:${e.query}`),
    ['a:1:a1', 'a:2:a2', 'b:2:b2'],
  );
});

test('skipBadLines counts bad lines by reason and keeps the good ones', async () => {
  const path = file('mixed.jsonl', [
    '{"query":"q1","pos":["a"]}',
    '{"query":"q2","pos":[]}',
    'not json',
    '{"query":"q4","pos":["a", 1]}',
    '{"query":"q5","pos":[]}',
    '{"query":"q6","pos":["b"]}',
  ]);
  const tally = new BadLineTally(2);
  const examples = await collect([path], { skipBadLines: true, onBadLine: (e: DataError) => tally.add(e) });
  assert.equal(
    examples.map((e) => e.line),
    [1, 6],
  );
  assert.is(tally.count, 4);
  assert.equal(
    [...tally.byReason],
    [
      ['empty pos', 2],
      ['invalid JSON', 1],
      ['pos item not a string', 1],
    ],
  );
  const summary = tally.summary().split('\n');
  assert.is(summary[0], 'skipped 4 bad lines: 2 empty pos, 1 invalid JSON, 1 pos item not a string');
  assert.is(summary[1], `  ${path}:2: pos is empty`);
  assert.is(summary[2], `  ${path}:3: invalid JSON at column 2 (Unexpected token 'o')`);
  assert.is(summary.length, 3);
  assert.is(new BadLineTally().summary(), 'no bad lines');
});

test.run();
