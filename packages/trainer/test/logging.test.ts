import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsLog, PLOT_FILES, Progress, formatDuration, readMetricsLog, writePlots, type MetricsLine } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-logging-'));

function trainLine(step: number): MetricsLine {
  return { step, epoch: step / 10, loss: 1 / step, learning_rate: 1e-5 * step, grad_norm: 0.5, samples_per_second: 12 };
}

test('metrics.jsonl: appended one object a line; truncateAfter drops what a resumed run repeats; a torn line is dropped', () => {
  const path = join(dir, 'metrics.jsonl');
  const log = new MetricsLog(path);
  for (let step = 1; step <= 4; step++) log.append(trainLine(step));
  log.append({ step: 4, eval: { 'mrr@10': 0.5 } });
  assert.equal(readMetricsLog(path), log.all);
  assert.is(readFileSync(path, 'utf8').trim().split('\n').length, 5);
  log.truncateAfter(2);
  assert.equal(readMetricsLog(path).map((l) => l.step), [1, 2]);
  appendFileSync(path, '{"step": 3, "epo'); // killed mid-write
  const reopened = new MetricsLog(path);
  assert.equal(reopened.all.map((l) => l.step), [1, 2]);
  reopened.append(trainLine(3));
  assert.equal(readMetricsLog(path).map((l) => l.step), [1, 2, 3], 'the next line starts clean');
});

test('progress: plain lines off a TTY, a redrawn bar with ETA on one', () => {
  let out = '';
  const stream = { write: (s: string) => ((out += s), true), isTTY: false } as unknown as NodeJS.WritableStream;
  let clock = 0;
  const plain = new Progress({ totalSteps: 10, stream, now: () => clock });
  plain.update(1, { loss: 0.5, learningRate: 1e-5, samplesPerSecond: 3 });
  assert.is(out, '', 'no bar off a TTY');
  plain.line('step 1 loss 0.5');
  assert.is(out, 'step 1 loss 0.5\n');

  out = '';
  clock = 0;
  const tty = new Progress({ totalSteps: 10, startStep: 2, stream, tty: true, now: () => clock });
  clock = 4000; // 2 steps in 4 s -> 2 s a step, 6 left
  tty.update(4, { loss: 0.25, learningRate: 2.5e-6, samplesPerSecond: 8 });
  assert.is(out, '\r\x1b[2Kstep 4/10 [========>           ] 40% loss 0.2500 lr 2.50e-6 8.0 samples/s ETA 0:12');
  tty.line('logged');
  assert.ok(out.endsWith('\r\x1b[2Klogged\nstep 4/10 [========>           ] 40% loss 0.2500 lr 2.50e-6 8.0 samples/s ETA 0:12'));
  tty.finish();
  assert.ok(out.endsWith('\n'));
  assert.is(formatDuration(3725), '1:02:05');
  assert.is(formatDuration(NaN), '?');
});

function pngSize(path: string): [number, number] {
  const bytes = readFileSync(path);
  assert.equal([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

test('plots: loss, learning-rate and eval PNGs, written atomically and redrawn', () => {
  const lines: MetricsLine[] = [1, 2, 3, 4].map(trainLine);
  assert.equal(writePlots(dir, lines).map((p) => p.slice(dir.length + 1)), [PLOT_FILES.loss, PLOT_FILES.learningRate]);
  assert.not.ok(existsSync(join(dir, PLOT_FILES.eval)), 'no eval plot without eval lines');
  const before = readFileSync(join(dir, PLOT_FILES.loss));
  lines.push({ step: 2, eval: { 'mrr@10': 0.4, 'ndcg@10': 0.5 } }, { step: 4, eval: { 'mrr@10': 0.6, 'ndcg@10': 0.7 } }, trainLine(5));
  const written = writePlots(dir, lines);
  assert.is(written.length, 3);
  for (const path of written) assert.equal(pngSize(path), [900, 450]);
  assert.not.equal(readFileSync(join(dir, PLOT_FILES.loss)), before, 'the loss plot was redrawn with the new step');
  assert.equal(readdirSync(dir).filter((f) => f.includes('.tmp')), [], 'no temporary files left');
});

test.run();
