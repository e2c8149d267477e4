/**
 * The Hugging Face hub cache, shared with Python's huggingface_hub so that models it downloaded are reused:
 *
 *   <cache>/models--<org>--<name>/refs/<revision>            the commit hash a branch or tag pointed to
 *   <cache>/models--<org>--<name>/snapshots/<hash>/<file>    symlink to ../../blobs/<etag> (or a plain file)
 *   <cache>/models--<org>--<name>/blobs/<etag>               content; etag = sha256 (LFS) or git blob sha1
 *
 * Reference: huggingface_hub/file_download.py and constants.py (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { WEIGHT_FILES } from '@kotune/weights';

export type Env = Record<string, string | undefined>;

const expandHome = (path: string) => (path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path);

/** `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(env: Env = process.env): string {
  return expandHome(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'));
}

/** `HF_HUB_CACHE` (or the older `HUGGINGFACE_HUB_CACHE`), else `<HF_HOME>/hub`. */
export function hubCacheDir(env: Env = process.env): string {
  const explicit = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  return explicit ? expandHome(explicit) : join(hfHome(env), 'hub');
}

/** huggingface_hub's truthy spellings for `HF_HUB_OFFLINE` (and the older `TRANSFORMERS_OFFLINE`). */
export function offlineFromEnv(env: Env = process.env): boolean {
  const value = env.HF_HUB_OFFLINE || env.TRANSFORMERS_OFFLINE;
  return ['1', 'ON', 'YES', 'TRUE'].includes((value ?? '').toUpperCase());
}

/** `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, else the file `huggingface-cli login` writes. */
export function hubToken(env: Env = process.env): string | undefined {
  const fromEnv = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv) return fromEnv.trim();
  const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(hfHome(env), 'token');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || undefined : undefined;
}

export function repoFolder(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.split('/').join('--')}`);
}

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** The commit a revision means in the cache: itself if it is a hash, else what `refs/<revision>` records. */
export function cachedCommit(storage: string, revision: string): string | undefined {
  if (COMMIT_HASH.test(revision)) return revision;
  const ref = join(storage, 'refs', revision);
  if (!existsSync(ref)) return undefined;
  const hash = readFileSync(ref, 'utf8').trim();
  return COMMIT_HASH.test(hash) ? hash : undefined;
}

/** Shard files listed by a `*.index.json` weight map. */
export function shardsOf(indexPath: string): string[] {
  let index: { weight_map?: Record<string, unknown> };
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (err) {
    throw new Error(`${indexPath}: not valid JSON (${(err as Error).message})`);
  }
  const shards = Object.values(index.weight_map ?? {});
  if (shards.length === 0 || !shards.every((s) => typeof s === 'string' && !s.includes('..'))) {
    throw new Error(`${indexPath}: field "weight_map" must map tensor names to shard files in the same folder`);
  }
  return [...new Set(shards as string[])];
}

/** Folders of the sentence-transformers modules listed in `modules.json` (the root module has path ""). */
export function moduleFolders(modulesPath: string): string[] {
  let modules: unknown;
  try {
    modules = JSON.parse(readFileSync(modulesPath, 'utf8'));
  } catch (err) {
    throw new Error(`${modulesPath}: not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(modules)) throw new Error(`${modulesPath}: expected a list of modules`);
  return modules
    .map((m, i) => {
      const path = (m as { path?: unknown } | null)?.path;
      if (typeof path !== 'string' || path.includes('..')) throw new Error(`${modulesPath}: module ${i} has no valid "path"`);
      return path.replace(/\/+$/, '');
    })
    .filter((p) => p !== '');
}

/**
 * What a snapshot lacks to be loaded as a model: config.json, a tokenizer, weights (with every shard), and
 * the folders modules.json names. Empty when complete. Dangling symlinks (deleted blobs) count as missing.
 */
export function missingModelFiles(dir: string): string[] {
  const has = (file: string) => existsSync(join(dir, file));
  const missing: string[] = [];
  if (!has('config.json')) missing.push('config.json');
  if (!has('tokenizer.json') && !has('sentencepiece.bpe.model')) missing.push('tokenizer.json (or sentencepiece.bpe.model)');
  const weights = WEIGHT_FILES.find(has);
  if (!weights) missing.push(`weights (${WEIGHT_FILES.join(' / ')})`);
  else if (weights.endsWith('.index.json')) missing.push(...shardsOf(join(dir, weights)).filter((s) => !has(s)));
  if (has('modules.json'))
    missing.push(
      ...moduleFolders(join(dir, 'modules.json'))
        .filter((m) => !has(m))
        .map((m) => `${m}/`),
    );
  return missing;
}
