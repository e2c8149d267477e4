/**
 * On-disk cache of corpus embeddings, so that evaluating or mining again with the same model and corpus
 * skips the encoding. The key hashes the model (its folder path and the size and modification time of
 * each file in it), the corpus file's content, and the encoding options; the entry is the raw Float32
 * matrix (`<key>.f32`, row-major, little-endian) plus a small JSON header (`<key>.json`), both written
 * atomically. Loading reads the file straight into the matrix's buffer, so memory is 4 × rows × dim once.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '@kotune/metrics';
import { VectorMatrix } from './topk.ts';

export function defaultCacheDir(): string {
  return process.env.KOTUNE_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kotune', 'embeddings');
}

export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Identifies a model folder's current weights without reading them: path + (name, size, mtime) of its files. */
export function modelFingerprint(folder: string): string {
  const root = resolve(folder);
  const parts: string[] = [root];
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path, `${prefix}${name}/`);
      else parts.push(`${prefix}${name}:${stat.size}:${stat.mtimeMs}`);
    }
  };
  walk(root, '');
  return createHash('sha256').update(parts.join('\n')).digest('hex');
}

export interface CacheKeyParts {
  model: string;
  corpusSha256: string;
  options: Record<string, unknown>;
}

export function cacheKey(parts: CacheKeyParts): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** Bytes per `readSync` when loading (a single read is capped near 2 GiB; chunks keep each call short). */
const READ_CHUNK_BYTES = 64 << 20;

interface CacheHeader {
  rows: number;
  dim: number;
  parts: CacheKeyParts;
}

export class EmbeddingCache {
  constructor(readonly dir: string) {}

  load(key: string): VectorMatrix | null {
    const headerPath = join(this.dir, `${key}.json`);
    const dataPath = join(this.dir, `${key}.f32`);
    if (!existsSync(headerPath) || !existsSync(dataPath)) return null;
    const header = JSON.parse(readFileSync(headerPath, 'utf8')) as CacheHeader;
    const fd = openSync(dataPath, 'r');
    try {
      if (fstatSync(fd).size !== header.rows * header.dim * 4) return null; // torn or foreign file: re-encode
      const data = new Float32Array(header.rows * header.dim);
      // Read into the matrix's own bytes: no intermediate Buffer, so the file is never held twice.
      const bytes = new Uint8Array(data.buffer);
      for (let offset = 0; offset < bytes.length; ) {
        const read = readSync(fd, bytes, offset, Math.min(READ_CHUNK_BYTES, bytes.length - offset), offset);
        if (read === 0) return null; // shrank while reading
        offset += read;
      }
      return new VectorMatrix(header.rows, header.dim, data);
    } finally {
      closeSync(fd);
    }
  }

  save(key: string, matrix: VectorMatrix, parts: CacheKeyParts): void {
    mkdirSync(this.dir, { recursive: true });
    // Data first, header last: a header on disk means the data beside it is complete.
    writeFileAtomic(join(this.dir, `${key}.f32`), new Uint8Array(matrix.data.buffer, matrix.data.byteOffset, matrix.data.byteLength));
    writeFileAtomic(
      join(this.dir, `${key}.json`),
      `${JSON.stringify({ rows: matrix.rows, dim: matrix.dim, parts } satisfies CacheHeader)}\n`,
    );
  }
}
