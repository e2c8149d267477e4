/**
 * Grouped bar chart of the evaluation (one group per metric@k, one bar per system), drawn with Chart.js on
 * a @napi-rs/canvas canvas: no browser, no animation, fixed size.
 */
import { createCanvas } from '@napi-rs/canvas';
import { Chart, registerables, type ChartConfiguration } from 'chart.js';
import { writeFileAtomic } from '@kotune/metrics';
import { chartSeries, EVAL_KS, type SystemResult } from './report.ts';

Chart.register(...registerables);

const COLORS = ['#7f7f7f', '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#bcbd22', '#17becf'];

export function renderBarChart(
  systems: readonly SystemResult[],
  { title = 'retrieval metrics', ks = EVAL_KS as readonly number[], width = 1400, height = 600 } = {},
): Buffer {
  const { labels, datasets } = chartSeries(systems, ks);
  const canvas = createCanvas(width, height);
  const context = canvas.getContext('2d');
  context.fillStyle = '#ffffff'; // a transparent PNG is unreadable in dark image viewers
  context.fillRect(0, 0, width, height);
  const config: ChartConfiguration<'bar', number[], string> = {
    type: 'bar',
    data: {
      labels,
      datasets: datasets.map((d, i) => ({ label: d.label, data: d.values, backgroundColor: COLORS[i % COLORS.length] })),
    },
    options: {
      animation: false,
      responsive: false,
      plugins: { title: { display: true, text: title }, legend: { display: true, position: 'top' } },
      scales: { y: { min: 0, max: 1, title: { display: true, text: 'mean over queries' } } },
    },
  };
  const chart = new Chart(canvas as unknown as HTMLCanvasElement, config);
  try {
    return canvas.toBuffer('image/png');
  } finally {
    chart.destroy();
  }
}

export function writeBarChart(path: string, systems: readonly SystemResult[], options: Parameters<typeof renderBarChart>[1] = {}): void {
  writeFileAtomic(path, renderBarChart(systems, options));
}
