/**
 * Checkpoints: `output_dir/checkpoint-<step>/` holds everything a resumed run needs, so that it continues
 * bit for bit where the saved one stood:
 *
 *   (model export)          the Hugging Face / sentence-transformers folder written by the model's `save(dir)`
 *   optimizer.safetensors   optimizer moments (names chosen by the optimizer), float32
 *   trainer_state.json      step, epoch, scheduler step, trainer RNG, sampler position, optimizer scalars,
 *                           best metric
 *   checksums.json          the size and SHA-256 of every file above (@kotune/weights' manifest)
 *
 * A checkpoint is built in a hidden temporary folder and renamed into place, so that a run killed while
 * saving leaves either the whole checkpoint or none; only folders with `trainer_state.json` count. A disk
 * that loses or damages a file afterwards is caught by `checkpointProblems` before a resume reads it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { RngState, TrainSamplerState } from '@kotune/data';
import { readSafetensors, verifyManifest, writeManifest, writeSafetensors, type LoadedTensor, type TensorToWrite } from '@kotune/weights';
import { writeFileAtomic } from '@kotune/metrics';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
const CHECKPOINT_PATTERN = /^checkpoint-(\d+)$/;
const TEMPORARY_PREFIX = '.tmp-checkpoint-';

export interface TrainerState {
  version: 1;
  /** Optimizer steps done. */
  global_step: number;
  /** Epochs done, fractional (HF's `epoch`). */
  epoch: number;
  /** Steps the learning-rate schedule has taken. */
  scheduler_step: number;
  /** The trainer's generator (dropout seeds), after this step. */
  rng: RngState;
  sampler: TrainSamplerState;
  /** The optimizer's scalar state (its tensors are in `optimizer.safetensors`). */
  optimizer: Record<string, unknown>;
  best_metric: number | null;
  /** Folder name (`checkpoint-<step>`) of the best evaluation so far. */
  best_model_checkpoint: string | null;
  /** Settings that must not change across a resume, as the run had them. */
  run: Record<string, unknown>;
}

export interface CheckpointInfo {
  step: number;
  path: string;
}

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/**
 * Writes `checkpoint-<step>` under `outputDir`: the model through `saveModel(dir)`, then the optimizer
 * tensors, then the trainer state, all into a temporary folder that is renamed at the end. A checkpoint of
 * the same step left by an earlier run is replaced.
 */
export async function saveCheckpoint(
  outputDir: string,
  contents: {
    state: TrainerState;
    optimizerTensors: Map<string, TensorToWrite>;
    saveModel: (dir: string) => Promise<void>;
  },
): Promise<string> {
  const name = checkpointName(contents.state.global_step);
  const final = join(outputDir, name);
  const tmp = join(outputDir, `${TEMPORARY_PREFIX}${contents.state.global_step}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await contents.saveModel(tmp);
  await writeSafetensors(join(tmp, OPTIMIZER_FILE), contents.optimizerTensors, { format: 'kotune-optimizer' });
  writeFileAtomic(join(tmp, TRAINER_STATE_FILE), `${JSON.stringify(contents.state, null, 2)}\n`);
  await writeManifest(tmp); // adds the optimizer and the state to the model export's entries
  if (existsSync(final)) {
    const old = `${tmp}-replaced`;
    renameSync(final, old);
    renameSync(tmp, final);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, final);
  }
  return final;
}

/** Every `checkpoint-<step>` folder under `outputDir`, complete or not, oldest step first. */
export function checkpointFolders(outputDir: string): CheckpointInfo[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((entry) => ({ entry, match: CHECKPOINT_PATTERN.exec(entry) }))
    .filter(({ match }) => match !== null)
    .map(({ entry, match }) => ({ step: Number(match![1]), path: join(outputDir, entry) }))
    .sort((a, b) => a.step - b.step);
}

/** Complete checkpoints under `outputDir`, oldest step first. */
export function listCheckpoints(outputDir: string): CheckpointInfo[] {
  return checkpointFolders(outputDir).filter((c) => existsSync(join(c.path, TRAINER_STATE_FILE)));
}

/** Temporary checkpoint folders under `outputDir` (of a run killed while saving, or of the run saving now). */
export function checkpointTemporaries(outputDir: string): string[] {
  return existsSync(outputDir) ? readdirSync(outputDir).filter((entry) => entry.startsWith(TEMPORARY_PREFIX)) : [];
}

/**
 * What keeps a resume from using checkpoint `dir`, one phrase each (empty when it is intact): a file missing,
 * truncated or changed since the save (against its `checksums.json`: every byte is hashed, about 1 s per GB),
 * or a trainer state that cannot be read. A checkpoint without `checksums.json` (saved by an older kotune) is
 * checked for its files only; `verified` says whether the checksums were checked.
 */
export async function checkpointProblems(dir: string): Promise<{ problems: string[]; verified: boolean }> {
  let check: { present: boolean; problems: string[] };
  try {
    check = await verifyManifest(dir);
  } catch (error) {
    return { problems: [(error as Error).message], verified: false };
  }
  const problems = [...check.problems];
  if (!check.present) {
    for (const file of [TRAINER_STATE_FILE, OPTIMIZER_FILE]) if (!existsSync(join(dir, file))) problems.push(`${file} is missing`);
  }
  if (!problems.some((p) => p.startsWith(TRAINER_STATE_FILE))) {
    try {
      readTrainerState(dir);
    } catch (error) {
      problems.push((error as Error).message.replace(`${join(dir, TRAINER_STATE_FILE)}: `, `${TRAINER_STATE_FILE}: `));
    }
  }
  return { problems, verified: check.present };
}

/** The newest complete checkpoint, or null. */
export function latestCheckpoint(outputDir: string): string | null {
  return listCheckpoints(outputDir).at(-1)?.path ?? null;
}

/** Removes half-written checkpoint folders left by a run killed while saving (call it holding the folder's lock). */
export function removeStaleTemporaries(outputDir: string): string[] {
  const stale = checkpointTemporaries(outputDir);
  for (const entry of stale) rmSync(join(outputDir, entry), { recursive: true, force: true });
  return stale;
}

/**
 * HF's `save_total_limit`: keeps the newest `limit` checkpoints and, in addition, `keep` (the best one)
 * wherever it stands. Returns the folders removed.
 */
export function rotateCheckpoints(outputDir: string, limit: number | null, keep: string | null): string[] {
  if (limit === null) return [];
  const all = listCheckpoints(outputDir);
  const keepName = keep === null ? null : basename(keep);
  const newest = new Set(all.slice(-limit).map((c) => c.path));
  const removed = all.filter((c) => !newest.has(c.path) && basename(c.path) !== keepName).map((c) => c.path);
  for (const path of removed) rmSync(path, { recursive: true, force: true });
  return removed;
}

/** A checkpoint's `trainer_state.json`; errors name the file. */
function readTrainerState(dir: string): TrainerState {
  const statePath = join(dir, TRAINER_STATE_FILE);
  if (!existsSync(statePath)) {
    throw new Error(
      `${dir}: not a complete checkpoint (no ${TRAINER_STATE_FILE}); complete ones are the checkpoint-<step> folders that have it`,
    );
  }
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  } catch (error) {
    throw new Error(`${statePath}: not valid JSON (${(error as Error).message})`);
  }
  if (state?.version !== 1) throw new Error(`${statePath}: unknown trainer state version ${JSON.stringify(state?.version)}`);
  return state;
}

/** Reads a checkpoint's trainer state and optimizer tensors; errors name the folder. */
export async function readCheckpoint(dir: string): Promise<{ state: TrainerState; optimizerTensors: Map<string, LoadedTensor> }> {
  const state = readTrainerState(dir);
  const optimizerPath = join(dir, OPTIMIZER_FILE);
  if (!existsSync(optimizerPath)) throw new Error(`${dir}: ${OPTIMIZER_FILE} is missing; the checkpoint cannot be resumed from`);
  const { tensors } = await readSafetensors(optimizerPath);
  return { state, optimizerTensors: tensors };
}
