import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateRankings } from '@kotune/metrics';
import { evalCutoffs } from '@kotune/eval';
import {
  EVAL_PLOT_METRICS,
  evalPlotSeries,
  MetricsLog,
  PLOT_FILES,
  Progress,
  formatDuration,
  readMetricsLog,
  writePlots,
  type EvalLogLine,
  type MetricsLine,
} from '../src/index.ts';

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
  assert.equal(
    readMetricsLog(path).map((l) => l.step),
    [1, 2],
  );
  appendFileSync(path, '{"step": 3, "epo'); // killed mid-write
  const reopened = new MetricsLog(path);
  assert.equal(
    reopened.all.map((l) => l.step),
    [1, 2],
  );
  reopened.append(trainLine(3));
  assert.equal(
    readMetricsLog(path).map((l) => l.step),
    [1, 2, 3],
    'the next line starts clean',
  );
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
  assert.equal(
    writePlots(dir, lines).map((p) => p.slice(dir.length + 1)),
    [PLOT_FILES.loss, PLOT_FILES.learningRate],
  );
  assert.not.ok(existsSync(join(dir, PLOT_FILES.eval)), 'no eval plot without eval lines');
  const before = readFileSync(join(dir, PLOT_FILES.loss));
  lines.push({ step: 2, eval: { 'mrr@10': 0.4, 'ndcg@10': 0.5 } }, { step: 4, eval: { 'mrr@10': 0.6, 'ndcg@10': 0.7 } }, trainLine(5));
  const written = writePlots(dir, lines);
  assert.is(written.length, 3);
  for (const path of written) assert.equal(pngSize(path), [900, 450]);
  assert.not.equal(readFileSync(join(dir, PLOT_FILES.loss)), before, 'the loss plot was redrawn with the new step');
  assert.equal(
    readdirSync(dir).filter((f) => f.includes('.tmp')),
    [],
    'no temporary files left',
  );
});

test('progress off a TTY: a plain line with elapsed and ETA once the interval has passed, not at every step', () => {
  let out = '';
  const stream = { write: (s: string) => ((out += s), true), isTTY: false } as unknown as NodeJS.WritableStream;
  let clock = 0;
  const progress = new Progress({ totalSteps: 100, startStep: 10, stream, plainIntervalSeconds: 30, now: () => clock });
  const stats = { loss: 0.5, learningRate: 1e-5, samplesPerSecond: 4 };
  clock = 29_000;
  progress.update(20, stats);
  assert.is(out, '', 'not before 30 s');
  clock = 30_000; // 10 steps in 30 s -> 3 s a step, 80 left
  progress.update(20, stats);
  assert.is(out, 'step 20/100 20% loss 0.5000 lr 1.00e-5 4.0 samples/s elapsed 0:30 ETA 4:00\n');
  clock = 45_000;
  progress.update(25, stats);
  assert.is(out.split('\n').length, 2, 'the next one waits another 30 s');
  clock = 61_000;
  progress.update(30, stats);
  assert.match(out, /\nstep 30\/100 30% .* elapsed 1:01 ETA 3:34\n$/);
});

test('the eval plot draws metric_for_best_model (emphasised) and MRR@10 / NDCG@10 / Recall@1,5 only, labelled with their last values', async () => {
  // Real eval lines: every metric kotune computes (25 of them), as a run logs them.
  const evals: EvalLogLine[] = [2, 4, 6].map((step) => ({
    step,
    eval: evaluateRankings(
      [
        { ranked: ['a', 'b', 'c'], relevant: step > 2 ? ['a'] : ['c'] },
        { ranked: ['x', 'y'], relevant: ['y'] },
      ],
      evalCutoffs(),
    ).means,
  }));
  assert.ok(Object.keys(evals[0]!.eval).length > 20);
  const series = evalPlotSeries(evals, 'accuracy@3');
  assert.equal(
    series.map((s) => s.label.split(/[ :]/)[0]),
    ['accuracy@3', ...EVAL_PLOT_METRICS],
  );
  assert.equal(
    series.map((s) => s.emphasis),
    [true, false, false, false, false],
  );
  assert.is(series[0]!.label, 'accuracy@3 (picks the best checkpoint): 1.0000');
  assert.is(series.find((s) => s.label.startsWith('mrr@10'))!.label, `mrr@10: ${evals[2]!.eval['mrr@10']!.toFixed(4)}`);
  assert.equal(
    evalPlotSeries(evals, 'mrr@10').map((s) => s.label.split(/[ :]/)[0]),
    [...EVAL_PLOT_METRICS],
    'no metric twice',
  );
  const [path] = writePlots(dir, evals, { bestMetric: 'accuracy@3' });
  assert.equal(pngSize(path!), [900, 450]);
});

test.run();
