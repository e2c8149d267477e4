/**
 * Downloads what a model needs from the Hugging Face hub (through @huggingface/hub) into the cache layout
 * of cache.ts, the way huggingface_hub does: content in `blobs/<etag>` (written to a temporary name, checked
 * against the hub's sha256 / git sha1, then renamed), `snapshots/<commit>/<file>` relative symlinks to it
 * (plain copies where symlinks are refused), and `refs/<revision>` holding the commit.
 *
 * Only the files a model needs are fetched (not ONNX / OpenVINO / TF copies): config, tokenizer,
 * sentence-transformers files and module folders, and one weight layout (safetensors first, with its shards).
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';
import { downloadFile, listFiles, modelInfo } from '@huggingface/hub';
import type { ListFileEntry } from '@huggingface/hub';
import { WEIGHT_FILES } from '@kotune/weights';
import { COMMIT_HASH, moduleFolders, repoFolder, shardsOf } from './cache.ts';

const ROOT_FILES = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'sentencepiece.bpe.model',
  'added_tokens.json',
  'modules.json',
  'config_sentence_transformers.json',
  'sentence_bert_config.json',
];

export interface DownloadOptions {
  revision: string;
  cacheDir: string;
  hubUrl?: string;
  accessToken?: string;
  log: (line: string) => void;
}

/** Downloads the model files of `repoId` at `revision` into the cache; returns the snapshot folder. */
export async function downloadModel(repoId: string, opts: DownloadOptions): Promise<string> {
  const credentials = { hubUrl: opts.hubUrl, accessToken: opts.accessToken };
  const repo = { type: 'model' as const, name: repoId };
  const { sha } = await modelInfo({ ...credentials, name: repoId, revision: opts.revision, additionalFields: ['sha'] });
  if (typeof sha !== 'string' || !COMMIT_HASH.test(sha))
    throw new Error(`${repoId}: the hub answered revision "${opts.revision}" without a commit hash`);
  const storage = repoFolder(opts.cacheDir, repoId);
  const snapshot = join(storage, 'snapshots', sha);

  const files = new Map<string, ListFileEntry>();
  for await (const entry of listFiles({ ...credentials, repo, revision: sha, recursive: true })) {
    if (entry.type === 'file') files.set(entry.path, entry);
  }
  const fetchFile = async (path: string) => {
    const entry = files.get(path);
    if (!entry) throw new Error(`${repoId}@${sha}: ${path} is named by the repo's own files but is not in it`);
    await fetchToCache(repoId, sha, entry, storage, snapshot, credentials, opts.log);
  };

  for (const file of ROOT_FILES) if (files.has(file)) await fetchFile(file);
  if (files.has('modules.json')) {
    for (const folder of moduleFolders(join(snapshot, 'modules.json'))) {
      const inside = [...files.keys()].filter((p) => p.startsWith(`${folder}/`));
      const hasSafetensors = inside.includes(`${folder}/model.safetensors`);
      for (const path of inside) if (!(hasSafetensors && path === `${folder}/pytorch_model.bin`)) await fetchFile(path);
      // Modules without files (Normalize) have no folder on the hub; loaders expect one.
      await mkdir(join(snapshot, folder), { recursive: true });
    }
  }
  const weights = WEIGHT_FILES.find((f) => files.has(f));
  if (!weights) throw new Error(`${repoId}@${sha}: the repo has no weights in a supported layout (${WEIGHT_FILES.join(', ')})`);
  await fetchFile(weights);
  if (weights.endsWith('.index.json')) for (const shard of shardsOf(join(snapshot, weights))) await fetchFile(shard);

  if (opts.revision !== sha) await writeAtomically(join(storage, 'refs', opts.revision), sha);
  return snapshot;
}

async function writeAtomically(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, path);
}

/** The hub's checksum of a file: sha256 of the content for LFS files, the git blob sha1 otherwise. */
function checksum(entry: ListFileEntry): { algorithm: 'sha256' | 'sha1'; expected: string; prefix?: string } | undefined {
  if (entry.lfs) return { algorithm: 'sha256', expected: entry.lfs.oid };
  if (entry.oid) return { algorithm: 'sha1', expected: entry.oid, prefix: `blob ${entry.size}\0` };
  return undefined;
}

async function fetchToCache(
  repoId: string,
  sha: string,
  entry: ListFileEntry,
  storage: string,
  snapshot: string,
  credentials: { hubUrl?: string; accessToken?: string },
  log: (line: string) => void,
): Promise<void> {
  const pointer = join(snapshot, entry.path);
  if (existsSync(pointer)) return;
  const etag = entry.lfs?.oid ?? entry.oid ?? entry.xetHash;
  if (!etag || !/^[0-9a-f]+$/.test(etag)) throw new Error(`${repoId}@${sha}: the hub listing gives ${entry.path} no usable hash`);
  const blob = join(storage, 'blobs', etag);
  if (!existsSync(blob)) {
    await mkdir(dirname(blob), { recursive: true });
    const size = entry.lfs?.size ?? entry.size;
    log(`downloading ${repoId} ${entry.path} (${size >= 2 ** 20 ? `${(size / 2 ** 20).toFixed(1)} MB` : `${size} bytes`})`);
    const content = await downloadFile({ ...credentials, repo: { type: 'model', name: repoId }, path: entry.path, revision: sha });
    if (!content) throw new Error(`${repoId}@${sha}: ${entry.path} is listed but the hub has no such file`);
    const check = checksum(entry);
    const hash = check && createHash(check.algorithm);
    if (check?.prefix) hash!.update(check.prefix);
    let received = 0;
    const measure = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        hash?.update(chunk);
        done(null, chunk);
      },
    });
    const incomplete = `${blob}.${process.pid}.incomplete`;
    try {
      await pipeline(Readable.fromWeb(content.stream() as ReadableStream), measure, createWriteStream(incomplete));
      if (received !== size)
        throw new Error(`${repoId}@${sha}: ${entry.path}: received ${received} bytes, the hub lists ${size} (interrupted download)`);
      const actual = hash?.digest('hex');
      if (check && actual !== check.expected)
        throw new Error(
          `${repoId}@${sha}: ${entry.path}: ${check.algorithm} ${actual} differs from the hub's ${check.expected} (corrupted download)`,
        );
      await rename(incomplete, blob);
    } finally {
      await rm(incomplete, { force: true });
    }
  }
  await mkdir(dirname(pointer), { recursive: true });
  const tmp = `${pointer}.${process.pid}.tmp`;
  try {
    await symlink(relative(dirname(pointer), blob), tmp);
  } catch {
    await copyFile(blob, tmp);
  }
  await rename(tmp, pointer);
}
