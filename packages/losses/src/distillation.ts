/**
 * Knowledge distillation from teacher scores, as FlagEmbedding trains with `teacher_scores` in the
 * training data (typically a stronger cross-encoder's logits), following the soft-label recipe of
 * Hinton et al. 2015, *Distilling the Knowledge in a Neural Network* (https://arxiv.org/abs/1503.02531):
 * the student's softmax over each query's G passages is pulled towards the teacher's softmax.
 *
 *   t_i       = softmax(teacherScores_i)                       (per query, over its G passages)
 *   soft_ce   = −1/B Σ_i Σ_j t_ij · log_softmax(student_i)_j   (= KL(t ‖ softmax(student)) + H(t))
 *
 * Reranker (FlagEmbedding/abc/finetune/reranker/AbsModeling.py, `AbsRerankerModel.forward`):
 *   student = logits.view(B, G);  loss = CE(student, 0) + soft_ce
 * Embedder (FlagEmbedding/abc/finetune/embedder/AbsModeling.py, `kd_loss_type="kl_div"`):
 *   scores = q pᵀ / temperature ([B, B·G]);  student_ij = scores[i, i·G + j] (the query's own group);
 *   loss = soft_ce + CE(scores, i·G)                      with in-batch negatives (the default),
 *   loss = soft_ce + CE(student, 0)                       without them (`no_in_batch_neg_flag`).
 * The teacher scores are constants: no gradient flows into them.
 */
import { tf } from '@kotune/engine';
import { asMatrix, crossEntropy, diagonalTargets, softCrossEntropy } from './cross-entropy.ts';
import { groupLogits } from './group-cross-entropy.ts';
import { infoNceScores, ownGroupScores, type InfoNceOptions } from './infonce.ts';

/** Teacher scores (`[B·G]` or `[B, G]`, any layout with B rows) → `softmax` per query, `[B, G]`. */
export function teacherTargets(
  teacherScores: tf.Tensor | readonly (readonly number[])[] | readonly number[],
  queries: number,
): tf.Tensor2D {
  return tf.tidy(() => tf.softmax(asMatrix(teacherScores, queries, 'teacher scores')));
}

function checkTeacherShape(targets: tf.Tensor2D, student: tf.Tensor2D): void {
  if (targets.shape[1] !== student.shape[1]) {
    throw new Error(`teacher scores: ${targets.shape[1]} per query, but the student has ${student.shape[1]} passages per query`);
  }
}

/** Reranker: `CE(logits.view(B, G), 0) + soft_ce(logits.view(B, G), softmax(teacher))`. */
export function rerankerDistillationLoss(
  logits: tf.Tensor,
  teacherScores: tf.Tensor | readonly (readonly number[])[] | readonly number[],
  groupSize: number,
): tf.Scalar {
  return tf.tidy(() => {
    const grouped = groupLogits(logits, groupSize);
    const targets = teacherTargets(teacherScores, grouped.shape[0]);
    checkTeacherShape(targets, grouped);
    return crossEntropy(grouped, new Array<number>(grouped.shape[0]).fill(0)).add(softCrossEntropy(grouped, targets)) as tf.Scalar;
  });
}

/**
 * Embedder distillation from the full score matrix (`[B, B·G]` with in-batch negatives, or the
 * `[B, G]` own-group scores without them), for callers that already hold the scores.
 */
export function embedderDistillationLossFromScores(
  scores: tf.Tensor2D,
  teacherScores: tf.Tensor | readonly (readonly number[])[] | readonly number[],
  groupSize: number,
  inBatchNegatives = true,
): tf.Scalar {
  return tf.tidy(() => {
    const queries = scores.shape[0];
    const student = inBatchNegatives ? ownGroupScores(scores, groupSize) : scores;
    const targets = teacherTargets(teacherScores, queries);
    checkTeacherShape(targets, student);
    const hard = inBatchNegatives
      ? crossEntropy(scores, diagonalTargets(queries, groupSize))
      : crossEntropy(student, new Array<number>(queries).fill(0));
    return softCrossEntropy(student, targets).add(hard) as tf.Scalar;
  });
}

/**
 * Embedder: queries `[B, H]`, passages `[B·G, H]` (each query's group, positive first), both already
 * L2-normalised by the model as FlagEmbedding's `normalize_embeddings` does.
 */
export function embedderDistillationLoss(
  queries: tf.Tensor2D,
  passages: tf.Tensor2D,
  teacherScores: tf.Tensor | readonly (readonly number[])[] | readonly number[],
  options: InfoNceOptions = {},
): tf.Scalar {
  return tf.tidy(() => {
    const { scores, groupSize } = infoNceScores(queries, passages, options);
    return embedderDistillationLossFromScores(scores, teacherScores, groupSize, options.inBatchNegatives ?? true);
  });
}
