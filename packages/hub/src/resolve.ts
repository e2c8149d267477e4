/**
 * `resolveModelPath(nameOrPath)`: the local folder to load a model from. A folder that exists is used as
 * is; otherwise `nameOrPath` is a hub repo id (`org/name`), looked up in the Hugging Face cache (the one
 * Python uses, so its downloads are reused) and, unless offline, downloaded into it.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HubApiError } from '@huggingface/hub';
import { cachedCommit, hubCacheDir, hubToken, missingModelFiles, offlineFromEnv, repoFolder } from './cache.ts';
import { downloadModel } from './download.ts';

export interface ResolveOptions {
  /** Branch, tag or commit hash; default "main". */
  revision?: string;
  /** Default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Never touch the network; default from HF_HUB_OFFLINE. */
  offline?: boolean;
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
  /** Default: HF_TOKEN, else the token file of `huggingface-cli login`. */
  accessToken?: string;
  /** Download progress lines; default stderr, null for silence. */
  log?: ((line: string) => void) | null;
}

/** huggingface_hub's `validate_repo_id`: `name` or `org/name`, word characters, `-` and `.`, no `--`/`..`. */
const REPO_ID = /^(?:[\w.-]{1,96}\/)?[\w.-]{1,96}$/;

export function isRepoId(text: string): boolean {
  return REPO_ID.test(text) && !text.includes('--') && !text.includes('..') && !text.endsWith('.git') && !/^[.-]|\/[.-]/.test(text);
}

export async function resolveModelPath(nameOrPath: string, opts: ResolveOptions = {}): Promise<string> {
  if (existsSync(nameOrPath)) {
    if (!statSync(nameOrPath).isDirectory())
      throw new Error(`${nameOrPath}: is a file; expected a model folder or a hub repo id (org/name)`);
    return nameOrPath;
  }
  if (!isRepoId(nameOrPath)) throw new Error(`${nameOrPath}: no such folder, and not a Hugging Face repo id (org/name)`);
  const repoId = nameOrPath;
  const revision = opts.revision ?? 'main';
  if (revision.split('/').includes('..') || revision.startsWith('/')) throw new Error(`${repoId}: invalid revision "${revision}"`);
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const storage = repoFolder(cacheDir, repoId);

  const commit = cachedCommit(storage, revision);
  const snapshot = commit && join(storage, 'snapshots', commit);
  const missing = snapshot && existsSync(snapshot) ? missingModelFiles(snapshot) : undefined;
  if (snapshot && missing?.length === 0) return snapshot;

  if (opts.offline ?? offlineFromEnv()) {
    const found = !existsSync(storage)
      ? `${storage} does not exist`
      : !commit
        ? `${storage} has no refs/${revision}`
        : !missing
          ? `${storage} has no snapshots/${commit}`
          : `snapshots/${commit} lacks ${missing.join(', ')}`;
    throw new Error(
      `${repoId} (revision ${revision}) is not a local folder nor complete in the Hugging Face cache, and downloads are off ` +
        `(${opts.offline ? 'offline option' : 'HF_HUB_OFFLINE'}). Searched the cache ${cacheDir}: ${found}. ` +
        'Download it once with network access (kotune fetches it into that cache, as does `huggingface-cli download ' +
        `${repoId}\`), point HF_HUB_CACHE or HF_HOME at a cache that has it, or pass a local model folder.`,
    );
  }

  const hubUrl = opts.hubUrl ?? process.env.HF_ENDPOINT;
  try {
    return await downloadModel(repoId, {
      revision,
      cacheDir,
      hubUrl,
      accessToken: opts.accessToken ?? hubToken(),
      log: opts.log === null ? () => {} : (opts.log ?? ((line) => process.stderr.write(`${line}\n`))),
    });
  } catch (err) {
    const where = hubUrl ?? 'https://huggingface.co';
    if (err instanceof HubApiError) {
      const hint =
        err.statusCode === 401 || err.statusCode === 403
          ? ' If the repo exists and is private or gated, accept its terms on the website and set HF_TOKEN.'
          : err.statusCode === 404
            ? ` Check the repo id and the revision "${revision}".`
            : '';
      throw new Error(`${repoId}: the hub ${where} answered HTTP ${err.statusCode} (${err.message}).${hint}`, { cause: err });
    }
    if (err instanceof TypeError && /fetch failed/.test(err.message)) {
      const cause = (err.cause as Error | undefined)?.message;
      throw new Error(
        `${repoId}: cannot reach the hub ${where} (${cause ?? err.message}) and the model is not in the cache ${cacheDir}. ` +
          'Check the network or HF_ENDPOINT, or copy the model into that cache / pass a local folder (HF_HUB_OFFLINE=1 skips the network).',
        { cause: err },
      );
    }
    throw err;
  }
}
