export { AdamW } from './adamw.ts';
export type { AdamWOptions, AdamWState, F32Tensor } from './adamw.ts';
export { isDecayParameter, decayParameterNames } from './decay.ts';
export { clipCoefficient, clipGradNorm, globalNorm } from './clip.ts';
export type { ClippedGradients } from './clip.ts';
export { scheduleMultiplier, learningRateSchedule, warmupStepsFor, parseScheduleName, SCHEDULE_NAMES } from './schedule.ts';
export type { ScheduleName, ScheduleOptions } from './schedule.ts';
export { GradientAccumulator } from './accumulate.ts';
