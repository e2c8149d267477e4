/**
 * What `kotune eval` prints and writes: the metric cut-offs it computes, the model-card table (one table
 * per top-k, a row per system, columns F1 / Recall / Precision / MRR / NDCG) and the JSON summary.
 */
import type { IrCutoffs, IrMetrics } from '@kotune/metrics';

export const EVAL_KS = [1, 3, 5, 10] as const;

/** Every metric at each k of `ks`, plus the docs/evaluation.md set (mrr@10, ndcg@10, map@100). */
export function evalCutoffs(ks: readonly number[] = EVAL_KS): IrCutoffs {
  const withTen = [...new Set([...ks, 10])].sort((a, b) => a - b);
  return { accuracyAtK: ks, precisionRecallAtK: ks, mrrAtK: withTen, ndcgAtK: withTen, mapAtK: [100] };
}

/** One row of the comparison: a model (or the first-stage ranking) and its mean metrics. */
export interface SystemResult {
  name: string;
  metrics: IrMetrics;
}

const COLUMNS = [
  ['F1', 'f1'],
  ['Recall', 'recall'],
  ['Precision', 'precision'],
  ['MRR', 'mrr'],
  ['NDCG', 'ndcg'],
] as const;

function cell(value: number | undefined): string {
  return value === undefined ? '–' : value.toFixed(4);
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** Markdown in the shape of the Korean reranker model cards: `Top-k N` then `| Model | F1 | ... |`. */
export function markdownTables(systems: readonly SystemResult[], ks: readonly number[] = EVAL_KS): string {
  const blocks: string[] = [];
  for (const k of ks) {
    const rows = systems.map((s) => `| ${escapeCell(s.name)} | ${COLUMNS.map(([, key]) => cell(s.metrics[`${key}@${k}`])).join(' | ')} |`);
    blocks.push(
      [
        `**Top-k ${k}**`,
        '',
        `| Model | ${COLUMNS.map(([title]) => title).join(' | ')} |`,
        `| --- | ${COLUMNS.map(() => '---:').join(' | ')} |`,
        ...rows,
      ].join('\n'),
    );
  }
  return `${blocks.join('\n\n')}\n`;
}

export function chartSeries(
  systems: readonly SystemResult[],
  ks: readonly number[] = EVAL_KS,
): { labels: string[]; datasets: { label: string; values: number[] }[] } {
  const keys = ks.flatMap((k) => COLUMNS.map(([title, key]) => ({ label: `${title}@${k}`, key: `${key}@${k}` })));
  return {
    labels: keys.map((k) => k.label),
    datasets: systems.map((s) => ({ label: s.name, values: keys.map((k) => s.metrics[k.key] ?? 0) })),
  };
}
