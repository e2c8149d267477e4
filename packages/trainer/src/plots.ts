/**
 * PNG charts of a run, drawn from `metrics.jsonl` with Chart.js on @napi-rs/canvas (no browser): training
 * loss, learning rate, and the evaluation metrics, each against the optimizer step. Redrawn at every log and
 * eval, each file written through a temporary name so that an image viewer never shows half a PNG.
 *
 * The eval chart shows only the metrics one reads a run by (`EVAL_PLOT_METRICS` and `metric_for_best_model`,
 * drawn thicker), on a fixed 0–1 axis, each labelled with its last value; metrics.jsonl keeps all of them.
 */
import { createCanvas } from '@napi-rs/canvas';
import { Chart, registerables, type ChartConfiguration } from 'chart.js';
import { join } from 'node:path';
import { writeFileAtomic } from '@kotune/metrics';
import { isEvalLine, type EvalLogLine, type MetricsLine } from './metrics-log.ts';

Chart.register(...registerables);

export const PLOT_FILES = { loss: 'plot-loss.png', learningRate: 'plot-learning-rate.png', eval: 'plot-eval.png' } as const;

const WIDTH = 900;
const HEIGHT = 450;
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** The eval chart's metrics besides `metric_for_best_model`: rank of the first hit, graded ranking, and recall. */
export const EVAL_PLOT_METRICS = ['mrr@10', 'ndcg@10', 'recall@1', 'recall@5'] as const;

export interface Series {
  label: string;
  points: { x: number; y: number }[];
  /** Drawn thicker (the metric that picks the best checkpoint). */
  emphasis?: boolean;
}

/** A PNG line chart of `series` against the optimizer step (also drawn by the learning bench). */
export function lineChartPng(title: string, yLabel: string, series: Series[], yRange?: { min: number; max: number }): Buffer {
  const canvas = createCanvas(WIDTH, HEIGHT);
  const context = canvas.getContext('2d');
  context.fillStyle = '#ffffff'; // PNGs are transparent by default, unreadable in dark viewers
  context.fillRect(0, 0, WIDTH, HEIGHT);
  const config: ChartConfiguration<'line', { x: number; y: number }[]> = {
    type: 'line',
    data: {
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.points,
        borderColor: COLORS[i % COLORS.length],
        backgroundColor: COLORS[i % COLORS.length],
        borderWidth: s.emphasis ? 4 : 1.5,
        pointRadius: s.points.length > 60 ? 0 : s.emphasis ? 3.5 : 2,
        tension: 0,
      })),
    },
    options: {
      animation: false,
      responsive: false,
      parsing: false,
      plugins: {
        title: { display: true, text: title, font: { size: 16 } },
        legend: { display: series.length > 1, labels: { font: { size: 14 }, boxWidth: 24 } },
      },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'step' } },
        y: { type: 'linear', title: { display: true, text: yLabel }, ...yRange },
      },
    },
  };
  // Chart.js takes any object with getContext('2d'); the napi canvas is one.
  const chart = new Chart(canvas as unknown as HTMLCanvasElement, config);
  try {
    return canvas.toBuffer('image/png');
  } finally {
    chart.destroy();
  }
}

/** The eval chart's lines: `bestMetric` first (emphasised), then `EVAL_PLOT_METRICS`, each labelled with its last value. */
export function evalPlotSeries(evals: readonly EvalLogLine[], bestMetric: string): Series[] {
  const names = [bestMetric, ...EVAL_PLOT_METRICS.filter((name) => name !== bestMetric)];
  return names
    .map((name) => {
      const points = evals.filter((l) => Number.isFinite(l.eval[name])).map((l) => ({ x: l.step, y: l.eval[name]! }));
      const last = points.at(-1)?.y;
      const label = `${name}${name === bestMetric ? ' (picks the best checkpoint)' : ''}${last === undefined ? '' : `: ${last.toFixed(4)}`}`;
      return { label, points, emphasis: name === bestMetric };
    })
    .filter((s) => s.points.length > 0);
}

/** Draws the charts that `lines` have data for into `dir`; returns the paths written. */
export function writePlots(dir: string, lines: readonly MetricsLine[], { bestMetric = 'ndcg@10' }: { bestMetric?: string } = {}): string[] {
  const train = lines.filter((l) => !isEvalLine(l)) as Exclude<MetricsLine, { eval: unknown }>[];
  const evals = lines.filter(isEvalLine);
  const written: string[] = [];
  const write = (file: string, png: Buffer) => {
    const path = join(dir, file);
    writeFileAtomic(path, png);
    written.push(path);
  };
  if (train.length > 0) {
    write(
      PLOT_FILES.loss,
      lineChartPng('training loss', 'loss', [{ label: 'loss', points: train.map((l) => ({ x: l.step, y: l.loss })) }]),
    );
    write(
      PLOT_FILES.learningRate,
      lineChartPng('learning rate', 'learning rate', [
        { label: 'learning_rate', points: train.map((l) => ({ x: l.step, y: l.learning_rate })) },
      ]),
    );
  }
  if (evals.length > 0) {
    const series = evalPlotSeries(evals, bestMetric);
    write(
      PLOT_FILES.eval,
      lineChartPng(`evaluation (${evals.length} evals; last values in the legend)`, 'mean over queries', series, { min: 0, max: 1 }),
    );
  }
  return written;
}
