/**
 * PNG charts of a run, drawn from `metrics.jsonl` with Chart.js on @napi-rs/canvas (no browser): training
 * loss, learning rate, and the evaluation metrics, each against the optimizer step. Redrawn at every log and
 * eval, each file written through a temporary name so that an image viewer never shows half a PNG.
 */
import { createCanvas } from '@napi-rs/canvas';
import { Chart, registerables, type ChartConfiguration } from 'chart.js';
import { join } from 'node:path';
import { writeFileAtomic } from '@kotune/metrics';
import { isEvalLine, type MetricsLine } from './metrics-log.ts';

Chart.register(...registerables);

export const PLOT_FILES = { loss: 'plot-loss.png', learningRate: 'plot-learning-rate.png', eval: 'plot-eval.png' } as const;

const WIDTH = 900;
const HEIGHT = 450;
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export interface Series {
  label: string;
  points: { x: number; y: number }[];
}

/** A PNG line chart of `series` against the optimizer step (also drawn by the learning bench). */
export function lineChartPng(title: string, yLabel: string, series: Series[]): Buffer {
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
        borderWidth: 1.5,
        pointRadius: s.points.length > 60 ? 0 : 2,
        tension: 0,
      })),
    },
    options: {
      animation: false,
      responsive: false,
      parsing: false,
      plugins: { title: { display: true, text: title }, legend: { display: series.length > 1 } },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'step' } },
        y: { type: 'linear', title: { display: true, text: yLabel } },
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

/** Draws the charts that `lines` have data for into `dir`; returns the paths written. */
export function writePlots(dir: string, lines: readonly MetricsLine[]): string[] {
  const train = lines.filter((l) => !isEvalLine(l)) as Exclude<MetricsLine, { eval: unknown }>[];
  const evals = lines.filter(isEvalLine);
  const written: string[] = [];
  const write = (file: string, png: Buffer) => {
    const path = join(dir, file);
    writeFileAtomic(path, png);
    written.push(path);
  };
  if (train.length > 0) {
    write(PLOT_FILES.loss, lineChartPng('training loss', 'loss', [{ label: 'loss', points: train.map((l) => ({ x: l.step, y: l.loss })) }]));
    write(PLOT_FILES.learningRate, lineChartPng('learning rate', 'learning rate',
      [{ label: 'learning_rate', points: train.map((l) => ({ x: l.step, y: l.learning_rate })) }]));
  }
  if (evals.length > 0) {
    const names = [...new Set(evals.flatMap((l) => Object.keys(l.eval)))].sort();
    const series = names.map((name) => ({
      label: name,
      points: evals.filter((l) => Number.isFinite(l.eval[name])).map((l) => ({ x: l.step, y: l.eval[name] })),
    }));
    write(PLOT_FILES.eval, lineChartPng('evaluation', 'metric', series));
  }
  return written;
}
