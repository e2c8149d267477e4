/**
 * The run folder as a whole, before a run writes to it (docs/run-folder.md):
 *
 * - it can be created and written (`outputDirProblems`, which `--dry-run` reports without writing anything);
 * - one writer at a time: the lock of lock.ts, held from `claimRunFolder` to the end of the run;
 * - no silent overwrite: a fresh run into a folder that holds a run stops, unless `overwrite_output_dir` asks
 *   for that run to be deleted first (its checkpoints, metrics, plots and exported model; files kotune did not
 *   write stay). A resumed run continues what is there.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileErrorReason } from '@kotune/data';
import { TOKENIZER_FILES } from '@kotune/tokenizer';
import { MANIFEST_FILE, readManifest, WEIGHT_FILES } from '@kotune/weights';
import { checkpointFolders, checkpointTemporaries, removeStaleTemporaries } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { acquireRunLock, liveLockHolder, LOCK_FILE, RunLockedError, type RunLock } from './lock.ts';
import { METRICS_FILE } from './metrics-log.ts';
import { PLOT_FILES } from './plots.ts';

/** What a model export holds when it has no `checksums.json` (one saved before kotune wrote them). */
const UNLISTED_EXPORT_FILES = ['config.json', ...WEIGHT_FILES, ...TOKENIZER_FILES];

/** The files of the exported model at the root of `dir` (those its `checksums.json` lists, and that file). */
function exportFiles(dir: string): string[] {
  let manifest;
  try {
    manifest = readManifest(dir);
  } catch {
    manifest = null; // an unreadable manifest: go by the names a model folder has
  }
  const listed = manifest ? [...Object.keys(manifest.files), MANIFEST_FILE] : UNLISTED_EXPORT_FILES;
  return listed.filter((file) => existsSync(join(dir, file)));
}

/** What of an earlier run `dir` holds, as entries of `dir`: checkpoints, temporaries, metrics, plots, the model. */
export function runArtifacts(dir: string): { checkpoints: string[]; logs: string[]; model: string[] } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { checkpoints: [], logs: [], model: [] };
  return {
    checkpoints: [...checkpointFolders(dir).map((c) => c.path.slice(dir.length + 1)), ...checkpointTemporaries(dir)],
    logs: [METRICS_FILE, ...Object.values(PLOT_FILES)].filter((file) => existsSync(join(dir, file))),
    model: exportFiles(dir),
  };
}

function describeArtifacts({ checkpoints, logs, model }: ReturnType<typeof runArtifacts>): string {
  const shown =
    checkpoints.length > 4
      ? [...checkpoints.slice(0, 2), `... (${checkpoints.length} checkpoints)`, ...checkpoints.slice(-1)]
      : checkpoints;
  return [...shown, ...logs, ...(model.length > 0 ? ['an exported model'] : [])].join(', ');
}

const resuming = (config: TrainConfig) => config.resume_from_checkpoint !== null && config.resume_from_checkpoint !== false;

function holdsRunMessage(dir: string, artifacts: ReturnType<typeof runArtifacts>): string | null {
  if (artifacts.checkpoints.length + artifacts.logs.length + artifacts.model.length === 0) return null;
  return (
    `output_dir ${dir} already holds a run (${describeArtifacts(artifacts)}). Pass --resume to continue it ` +
    '(with --max_steps N beyond its last step to train a finished run further), or --overwrite_output_dir to delete it and start afresh, ' +
    'or give another output_dir.'
  );
}

/**
 * Why `dir` cannot be the run folder, as sentences: a file in its place or in the way of creating it, or no
 * permission to write. Writes nothing that stays: the check creates and removes a probe file in the nearest
 * folder that exists.
 */
function writableProblem(dir: string): string | null {
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) {
    return existing === dir
      ? `output_dir ${dir} is a file, not a folder`
      : `output_dir ${dir} cannot be created: ${existing} is a file, not a folder`;
  }
  const probe = join(existing, `.kotune-write-test-${process.pid}`);
  try {
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (error) {
    const reason = fileErrorReason(error) ?? (error as Error).message;
    return existing === dir
      ? `output_dir ${dir} cannot be written: ${reason}`
      : `output_dir ${dir} cannot be created in ${existing}: ${reason}`;
  }
  return null;
}

/** Every reason the run cannot use its folder (for `--dry-run` and before a run starts); none writes anything. */
export function outputDirProblems(config: TrainConfig): string[] {
  const dir = config.output_dir;
  const writable = writableProblem(dir);
  if (writable) return [writable];
  if (!existsSync(dir)) return [];
  const holder = liveLockHolder(dir);
  if (holder) return [new RunLockedError(join(dir, LOCK_FILE), holder).message]; // what it holds is that run's business
  const holdsRun = resuming(config) || config.overwrite_output_dir ? null : holdsRunMessage(dir, runArtifacts(dir));
  return holdsRun ? [holdsRun] : [];
}

/** Deletes what `artifacts` lists (folders whole; the model's files, then the folders they leave empty). */
function deleteRun(dir: string, artifacts: ReturnType<typeof runArtifacts>): void {
  for (const entry of [...artifacts.checkpoints, ...artifacts.logs]) rmSync(join(dir, entry), { recursive: true, force: true });
  for (const file of artifacts.model) rmSync(join(dir, file), { force: true });
  const folders = new Set(artifacts.model.filter((f) => f.includes('/')).map((f) => dirname(f)));
  for (const folder of [...folders].sort((a, b) => b.length - a.length)) {
    if (existsSync(join(dir, folder)) && readdirSync(join(dir, folder)).length === 0) rmdirSync(join(dir, folder));
  }
}

/**
 * Makes `output_dir` this run's: creates it, takes its lock (a live holder is an error naming it; a stale lock is
 * taken over, saying so), refuses a fresh run into a folder that holds a run unless `overwrite_output_dir`
 * (which deletes that run first), and removes the temporary folders of a run killed while saving. The caller
 * releases the returned lock when the run ends.
 */
export function claimRunFolder(config: TrainConfig, print: (line: string) => void): RunLock {
  const dir = config.output_dir;
  const problem = writableProblem(dir);
  if (problem) throw new Error(problem);
  mkdirSync(dir, { recursive: true });
  const lock = acquireRunLock(dir, print);
  try {
    if (!resuming(config)) {
      const artifacts = runArtifacts(dir);
      const holdsRun = holdsRunMessage(dir, artifacts);
      if (holdsRun && !config.overwrite_output_dir) throw new Error(holdsRun);
      if (holdsRun) {
        deleteRun(dir, artifacts);
        print(`overwrite_output_dir: deleted the previous run in ${dir} (${describeArtifacts(artifacts)})`);
      }
    }
    removeStaleTemporaries(dir);
  } catch (error) {
    lock.release();
    throw error;
  }
  return lock;
}
