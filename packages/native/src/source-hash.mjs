// The hash of the addon's sources (src/*.cc and *.h: names and contents), which build.mjs compiles into the addon
// and src/index.ts compares at load, so that an addon built from other sources (a `git pull` without a rebuild)
// is refused instead of run. Plain JavaScript: build.mjs runs before the workspace's TypeScript tooling exists.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** 16 hex digits of SHA-256 over the sources in `dir`, in name order. */
export function sourceHash(dir) {
  const hash = createHash('sha256');
  for (const name of readdirSync(dir)
    .filter((f) => /\.(cc|h)$/.test(f))
    .sort()) {
    hash
      .update(`${name}\0`)
      .update(readFileSync(join(dir, name)))
      .update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}
