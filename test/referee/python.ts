/**
 * The Python that referees kotune: one with `torch`, `transformers` and `sentence-transformers` importable.
 *
 *   1. `KOTUNE_PYTHON=/path/to/python`: that interpreter, used as it is (nothing is installed into it);
 *   2. else the cached venv `.cache/python-referee/` (git-ignored), made by an earlier run;
 *   3. else, when pip is configured with a local wheel mirror (a `file://` or folder index-url /
 *      extra-index-url, or a local find-links: `pip config list`, or the PIP_* variables), a new venv there,
 *      installed from the local sources only (the remote indexes pip may also know are left out, so nothing is
 *      downloaded by surprise; about a minute);
 *   4. else none: the caller skips, printing `reason`.
 *
 * Extra packages (the learning bench's `datasets`, `accelerate`) are installed into the cached venv on demand,
 * from the same local sources. Two processes that want the venv at once take turns (a lock file with the pid).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const VENV = join(ROOT, '.cache', 'python-referee');
const MARKER = join(VENV, 'kotune-referee.json');
const LOCK = `${VENV}.lock`;

/** pip distribution name → the module its import check uses. */
export const REFEREE_PACKAGES: Record<string, string> = {
  torch: 'torch',
  transformers: 'transformers',
  'sentence-transformers': 'sentence_transformers',
};

export type Referee = { python: string; versions: Record<string, string>; created: boolean } | { reason: string };

interface LocalSources {
  indexes: string[];
  findLinks: string[];
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000) {
  return spawnSync(command, args, { encoding: 'utf8', env, timeout: timeoutMs, maxBuffer: 1 << 26 });
}

const lastLine = (text: string) => text.trim().split('\n').filter(Boolean).at(-1) ?? '';

/** A file:// URL or absolute path that exists on this machine, as pip accepts it; null for anything remote. */
function localSource(value: string): string | null {
  const path = value.startsWith('file://') ? decodeURIComponent(value.slice('file://'.length)) : value.startsWith('/') ? value : null;
  return path !== null && existsSync(path) ? value : null;
}

/** The local index URLs and find-links pip is configured with (config files and PIP_* variables). */
function localPipSources(basePython: string): LocalSources {
  const values: Record<string, string[]> = { 'index-url': [], 'extra-index-url': [], 'find-links': [] };
  const listed = run(basePython, ['-m', 'pip', 'config', 'list']);
  for (const line of listed.status === 0 ? listed.stdout.split('\n') : []) {
    const match = /^[\w:.-]*?\.?(index-url|extra-index-url|find-links)='(.*)'$/.exec(line.trim());
    if (match) values[match[1]!]!.push(...match[2]!.split(/\s+/));
  }
  for (const [key, variable] of [
    ['index-url', 'PIP_INDEX_URL'],
    ['extra-index-url', 'PIP_EXTRA_INDEX_URL'],
    ['find-links', 'PIP_FIND_LINKS'],
  ] as const) {
    values[key]!.push(...(process.env[variable] ?? '').split(/\s+/));
  }
  const local = (list: string[]) => [
    ...new Set(
      list
        .filter(Boolean)
        .map(localSource)
        .filter((v): v is string => v !== null),
    ),
  ];
  return { indexes: local([...values['index-url']!, ...values['extra-index-url']!]), findLinks: local(values['find-links']!) };
}

/** The environment that points pip at the local sources alone (PIP_* variables override pip's config files). */
function localPipEnv(sources: LocalSources): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PIP_NO_INPUT: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' };
  if (sources.indexes.length > 0) {
    env.PIP_INDEX_URL = sources.indexes[0];
    env.PIP_EXTRA_INDEX_URL = sources.indexes.join(' ');
    delete env.PIP_NO_INDEX;
  } else {
    env.PIP_NO_INDEX = '1';
    delete env.PIP_INDEX_URL;
    delete env.PIP_EXTRA_INDEX_URL;
  }
  env.PIP_FIND_LINKS = (sources.findLinks.length > 0 ? sources.findLinks : [VENV]).join(' ');
  return env;
}

/** Versions of the given distributions in `python` (importlib.metadata: no heavy import), or the failure. */
function versionsIn(python: string, packages: string[]): { versions: Record<string, string> } | { reason: string } {
  const script = 'import json, sys, importlib.metadata as m\nprint(json.dumps({p: m.version(p) for p in sys.argv[1:]}))';
  const r = run(python, ['-c', script, ...packages]);
  if (r.error || r.status !== 0)
    return { reason: `${python} lacks ${packages.join(', ')} (${lastLine(r.stderr ?? String(r.error)) || `status ${r.status}`})` };
  return { versions: JSON.parse(r.stdout) };
}

function readMarker(): { packages: string[] } | null {
  try {
    return JSON.parse(readFileSync(MARKER, 'utf8'));
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `body` holding the venv lock; a lock left by a dead process is taken over. */
async function withLock<T>(body: () => T): Promise<T> {
  mkdirSync(join(ROOT, '.cache'), { recursive: true });
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(LOCK, 'utf8') || 'NaN');
      if (Number.isInteger(holder) && !alive(holder)) rmSync(LOCK, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  try {
    return body();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

/**
 * The referee Python with `REFEREE_PACKAGES` and `extras` (pip names → import names), creating or extending the
 * cached venv when a local mirror allows; `log` hears what takes time.
 */
export async function findReferee(extras: Record<string, string> = {}, log: (line: string) => void = () => {}): Promise<Referee> {
  const packages = { ...REFEREE_PACKAGES, ...extras };
  const names = Object.keys(packages);
  const given = process.env.KOTUNE_PYTHON;
  if (given) {
    const check = run(given, ['-c', `import ${Object.values(packages).join(', ')}`], process.env, 120_000);
    if (check.error || check.status !== 0) {
      return {
        reason: `KOTUNE_PYTHON=${given} cannot import ${names.join(', ')}: ${lastLine(check.stderr ?? String(check.error)) || `exit status ${check.status}`}`,
      };
    }
    const found = versionsIn(given, names);
    return 'reason' in found ? found : { python: given, versions: found.versions, created: false };
  }
  const python = join(VENV, 'bin', 'python');
  const ready = () => existsSync(python) && names.every((name) => readMarker()?.packages.includes(name));
  const existing = (created: boolean): Referee => {
    const found = versionsIn(python, names);
    return 'reason' in found ? found : { python, versions: found.versions, created };
  };
  if (ready()) return existing(false);

  const basePython = process.env.KOTUNE_BASE_PYTHON ?? 'python3';
  const probe = run(basePython, ['--version']);
  if (probe.error || probe.status !== 0)
    return { reason: `no ${basePython} to make a venv from; set KOTUNE_PYTHON to a Python with ${names.join(', ')}` };
  const sources = localPipSources(basePython);
  if (sources.indexes.length === 0 && sources.findLinks.length === 0) {
    return {
      reason:
        `no Python with ${names.join(', ')}: set KOTUNE_PYTHON to one, or configure pip with a local wheel mirror ` +
        '(a file:// index-url / extra-index-url or a local find-links) for the set-up to make .cache/python-referee from it',
    };
  }
  return withLock((): Referee => {
    if (ready()) return existing(false);
    if (!existsSync(python)) {
      rmSync(VENV, { recursive: true, force: true });
      log(`python referee: creating ${VENV} from ${sources.indexes.concat(sources.findLinks).join(', ')} (about a minute)`);
      const venv = run(basePython, ['-m', 'venv', VENV], process.env, 120_000);
      if (venv.status !== 0) {
        rmSync(VENV, { recursive: true, force: true });
        return { reason: `${basePython} -m venv failed: ${lastLine(venv.stderr)}` };
      }
    } else {
      log(`python referee: installing ${names.filter((n) => !readMarker()?.packages.includes(n)).join(', ')} into ${VENV}`);
    }
    const started = performance.now();
    const install = run(python, ['-m', 'pip', 'install', '--quiet', ...names], localPipEnv(sources), 900_000);
    if (install.status !== 0) {
      return {
        reason: `pip could not install ${names.join(', ')} from the local mirror: ${lastLine(install.stderr ?? String(install.error))}`,
      };
    }
    writeFileSync(MARKER, `${JSON.stringify({ packages: [...new Set([...(readMarker()?.packages ?? []), ...names])] })}\n`);
    log(`python referee: installed in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    return existing(true);
  });
}
