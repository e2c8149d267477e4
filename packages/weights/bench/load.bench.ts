/**
 * Peak memory and time of `loadStateDict` on a ~400 MB checkpoint, as model.safetensors and (when a python
 * with torch is available: /usr/bin/python3 or $KOTUNE_TORCH_PYTHON) as pytorch_model.bin.
 * Target: peak RSS growth ≤ 1.1 × the file size (the loaded Float32 tensors themselves, no second copy).
 * Each load runs in a fresh child process so that maxRSS measures that load alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TENSORS = 100;
const ELEMENTS = 1_000_000; // 100 × 4 MB = 400 MB of F32
const TARGET_RATIO = 1.1;

if (process.argv[2] === 'measure') {
  const { loadStateDict } = await import('../src/index.ts');
  const baseline = process.memoryUsage().rss;
  const started = performance.now();
  const tensors = await loadStateDict(process.argv[3]!);
  const seconds = (performance.now() - started) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ baseline, peak, seconds, count: tensors.size }));
  process.exit(0);
}

const { writeSafetensors } = await import('../src/index.ts');
const dir = mkdtempSync(join(tmpdir(), 'kotune-weights-bench-'));
try {
  const row = new Float32Array(ELEMENTS).map((_, i) => Math.sin(i));
  const st = join(dir, 'st');
  mkdirSync(st);
  // The same 4 MB array under every name: the writer streams it, the file still holds 400 MB.
  await writeSafetensors(
    join(st, 'model.safetensors'),
    new Map(Array.from({ length: TENSORS }, (_, i) => [`layer.${i}.weight`, { dtype: 'F32' as const, shape: [1000, 1000], data: row }])),
  );
  const folders: [string, string][] = [['model.safetensors', st]];

  const python = process.env.KOTUNE_TORCH_PYTHON ?? '/usr/bin/python3';
  const bin = join(dir, 'bin');
  const made =
    existsSync(python) &&
    spawnSync(
      python,
      [
        '-c',
        `
import os, sys, torch
from collections import OrderedDict
os.makedirs(sys.argv[1], exist_ok=True)
sd = OrderedDict((f'layer.{i}.weight', torch.randn(1000, 1000)) for i in range(${TENSORS}))
sd['layer.0.transposed'] = sd['layer.1.weight'].t()
torch.save(sd, os.path.join(sys.argv[1], 'pytorch_model.bin'))
`,
        bin,
      ],
      { stdio: 'inherit' },
    ).status === 0;
  if (made) folders.push(['pytorch_model.bin', bin]);
  else console.log(`(no pytorch_model.bin case: ${python} with torch not found)`);

  console.log('file                 size MB   baseline MB   peak MB   growth/size   seconds   target');
  let failed = false;
  for (const [file, folder] of folders) {
    const size = statSync(join(folder, file)).size;
    const child = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, 'measure', folder], {
      encoding: 'utf8',
    });
    if (child.status !== 0) throw new Error(child.stderr);
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as { baseline: number; peak: number; seconds: number };
    const ratio = (r.peak - r.baseline) / size;
    const ok = ratio <= TARGET_RATIO;
    failed ||= !ok;
    const mb = (n: number) => (n / 2 ** 20).toFixed(0).padStart(7);
    console.log(
      `${file.padEnd(20)} ${mb(size)}   ${mb(r.baseline)}       ${mb(r.peak)}   ${ratio.toFixed(3).padStart(11)}   ${r.seconds.toFixed(2).padStart(7)}   ${ok ? 'ok' : `FAIL (> ${TARGET_RATIO})`}`,
    );
  }
  if (failed) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
