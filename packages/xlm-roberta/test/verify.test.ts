/** A saved model folder carries checksums.json; loading it checks every file first, and names what is damaged. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, cpSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@kotune/engine';
import { MANIFEST_FILE, readManifest } from '@kotune/weights';
import { Embedder, Reranker } from '../src/index.ts';
import { EMBEDDER_DIR, RERANKER_DIR } from './fixture.ts';

await initBackend({ backend: 'wasm', log: null });

const saved = mkdtempSync(join(tmpdir(), 'kotune-verify-'));
const reranker = await Reranker.load(RERANKER_DIR, { log: null });
await reranker.save(join(saved, 'reranker'));
reranker.dispose();

/** A copy of the saved reranker, damaged by `damage(dir)`. */
function damaged(name: string, damage: (dir: string) => void): string {
  const dir = join(saved, name);
  cpSync(join(saved, 'reranker'), dir, { recursive: true });
  damage(dir);
  return dir;
}

async function loadError(dir: string): Promise<string> {
  return Reranker.load(dir, { log: null }).then(
    (m) => {
      m.dispose();
      return assert.unreachable('should refuse to load') as never;
    },
    (e: Error) => e.message,
  );
}

const ADVICE = `${MANIFEST_FILE} records the files as kotune saved them: copy the folder again from where it came, or delete ${MANIFEST_FILE} to load it as it is`;

test('a save writes checksums.json listing every file; the folder loads', async () => {
  const dir = join(saved, 'reranker');
  assert.ok(readdirSync(dir).includes(MANIFEST_FILE));
  assert.equal(
    Object.keys(readManifest(dir)!.files).sort(),
    readdirSync(dir)
      .filter((f) => f !== MANIFEST_FILE)
      .sort(),
  );
  (await Reranker.load(dir, { log: null })).dispose();
});

test('1,000 overwritten bytes inside model.safetensors (same size) are found', async () => {
  const dir = damaged('corrupt', (d) => {
    const fd = openSync(join(d, 'model.safetensors'), 'r+');
    writeSync(fd, Buffer.alloc(1000, 0x41), 0, 1000, 20_000);
    closeSync(fd);
  });
  assert.is(
    await loadError(dir),
    `${dir}: model.safetensors does not match its SHA-256 in ${MANIFEST_FILE} (corrupt or changed). ${ADVICE}`,
  );
  // verify: false skips the check (the weights load, damaged): what a user who deletes checksums.json gets too.
  (await Reranker.load(dir, { log: null, verify: false })).dispose();
});

test('a truncated file is found by its size', async () => {
  let size = 0;
  const dir = damaged('truncated', (d) => {
    size = statSync(join(d, 'model.safetensors')).size;
    truncateSync(join(d, 'model.safetensors'), size - 100);
  });
  assert.is(
    await loadError(dir),
    `${dir}: model.safetensors has ${size - 100} bytes, ${MANIFEST_FILE} says ${size} (truncated). ${ADVICE}`,
  );
});

test('a missing file is named; without checksums.json the folder loads as it is', async () => {
  const dir = damaged('missing', (d) => rmSync(join(d, 'special_tokens_map.json')));
  assert.is(await loadError(dir), `${dir}: special_tokens_map.json is missing. ${ADVICE}`);
  rmSync(join(dir, MANIFEST_FILE));
  (await Reranker.load(dir, { log: null })).dispose();
});

test("an embedder's checksums.json covers its module folders", async () => {
  const embedder = await Embedder.load(EMBEDDER_DIR, { log: null });
  const dir = join(saved, 'embedder');
  await embedder.save(dir);
  embedder.dispose();
  assert.ok('1_Pooling/config.json' in readManifest(dir)!.files);
  rmSync(join(dir, '1_Pooling', 'config.json'));
  await Embedder.load(dir, { log: null }).then(
    () => assert.unreachable('should refuse'),
    (e: Error) => assert.is(e.message, `${dir}: 1_Pooling/config.json is missing. ${ADVICE}`),
  );
});

test.run();
