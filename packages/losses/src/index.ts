export { crossEntropy, softCrossEntropy, diagonalTargets } from './cross-entropy.ts';
export { groupLogits, groupCrossEntropyLoss } from './group-cross-entropy.ts';
export { binaryCrossEntropyLoss } from './binary-cross-entropy.ts';
export { teacherTargets, rerankerDistillationLoss, embedderDistillationLoss, embedderDistillationLossFromScores } from './distillation.ts';
export {
  multipleNegativesScores,
  multipleNegativesRankingLoss,
  multipleNegativesSymmetricRankingLoss,
  multipleNegativesRankingLossFromScores,
  multipleNegativesSymmetricRankingLossFromScores,
  DEFAULT_MNRL_SCALE,
} from './multiple-negatives-ranking.ts';
export type { MultipleNegativesRankingOptions, Similarity } from './multiple-negatives-ranking.ts';
export { infoNceScores, infoNceLoss, infoNceLossFromScores, ownGroupScores, DEFAULT_INFONCE_TEMPERATURE } from './infonce.ts';
export type { InfoNceOptions } from './infonce.ts';
export { gradCache, cachedMultipleNegativesRankingLoss, cachedInfoNceLoss, miniBatches } from './cached.ts';
export type { EmbedChunk, GradCacheResult } from './cached.ts';
