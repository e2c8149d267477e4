/**
 * Reading speed of `readJsonl` against `node:readline` (which splits lines the same way but without line
 * numbers for blank lines' sake, BOM handling or JSON errors), and batches per second of the sampler.
 * Target: the data pipeline must never be what a CPU training step waits for (> 100 MB/s reading,
 * > 500 batches/s sampling at batch 32 × group 8, where a training step takes well over 10 ms).
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJsonl, TrainSampler } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kotune-bench-'));
const path = join(dir, 'large.jsonl');
const lines = 100_000;
const out = createWriteStream(path);
for (let i = 0; i < lines; i++) {
  const line = JSON.stringify({
    query: `질문 ${i}`,
    pos: [`정답 문단 ${i} `.repeat(20)],
    neg: Array.from({ length: 7 }, (_, k) => `오답 ${i}.${k} `.repeat(20)),
  });
  if (!out.write(line + '\n')) await once(out, 'drain');
}
out.end();
await once(out, 'finish');

const megabytes = statSync(path).size / 1e6;

async function time(label: string, run: () => Promise<number>, perSecondOf?: number) {
  const start = performance.now();
  const count = await run();
  const seconds = (performance.now() - start) / 1000;
  const rate = perSecondOf === undefined ? `${(count / seconds).toFixed(0)} batches/s` : `${(perSecondOf / seconds).toFixed(0)} MB/s`;
  console.log(`${label.padEnd(44)} ${rate.padStart(14)}  (${count} in ${seconds.toFixed(2)} s)`);
}

await time(
  'readJsonl lines',
  async () => {
    let n = 0;
    for await (const _ of readJsonl(path)) n++;
    return n;
  },
  megabytes,
);
await time(
  'readline + JSON.parse lines',
  async () => {
    let n = 0;
    for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
      if (line.trim() !== '') JSON.parse(line);
      n++;
    }
    return n;
  },
  megabytes,
);
for (const noDuplicates of [false, true]) {
  await time(`sampler batches (32 × 8, noDuplicates ${noDuplicates})`, async () => {
    const sampler = new TrainSampler({ kind: 'embedder', paths: [path], batchSize: 32, groupSize: 8, noDuplicates });
    let n = 0;
    for await (const _ of sampler) n++;
    return n;
  });
}
rmSync(dir, { recursive: true });
