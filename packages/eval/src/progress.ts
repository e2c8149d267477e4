/**
 * A one-line progress bar on stderr (`encoding corpus  [#####.....]  512/1024  3.2 s`): redrawn in place on
 * a terminal, printed every 10% otherwise so that logs stay short. Silent when `enabled` is false.
 */
export class ProgressBar {
  private done = 0;
  private lastDecile = -1;
  private readonly started = Date.now();
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly enabled = true,
  ) {
    this.tty = Boolean(process.stderr.isTTY);
  }

  update(done: number): void {
    if (!this.enabled) return;
    this.done = Math.min(done, this.total);
    const fraction = this.total > 0 ? this.done / this.total : 1;
    const decile = Math.floor(fraction * 10);
    if (!this.tty && decile === this.lastDecile && this.done < this.total) return;
    this.lastDecile = decile;
    const width = 30;
    const filled = Math.round(fraction * width);
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    const line = `${this.label}  [${'#'.repeat(filled)}${'.'.repeat(width - filled)}]  ${this.done}/${this.total}  ${seconds} s`;
    process.stderr.write(this.tty ? `\r${line}` : `${line}\n`);
  }

  add(count: number): void {
    this.update(this.done + count);
  }

  finish(): void {
    if (!this.enabled) return;
    if (this.done < this.total) this.update(this.total);
    if (this.tty) process.stderr.write('\n');
  }
}
