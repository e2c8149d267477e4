import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateRun, readQrels, readRun, writeQrels, writeRun, type Run } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-trec-'));
function file(name: string, text: string) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
const fixture = JSON.parse(readFileSync(new URL('../../../test/fixtures/xlmr-tiny/cases.json', import.meta.url), 'utf8')).ir_metrics as {
  queries: { qid: string; relevant: string[]; ranked: [string, number][] }[];
  expected_mean: Record<string, number>;
};

test('qrels and run read blank lines, CRLF and a BOM; relevance ≤ 0 is not relevant', () => {
  const qrels = readQrels(file('q.txt', '\ufeffq1 0 d1 1\r\n\nq1 0 d2 0\nq1 0 d3 -1\nq2 0 d9 2\n'));
  assert.equal(
    [...qrels.get('q1')!],
    [
      ['d1', 1],
      ['d2', 0],
      ['d3', -1],
    ],
  );
  const run = readRun(file('r.txt', 'q1 Q0 d2 1 0.9 t\r\nq1 Q0 d1 2 0.8 t\n\nq1 Q0 d2 3 0.1 t\n'));
  assert.equal(run.get('q1'), [
    { id: 'd2', score: 0.9 },
    { id: 'd1', score: 0.8 },
  ]); // the second d2 line is ignored
  const result = evaluateRun(qrels, run);
  assert.is(result.evaluated, 2);
  assert.equal(result.missingFromRun, ['q2']);
  assert.ok(Math.abs(result.means['mrr@10'] - 0.25) <= 1e-12); // q1: 1/2, q2 missing: 0
});

test('malformed lines name file and line', () => {
  assert.throws(
    () => readQrels(file('bad1.txt', 'q1 0 d1 1\n\nq1 0 d2\n')),
    (e: Error) => e.message === `${join(dir, 'bad1.txt')}:3: expected 4 fields "qid iter docid relevance", got 3`,
  );
  assert.throws(() => readQrels(file('bad2.txt', 'q1 0 d1 yes\n')), /bad2\.txt:1: relevance must be an integer, got 'yes'/);
  assert.throws(() => readQrels(file('bad3.txt', 'q1 0 d1 1\nq1 0 d1 0\n')), /bad3\.txt:2: document 'd1' is judged twice/);
  assert.throws(() => readRun(file('bad4.txt', 'q1 Q0 d1 1 0.5\n')), /bad4\.txt:1: expected 6 fields/);
  assert.throws(
    () => readRun(file('bad5.txt', 'q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 nan t\n')),
    /bad5\.txt:2: score must be a finite number, got 'nan'/,
  );
  assert.throws(() => readRun(file('bad6.txt', 'q1 Q0 d1 first 0.5 t\n')), /bad6\.txt:1: rank must be an integer/);
  assert.throws(() => readRun(join(dir, 'absent.txt')), /absent\.txt: cannot read/);
});

test('the fixture written as TREC files and read back gives the fixture means; ranks are by score, not by rank column', () => {
  const qrels = new Map(fixture.queries.map((q) => [q.qid, new Map(q.relevant.map((d) => [d, 1]))]));
  // Reverse each list so that file order disagrees with score order.
  const run: Run = new Map(fixture.queries.map((q) => [q.qid, [...q.ranked].reverse().map(([id, score]) => ({ id, score }))]));
  const qrelsPath = join(dir, 'fixture.qrels');
  const runPath = join(dir, 'fixture.run');
  writeQrels(qrelsPath, qrels);
  writeRun(runPath, run, 'test');
  const firstLine = readFileSync(runPath, 'utf8').split('\n')[0];
  assert.is(firstLine, 'q1 Q0 d01 1 1 test');
  const result = evaluateRun(readQrels(qrelsPath), readRun(runPath));
  assert.is(result.evaluated, 7); // q8 has no relevant doc: not in the qrels written here, not in the run's evaluation
  assert.equal(result.notInQrels, ['q8']);
  for (const [name, value] of Object.entries(fixture.expected_mean)) {
    const ours = result.means[name.replace(/^hit_rate@/, 'accuracy@')];
    assert.ok(Math.abs(ours - value) <= 1e-12, `${name}: ${ours} vs ${value}`); // float64 arithmetic
  }
  assert.not.ok(
    readdirSync(dir).some((f) => f.includes('.tmp-')),
    'no temporary file left',
  );
});

test.run();
