/**
 * One writer per run folder: `output_dir/kotune.lock`, created with O_EXCL (so of two runs starting at once
 * exactly one creates it) and held for the run's life. It says who holds it:
 *
 *   {"pid": 4711, "host": "gpu-box", "started": "2025-01-02T03:04:05.000Z", "command": "kotune train --config run.json",
 *    "boot_id": "...", "start_ticks": 123456, "token": "..."}
 *
 * A second run into the folder stops with a message naming the holder. A lock whose process is gone (same
 * host, and no process with that pid — or one started at another time, the pid reused) is stale: a run killed
 * with SIGKILL or by a power cut leaves one, and the next run takes it over, saying so. A lock of another host
 * cannot be checked from here; the message says how to remove it. The lock is released when the run ends, on
 * every path out of `train()`, and at process exit.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';

export const LOCK_FILE = 'kotune.lock';

export interface LockHolder {
  pid: number;
  host: string;
  started: string;
  command: string;
  /** Linux: this boot's id and the process's start time (clock ticks since boot), to tell a reused pid. */
  boot_id?: string;
  start_ticks?: number;
  /** Tells this run's lock from a later run's when it is released. */
  token?: string;
}

/** The run's hold on its folder. */
export interface RunLock {
  readonly path: string;
  /** Removes the lock file if it is still this run's (idempotent). */
  release(): void;
}

/** A run folder held by a live run. */
export class RunLockedError extends Error {
  constructor(
    readonly path: string,
    readonly holder: LockHolder | null,
  ) {
    super(lockedMessage(path, holder));
    this.name = 'RunLockedError';
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised name, which may hold spaces): the start time in ticks. */
function startTicks(pid: number | 'self'): number | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === null) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[19]);
  return Number.isFinite(ticks) ? ticks : undefined;
}

const bootId = (): string | undefined => readText('/proc/sys/kernel/random/boot_id')?.trim();

/** `args` as a POSIX shell reads them back: words with other characters than `[\w@%+=:,./-]` in single quotes. */
export function shellCommand(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

/** How `process.argv` reads as a command: `kotune train --config run.json ...`. */
function commandLine(): string {
  const [, script = '', ...args] = process.argv;
  return shellCommand([/[/\\]cli[/\\]src[/\\]main\.ts$|[/\\]kotune(\.js)?$/.test(script) ? 'kotune' : script, ...args]);
}

function describeHolder(holder: LockHolder): string {
  return `pid ${holder.pid} on ${holder.host}, started ${holder.started}: ${holder.command}`;
}

function lockedMessage(path: string, holder: LockHolder | null): string {
  const dir = dirname(path);
  if (holder === null)
    return `${dir} is in use by another kotune run that is starting (its lock ${path} is being written); try again in a moment`;
  return (
    `${dir} is in use by another kotune run (${describeHolder(holder)}). ` +
    (holder.host === hostname()
      ? 'Wait for it to finish, stop it, or give another output_dir.'
      : `Processes of ${holder.host} cannot be checked from ${hostname()}: if that run has ended, delete ${path}.`)
  );
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The holder recorded in lock text; null while its writer has not finished writing it. */
function parseHolder(text: string | null): LockHolder | null {
  try {
    const holder = JSON.parse(text ?? '') as LockHolder;
    return typeof holder?.pid === 'number' && typeof holder.host === 'string' ? holder : null;
  } catch {
    return null;
  }
}

const readHolder = (path: string): LockHolder | null => parseHolder(readText(path));

/** A lock without a holder is being written, unless it has been so for this long (its writer died). */
const UNWRITTEN_LOCK_MS = 10_000;

/** Whether the process that wrote `holder` still runs (on this host; another host's are assumed alive). */
export function holderAlive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true;
  if (holder.boot_id !== undefined && bootId() !== undefined && holder.boot_id !== bootId()) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const ticks = startTicks(holder.pid);
  return holder.start_ticks === undefined || ticks === undefined || ticks === holder.start_ticks;
}

/** The live holder of `dir`'s lock, or null when the folder is free (no lock, or a stale one). */
export function liveLockHolder(dir: string): LockHolder | null {
  const path = join(dir, LOCK_FILE);
  if (!existsSync(path)) return null;
  const holder = readHolder(path);
  return holder && holderAlive(holder) ? holder : null;
}

/**
 * Takes `dir`'s lock (the folder must exist), taking over a stale one with a line on `print`; throws
 * `RunLockedError` naming the holder when a live run has it.
 */
export function acquireRunLock(dir: string, print: (line: string) => void): RunLock {
  const path = join(dir, LOCK_FILE);
  const mine: LockHolder = {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: commandLine(),
    boot_id: bootId(),
    start_ticks: startTicks('self'),
    token: randomBytes(8).toString('hex'),
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const text = readText(path);
      if (text === null) continue; // released meanwhile
      const holder = parseHolder(text);
      const stale = holder === null ? Date.now() - mtimeOf(path) > UNWRITTEN_LOCK_MS : !holderAlive(holder);
      if (!stale) throw new RunLockedError(path, holder);
      if (takeOverStale(path, text)) {
        print(
          `taking over the stale lock ${path}: ${holder ? `its run (${describeHolder(holder)}) is no longer running` : 'it was never completed'}`,
        );
      }
      continue;
    }
    try {
      writeSync(fd, `${JSON.stringify(mine)}\n`);
    } finally {
      closeSync(fd);
    }
    return heldLock(path, mine.token!);
  }
  throw new RunLockedError(path, readHolder(path));
}

/**
 * Moves the stale lock aside. Returns false when another run replaced it in the meantime (that run's live
 * lock is then put back, and the next attempt reports it).
 */
function takeOverStale(path: string, staleText: string): boolean {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false; // another run moved it first
    throw error;
  }
  if (readText(aside) === staleText) {
    rmSync(aside, { force: true });
    return true;
  }
  try {
    linkSync(aside, path); // not ours to remove: restore it unless a third run has locked meanwhile
  } catch {
    // that run's lock stands
  }
  rmSync(aside, { force: true });
  return false;
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

function heldLock(path: string, token: string): RunLock {
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.removeListener('exit', release);
    if (readHolder(path)?.token === token) rmSync(path, { force: true });
  };
  process.on('exit', release); // also on process.exit() from anywhere
  return { path, release };
}
