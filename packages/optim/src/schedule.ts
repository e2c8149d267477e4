/**
 * Learning-rate schedules of Hugging Face `transformers.optimization` (`get_scheduler`): each maps
 * the number of optimizer steps already taken, `s` (0 for the first update), to a multiplier of the
 * base learning rate, with W warmup steps out of T in total:
 *
 *   warmup (all but constant):  s < W  →  s / max(1, W)
 *   linear:                     max(0, (T − s) / max(1, T − W))
 *   cosine:                     max(0, ½ (1 + cos(π · 2c · (s − W) / max(1, T − W))))   c = 0.5 cycles
 *   constant_with_warmup:       1
 *   constant:                   1 (no warmup)
 *
 * So with W ≥ 1 the first update runs at learning rate 0 (its moments still count).
 */
export const SCHEDULE_NAMES = ['linear', 'cosine', 'constant_with_warmup', 'constant'] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

export interface ScheduleOptions {
  warmupSteps: number;
  totalSteps: number;
  /** Cosine only: number of half-periods × 2 (HF's `num_cycles`, default 0.5 = one decay to 0). */
  numCycles?: number;
}

export function parseScheduleName(value: string): ScheduleName {
  const name = value.trim().toLowerCase();
  if (!(SCHEDULE_NAMES as readonly string[]).includes(name))
    throw new Error(`unknown learning-rate schedule "${value}": use one of ${SCHEDULE_NAMES.join(', ')}`);
  return name as ScheduleName;
}

/** The multiplier for the update made after `step` earlier updates (HF's `lr_lambda(current_step)`). */
export function scheduleMultiplier(
  name: ScheduleName,
  step: number,
  { warmupSteps, totalSteps, numCycles = 0.5 }: ScheduleOptions,
): number {
  if (name === 'constant') return 1;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  switch (name) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - step) / decaySteps);
    case 'cosine': {
      const progress = (step - warmupSteps) / decaySteps;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
    }
  }
}

/**
 * HF `TrainingArguments.get_warmup_steps`: an explicit `warmupSteps > 0` wins, otherwise
 * `ceil(totalSteps · warmupRatio)`.
 */
export function warmupStepsFor({
  totalSteps,
  warmupSteps = 0,
  warmupRatio = 0,
}: {
  totalSteps: number;
  warmupSteps?: number;
  warmupRatio?: number;
}): number {
  if (warmupRatio < 0 || warmupRatio > 1) throw new Error(`warmup ratio must be in [0, 1] (got ${warmupRatio})`);
  if (warmupSteps < 0 || !Number.isInteger(warmupSteps))
    throw new Error(`warmup steps must be a non-negative integer (got ${warmupSteps})`);
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}

/** `lr(step) = baseLr · scheduleMultiplier(name, step)`. */
export function learningRateSchedule(name: ScheduleName, baseLr: number, options: ScheduleOptions): (step: number) => number {
  return (step) => baseLr * scheduleMultiplier(name, step, options);
}
