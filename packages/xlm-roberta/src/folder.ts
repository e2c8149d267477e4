/**
 * Writes a model folder so that no reader ever sees a half-written file: everything is written into a
 * staging folder next to the files (`dir/.save-<pid>-<n>/`), with `checksums.json` (the size and SHA-256 of
 * each file, checked when the folder is loaded; `checksums: false` leaves it out), then each file is renamed
 * into place. Files of `dir` that the save does not produce are left alone (a training run keeps its
 * checkpoints and logs there).
 */
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { updateManifest, writeManifest } from '@kotune/weights';

let saves = 0;

export async function writeModelFolder(
  dir: string,
  write: (staging: string) => Promise<void> | void,
  { checksums = true } = {},
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const staging = join(dir, `.save-${process.pid}-${++saves}`);
  mkdirSync(staging);
  try {
    await write(staging);
    if (checksums) await writeManifest(staging);
    publish(staging, dir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function publish(from: string, to: string): void {
  for (const entry of readdirSync(from)) {
    const source = join(from, entry);
    const target = join(to, entry);
    if (statSync(source).isDirectory()) {
      mkdirSync(target, { recursive: true });
      publish(source, target);
    } else {
      renameSync(source, target);
    }
  }
}

/**
 * Rewrites `file` (a small one, such as config.json) of a saved model folder in place, and its entry in the
 * folder's `checksums.json` when it has one, so that the folder still loads.
 */
export function rewriteFolderFile(dir: string, file: string, text: string): void {
  writeFileSync(join(dir, file), text);
  updateManifest(dir, [file]);
}
