/**
 * Everything that can be checked before a run loads a model, checked at once so that the user hears of every
 * problem in one go (`kotune train --dry-run` prints them; `train()` stops on them before it writes anything):
 *
 * - the model: `model_name_or_path` is a model folder, or a repo id complete in the Hugging Face cache (one that
 *   is not is downloaded when the run starts: a note, or a problem when downloads are off); its config.json, its
 *   files against its `checksums.json` (sizes only: hashing is left to the load), and its position table against
 *   the longest training input; for a fresh model, the tokenizer folder;
 * - a resume: the checkpoint it would start from exists;
 * - the run folder (run-folder.ts): it can be created and written, no live run holds it, and a fresh run does
 *   not land on an earlier run without `overwrite_output_dir`;
 * - the data: every bad training line (not only the first), and the evaluation file.
 *
 * The config itself was checked when it was loaded (`loadTrainConfig`, config.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hubCacheDir, isRepoId, missingModelFiles, offlineFromEnv, resolveModelPath } from '@kotune/hub';
import { verifyManifest } from '@kotune/weights';
import { loadConfig } from '@kotune/xlm-roberta/config';
import { checkpointFolders, TRAINER_STATE_FILE } from './checkpoint.ts';
import { inputLengthProblem, type TrainConfig } from './config.ts';
import { planTraining, type TrainPlan } from './plan.ts';
import { outputDirProblems } from './run-folder.ts';

export interface Preflight {
  /** The run's plan; null when the data could not be planned or has bad lines the run would stop at. */
  plan: TrainPlan | null;
  /** What would stop the run, one sentence each. */
  problems: string[];
  /** What the user should know but that stops nothing (a model the run will download). */
  notes: string[];
}

/** The local folder `key`'s value names, or why there is none; `notes` hears of a repo id the run would download. */
async function locate(key: string, name: string, notes: string[]): Promise<{ folder: string } | { problem: string } | null> {
  if (existsSync(name))
    return statSync(name).isDirectory() ? { folder: name } : { problem: `${key} ${name} is a file, not a model folder` };
  if (!isRepoId(name)) return { problem: `${key} ${name}: no such folder (and not a Hugging Face repo id, org/name)` };
  try {
    // Never a download here; with HF_HUB_OFFLINE set, the hub's message names it as the reason.
    return { folder: await resolveModelPath(name, { offline: offlineFromEnv() ? undefined : true, log: null }) };
  } catch (error) {
    if (offlineFromEnv()) return { problem: `${key}: ${(error as Error).message}` };
    notes.push(`${key} ${name}: not a folder here, nor complete in the Hugging Face cache ${hubCacheDir()}; the run will download it`);
    return null;
  }
}

/** Problems of a model folder: files missing or damaged, a config.json that cannot be read, too few positions. */
async function modelFolderProblems(config: TrainConfig, folder: string): Promise<string[]> {
  const missing = missingModelFiles(folder);
  if (missing.length > 0) return [`model_name_or_path ${folder} lacks ${missing.join(', ')}`];
  const { problems: damaged } = await verifyManifest(folder, { sizesOnly: true }).catch((error: Error) => ({ problems: [error.message] }));
  if (damaged.length > 0) return [`model_name_or_path ${folder}: ${damaged.join('; ')}`];
  if (!existsSync(join(folder, 'config.json'))) return []; // a sentence-transformers folder with its model in a subfolder
  try {
    const model = loadConfig(folder);
    const tooLong = inputLengthProblem(config, model.maxPositionEmbeddings - model.padTokenId - 1);
    return tooLong
      ? [`model_name_or_path ${folder}: its max_position_embeddings ${model.maxPositionEmbeddings} ${tooLong}; lower the lengths`]
      : [];
  } catch (error) {
    return [(error as Error).message];
  }
}

async function modelProblems(config: TrainConfig, notes: string[]): Promise<string[]> {
  if (config.model_name_or_path !== null) {
    const found = await locate('model_name_or_path', config.model_name_or_path, notes);
    if (found === null) return [];
    return 'problem' in found ? [found.problem] : modelFolderProblems(config, found.folder);
  }
  const found = await locate('tokenizer_name_or_path', config.tokenizer_name_or_path!, notes);
  if (found === null || 'problem' in found) return found ? [found.problem] : [];
  const hasTokenizer = ['tokenizer.json', 'sentencepiece.bpe.model'].some((file) => existsSync(join(found.folder, file)));
  return hasTokenizer ? [] : [`tokenizer_name_or_path ${found.folder} has no tokenizer.json (nor sentencepiece.bpe.model)`];
}

function resumeProblems(config: TrainConfig): string[] {
  const wanted = config.resume_from_checkpoint;
  if (wanted === true && checkpointFolders(config.output_dir).length === 0)
    return [`--resume: no checkpoint (checkpoint-<step>/) in ${config.output_dir}`];
  if (typeof wanted === 'string' && !existsSync(join(wanted, TRAINER_STATE_FILE))) {
    return [`--resume ${wanted}: not a checkpoint folder (no ${TRAINER_STATE_FILE})`];
  }
  return [];
}

/** Reads the data once (every bad line noted), and reports the plan with every problem found. */
async function dataProblems(config: TrainConfig): Promise<{ plan: TrainPlan | null; problems: string[] }> {
  let plan: TrainPlan;
  try {
    plan = await planTraining({ ...config, skip_bad_lines: true });
  } catch (error) {
    if (error instanceof Error) return { plan: null, problems: [error.message] }; // a bad evaluation line, no usable lines, ...
    throw error;
  }
  const bad = plan.badTrainLines;
  if (config.skip_bad_lines || bad.count === 0) return { plan, problems: [] };
  const problems = bad.examples.map((e) => e.message);
  if (bad.count > bad.examples.length) {
    const reasons = [...bad.byReason].map(([reason, n]) => `${n} ${reason}`).join(', ');
    problems.push(
      `${bad.count - bad.examples.length} more bad lines in the training data (${bad.count} in all: ${reasons}); fix them, or set skip_bad_lines to skip them`,
    );
  }
  return { plan: null, problems };
}

/** Checks the run before anything is loaded or written. */
export async function preflight(config: TrainConfig): Promise<Preflight> {
  const notes: string[] = [];
  const resuming = config.resume_from_checkpoint !== null && config.resume_from_checkpoint !== false;
  // A resumed run loads its model from the checkpoint: the base model need not be there any more.
  const problems = [...(resuming ? resumeProblems(config) : await modelProblems(config, notes)), ...outputDirProblems(config)];
  const data = await dataProblems(config);
  return { plan: data.plan, problems: [...problems, ...data.problems], notes };
}
