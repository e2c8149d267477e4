import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MANIFEST_FILE, readManifest, sha256File, updateManifest, verifyManifest, writeManifest } from '../src/index.ts';

/** A folder like a model export: two files at the root, one in a module folder, and a hidden staging entry. */
function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kotune-manifest-'));
  writeFileSync(join(dir, 'config.json'), '{"hidden_size": 32}\n');
  writeFileSync(join(dir, 'model.safetensors'), Buffer.alloc(5000, 7));
  mkdirSync(join(dir, '1_Pooling'));
  writeFileSync(join(dir, '1_Pooling', 'config.json'), '{}\n');
  mkdirSync(join(dir, '.save-1-1'));
  writeFileSync(join(dir, '.save-1-1', 'junk'), 'x');
  return dir;
}

test("checksums.json lists every file (subfolders with /, hidden entries left out) with its size and sha256sum's hash", async () => {
  const dir = folder();
  const manifest = await writeManifest(dir);
  assert.equal(Object.keys(manifest.files), ['1_Pooling/config.json', 'config.json', 'model.safetensors']);
  assert.equal(readManifest(dir), manifest);
  assert.is(manifest.files['model.safetensors']!.size, 5000);
  try {
    const line = execFileSync('sha256sum', [join(dir, 'model.safetensors')], { encoding: 'utf8' });
    assert.is(manifest.files['model.safetensors']!.sha256, line.split(' ')[0], 'the hash sha256sum prints');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // no sha256sum on this machine: the hash is checked below
  }
  const whole = (file: string) =>
    createHash('sha256')
      .update(readFileSync(join(dir, file)))
      .digest('hex');
  for (const file of ['config.json', 'model.safetensors'])
    assert.is(await sha256File(join(dir, file)), whole(file), `${file}: block-wise = whole-file hash`);
  assert.is(manifest.files['config.json']!.sha256, whole('config.json'));
  assert.equal(await verifyManifest(dir), { present: true, problems: [] });
  assert.equal(
    await verifyManifest(mkdtempSync(join(tmpdir(), 'kotune-none-'))),
    { present: false, problems: [] },
    'no manifest: nothing checked',
  );
});

test('a corrupt, a truncated and a missing file are each named; sizes alone catch the last two', async () => {
  const dir = folder();
  await writeManifest(dir);
  const fd = openSync(join(dir, 'model.safetensors'), 'r+');
  writeSync(fd, Buffer.alloc(1000, 1), 0, 1000, 2000); // 1,000 bytes overwritten in the middle: same size
  closeSync(fd);
  truncateSync(join(dir, 'config.json'), 10);
  rmSync(join(dir, '1_Pooling', 'config.json'));
  writeFileSync(join(dir, 'extra.txt'), 'not listed, not checked');
  assert.equal((await verifyManifest(dir)).problems, [
    '1_Pooling/config.json is missing',
    'config.json has 10 bytes, checksums.json says 20 (truncated)',
    'model.safetensors does not match its SHA-256 in checksums.json (corrupt or changed)',
  ]);
  assert.equal(
    (await verifyManifest(dir, { sizesOnly: true })).problems,
    ['1_Pooling/config.json is missing', 'config.json has 10 bytes, checksums.json says 20 (truncated)'],
    'sizes only: the same-size corruption passes',
  );
});

test('writeManifest keeps the entries of files of the recorded size and hashes the new ones; a broken manifest is named', async () => {
  const dir = folder();
  const first = await writeManifest(dir);
  writeFileSync(join(dir, 'optimizer.safetensors'), 'moments');
  const second = await writeManifest(dir);
  assert.equal(second.files['model.safetensors'], first.files['model.safetensors']);
  assert.is(second.files['optimizer.safetensors']!.size, 7);
  writeFileSync(join(dir, MANIFEST_FILE), '{"version": 1,');
  await verifyManifest(dir).then(
    () => assert.unreachable('should throw'),
    (e: Error) => assert.match(e.message, `${join(dir, MANIFEST_FILE)}: not valid JSON (`),
  );
  writeFileSync(join(dir, MANIFEST_FILE), '{"files": []}');
  await verifyManifest(dir).then(
    () => assert.unreachable('should throw'),
    (e: Error) => assert.match(e.message, /not a kotune checksum manifest \(version 1, sha256\); delete it to load the folder unverified$/),
  );
  assert.ok(readFileSync(join(dir, 'config.json')).length > 0);
});

test('updateManifest records a file rewritten in place, and does nothing in a folder without a manifest', async () => {
  const dir = folder();
  await writeManifest(dir);
  writeFileSync(join(dir, 'config.json'), '{"hidden_size": 32, "transformers.js_config": {}}\n');
  assert.equal((await verifyManifest(dir)).problems, ['config.json has 50 bytes, checksums.json says 20']);
  updateManifest(dir, ['config.json']);
  assert.equal(await verifyManifest(dir), { present: true, problems: [] });
  const bare = folder();
  updateManifest(bare, ['config.json']);
  assert.not.ok(readdirSync(bare).includes(MANIFEST_FILE));
});

test.run();
