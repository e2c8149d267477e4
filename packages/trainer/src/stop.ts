/**
 * Graceful stop. The first SIGINT (Ctrl-C) or SIGTERM asks the training loop to stop after the optimizer step
 * it is in; the loop then saves a checkpoint of that step and ends with `TrainingStoppedError` (exit 130 or
 * 143). A second signal stops at once: one that arrives while the first is being handled exits through
 * `onSecond`; after that, the default action is restored, which ends the process even in the middle of a
 * computation (Node runs signal listeners only between two tasks, and a training step is one long task). The run
 * folder then keeps the previous checkpoint and a stale lock, which the next run takes over.
 *
 * A wrapper that starts the CLI must let the signal reach this process and wait for it: `node --import tsx`,
 * pnpm and npm do; the `tsx` command does not (it kills a child that does not answer within 60 ms).
 */
import { constants } from 'node:os';

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

export class StopRequest {
  /** The first signal received, or null. */
  signal: NodeJS.Signals | null = null;
  private readonly listener = (signal: NodeJS.Signals) => this.receive(signal);

  constructor(private readonly handlers: { onFirst: (signal: NodeJS.Signals) => void; onSecond: (signal: NodeJS.Signals) => void }) {
    for (const signal of SIGNALS) process.on(signal, this.listener);
  }

  /** 128 + the signal's number, what a shell reports for a process the signal ended. */
  static exitCode(signal: NodeJS.Signals): number {
    return 128 + constants.signals[signal];
  }

  private receive(signal: NodeJS.Signals): void {
    if (this.signal !== null) {
      this.handlers.onSecond(signal);
      return;
    }
    this.signal = signal;
    this.handlers.onFirst(signal);
    // Signals already queued with this one reach `onSecond` first; later ones get the default action.
    setImmediate(() => this.dispose());
  }

  /** Stops listening (the signals' default actions apply again). */
  dispose(): void {
    for (const signal of SIGNALS) process.removeListener(signal, this.listener);
  }
}
