/**
 * `metrics.jsonl` in the run folder (docs/run-folder.md): one JSON object a line, appended as training goes.
 * Training lines `{step, epoch, loss, learning_rate, grad_norm, samples_per_second}`; evaluation lines
 * `{step, eval: {"mrr@10": ..., ...}}`. `step` counts optimizer steps from 1.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '@kotune/metrics';

/** The log's name in the run folder. */
export const METRICS_FILE = 'metrics.jsonl';

export interface TrainLogLine {
  step: number;
  epoch: number;
  loss: number;
  learning_rate: number;
  grad_norm: number;
  samples_per_second: number;
}

export interface EvalLogLine {
  step: number;
  eval: Record<string, number>;
}

export type MetricsLine = TrainLogLine | EvalLogLine;

export function isEvalLine(line: MetricsLine): line is EvalLogLine {
  return 'eval' in line;
}

export class MetricsLog {
  private readonly lines: MetricsLine[];

  /** Opens (or starts) the log at `path`, keeping what an earlier run wrote. */
  constructor(readonly path: string) {
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    this.lines = parseMetricsLog(text, path);
    // A run killed mid-write leaves a torn last line; rewrite so that the next append starts a fresh line.
    if (text !== '' && !text.endsWith('\n')) this.rewrite();
  }

  /** Everything logged so far, oldest first. */
  get all(): readonly MetricsLine[] {
    return this.lines;
  }

  append(line: MetricsLine): void {
    appendFileSync(this.path, `${JSON.stringify(line)}\n`);
    this.lines.push(line);
  }

  /**
   * Drops the lines after `step`: a resumed run repeats the steps that followed its checkpoint, and their
   * lines from the interrupted run would otherwise appear twice.
   */
  truncateAfter(step: number): void {
    const kept = this.lines.filter((line) => line.step <= step);
    if (kept.length === this.lines.length) return;
    this.lines.splice(0, this.lines.length, ...kept);
    this.rewrite();
  }

  private rewrite(): void {
    writeFileAtomic(this.path, this.lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
  }
}

/** Reads a `metrics.jsonl`; a torn last line (a run killed mid-write) is ignored. */
export function readMetricsLog(path: string): MetricsLine[] {
  return parseMetricsLog(readFileSync(path, 'utf8'), path);
}

/** The lines of a `metrics.jsonl`'s `text`; `path` names it in errors. */
function parseMetricsLog(text: string, path: string): MetricsLine[] {
  const rows = text.split('\n');
  const out: MetricsLine[] = [];
  rows.forEach((row, i) => {
    if (row.trim() === '') return;
    try {
      out.push(JSON.parse(row) as MetricsLine);
    } catch (error) {
      if (i === rows.length - 1) return;
      throw new Error(`${path}:${i + 1}: invalid JSON (${(error as Error).message})`);
    }
  });
  return out;
}
