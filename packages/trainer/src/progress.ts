/**
 * What the terminal shows while training: on a TTY one progress line redrawn in place
 * (`step 120/400 [=====>    ] 30% loss 0.4123 lr 4.1e-6 12.5 samples/s ETA 3:05`), with log lines printed
 * above it; elsewhere (CI, a file, a pipe) the log lines and, every `plainIntervalSeconds`, a plain line
 * (`step 120/400 30% loss 0.4123 lr 4.10e-6 12.5 samples/s elapsed 1:20 ETA 3:05`), so that a log file says
 * how far a run is even between two `logging_steps`.
 */
export interface StepStats {
  loss: number;
  learningRate: number;
  samplesPerSecond: number;
}

export interface ProgressOptions {
  totalSteps: number;
  /** The step training starts after (non-zero when resuming), so that the ETA counts only this run. */
  startStep?: number;
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Force the TTY behaviour on or off (default: the stream's `isTTY`). */
  tty?: boolean;
  /** Off a TTY: seconds between two progress lines (default 30). */
  plainIntervalSeconds?: number;
  now?: () => number;
}

/** `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class Progress {
  private readonly total: number;
  private readonly startStep: number;
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly plainInterval: number;
  private lastPlainAt: number;
  private barShown = false;
  private lastBar = '';

  constructor(options: ProgressOptions) {
    this.total = options.totalSteps;
    this.startStep = options.startStep ?? 0;
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? Boolean(this.stream.isTTY);
    this.now = options.now ?? (() => performance.now());
    this.startedAt = this.now();
    this.plainInterval = (options.plainIntervalSeconds ?? 30) * 1000;
    this.lastPlainAt = this.startedAt;
  }

  /** Seconds left, extrapolated from the steps this run has done. */
  eta(step: number): number {
    const done = step - this.startStep;
    if (done <= 0) return NaN;
    const perStep = (this.now() - this.startedAt) / 1000 / done;
    return perStep * (this.total - step);
  }

  /** The progress line for `step` (exposed for tests; `update` draws it). */
  bar(step: number, stats: StepStats, width = 20): string {
    const fraction = Math.min(1, step / this.total);
    const filled = Math.round(fraction * width);
    const arrow = filled >= width ? '='.repeat(width) : `${'='.repeat(filled)}>${' '.repeat(width - filled - 1)}`;
    return (
      `step ${step}/${this.total} [${arrow}] ${Math.floor(fraction * 100)}% loss ${stats.loss.toFixed(4)} ` +
      `lr ${stats.learningRate.toExponential(2)} ${stats.samplesPerSecond.toFixed(1)} samples/s ETA ${formatDuration(this.eta(step))}`
    );
  }

  /** The progress line off a TTY, with the time since this run started (exposed for tests; `update` prints it). */
  plain(step: number, stats: StepStats): string {
    return (
      `step ${step}/${this.total} ${Math.floor(Math.min(1, step / this.total) * 100)}% loss ${stats.loss.toFixed(4)} ` +
      `lr ${stats.learningRate.toExponential(2)} ${stats.samplesPerSecond.toFixed(1)} samples/s ` +
      `elapsed ${formatDuration((this.now() - this.startedAt) / 1000)} ETA ${formatDuration(this.eta(step))}`
    );
  }

  /** Redraws the progress line on a TTY; elsewhere prints it once `plainIntervalSeconds` have passed since the last. */
  update(step: number, stats: StepStats): void {
    if (!this.tty) {
      const now = this.now();
      if (now - this.lastPlainAt < this.plainInterval) return;
      this.lastPlainAt = now;
      this.stream.write(`${this.plain(step, stats)}\n`);
      return;
    }
    let text = this.bar(step, stats);
    const columns = this.stream.columns ?? 0;
    if (columns > 10 && text.length >= columns) text = text.slice(0, columns - 1);
    this.lastBar = text;
    this.stream.write(`\r\x1b[2K${text}`);
    this.barShown = true;
  }

  /** Prints a permanent line (a log or eval line), above the progress line on a TTY. */
  line(text: string): void {
    if (this.tty && this.barShown) {
      this.stream.write(`\r\x1b[2K${text}\n${this.lastBar}`);
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /** Leaves the progress line in place and moves to a fresh line. */
  finish(): void {
    if (this.tty && this.barShown) this.stream.write('\n');
    this.barShown = false;
  }
}
