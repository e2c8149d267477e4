/** The loss (or the weights) became NaN or infinite: training stopped; the last checkpoint is the last good state. */
export class NonFiniteLossError extends Error {
  override name = 'NonFiniteLossError';
}

/** What keeps a run from starting, found before it loads anything (`preflight`): every problem, one sentence each. */
export class RunProblemsError extends Error {
  override name = 'RunProblemsError';

  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`);
  }
}

/**
 * The run stopped on SIGINT or SIGTERM after finishing a step, with a checkpoint of that step (`checkpoint`;
 * null when it stopped before training a step and nothing was saved). The process should exit `exitCode`
 * (128 + the signal's number: 130, 143), as a process killed by that signal would.
 */
export class TrainingStoppedError extends Error {
  override name = 'TrainingStoppedError';

  constructor(
    readonly signal: NodeJS.Signals,
    readonly step: number,
    readonly totalSteps: number,
    readonly checkpoint: string | null,
    readonly exitCode: number,
  ) {
    super(
      checkpoint
        ? `stopped by ${signal} after step ${step} of ${totalSteps}; the run is saved in ${checkpoint}`
        : `stopped by ${signal} before the first step; nothing was saved`,
    );
  }
}
