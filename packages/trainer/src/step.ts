/**
 * `@kotune/trainer/step`: the pieces of one training step of `kotune train`, for code that drives the step
 * itself (the benches): the model as the trainer loads it, one micro-batch's loss and gradients, and the
 * accumulation + clipping + AdamW + schedule. A subpath of its own because these load TensorFlow.js, which the
 * package's index keeps out of `--dry-run` and the config helpers.
 */
export { loadTrainModel } from './model.ts';
export { microBatchGradients, type MicroBatchResult } from './objective.ts';
export { Optimization } from './optimization.ts';
