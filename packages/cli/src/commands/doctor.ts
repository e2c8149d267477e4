/**
 * `kotune doctor`: what kotune will run on here and why — the backend it picks, the native kernels and the
 * BLAS behind them, the threads they use, the memory limits that apply (machine, container cgroup, V8 heap,
 * the wasm backend's 4 GB), and what a GPU would need. Read-only: it initialises the backend, nothing more.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, freemem, totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { DEFAULT_BACKENDS, initBackend, installedNativeBackends } from '@kotune/engine';
import { describeBlas, loadNative } from '@kotune/native';
import { parseCommandArgs, type Flags } from '../args.ts';

const SYNOPSIS = '';
const FLAGS: Flags = {};

const TFJS_VERSION = '4.22.0';
const GPU_NEEDS = 'Linux x86-64, an NVIDIA driver, CUDA 11.2 and cuDNN 8.1 (libcudart.so.11.0, libcudnn.so.8 on the loader path)';

const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GB`;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The container's CPU and memory limits: cgroup v2 (`cpu.max`, `memory.max`), else v1; undefined where none is set. */
function cgroupLimits(): { cpus?: number; memory?: number; version?: string } {
  const cpuMax = readText('/sys/fs/cgroup/cpu.max');
  if (cpuMax !== undefined) {
    const [quota, period] = cpuMax.split(/\s+/);
    const memory = readText('/sys/fs/cgroup/memory.max');
    return {
      version: 'v2',
      cpus: quota !== 'max' ? Number(quota) / Number(period) : undefined,
      memory: memory !== undefined && memory !== 'max' ? Number(memory) : undefined,
    };
  }
  const quota = Number(readText('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(readText('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  const memory = Number(readText('/sys/fs/cgroup/memory/memory.limit_in_bytes'));
  if (!Number.isFinite(quota) && !Number.isFinite(memory)) return {};
  return {
    version: 'v1',
    cpus: quota > 0 && period > 0 ? quota / period : undefined,
    memory: memory > 0 && memory < 2 ** 60 ? memory : undefined, // v1 says "no limit" with a huge number
  };
}

/** The CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status), where Linux says. */
function affinity(): string | undefined {
  return readText('/proc/self/status')?.match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1];
}

/** Which of the GPU libraries tfjs-node-gpu loads the dynamic loader can find (Linux: `ldconfig -p`). */
function cudaLibraries(): string {
  if (process.platform !== 'linux') return `not looked for on ${process.platform}`;
  let cache: string;
  try {
    cache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return 'unknown (ldconfig -p did not run)';
  }
  return ['libcudart.so.11.0', 'libcudnn.so.8'].map((lib) => `${lib} ${cache.includes(lib) ? 'found' : 'missing'}`).join(', ');
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('doctor', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const lines: [string, string][] = [];
  const say = (label: string, text: string) => lines.push([label, text]);
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

  say('kotune', `${version}, Node ${process.version} (${process.platform}-${process.arch})`);

  // CPUs and memory: what the machine has, and what this process may use of it.
  const limits = cgroupLimits();
  const allowed = affinity();
  say(
    'cpu',
    `${cpus()[0]?.model.trim() ?? 'unknown'}: ${cpus().length} logical cores, ${availableParallelism()} available to this process` +
      `${allowed ? ` (affinity ${allowed})` : ''}; container CPU quota: ${limits.cpus !== undefined ? `${limits.cpus} CPUs (cgroup ${limits.version})` : 'none'}`,
  );
  say(
    'memory',
    `${gb(totalmem())} total, ${gb(freemem())} free; container limit: ${limits.memory !== undefined ? `${gb(limits.memory)} (cgroup ${limits.version})` : 'none'}; ` +
      `V8 heap limit ${gb(getHeapStatistics().heap_size_limit)} (node --max-old-space-size); the wasm backend's memory is capped at 4 GB, the cpu backend's is not; ` +
      'a run whose estimate (weights, gradients, AdamW moments, activations) wasm cannot hold goes to cpu, with a line saying so',
  );

  // The backend, as every command would pick it.
  const reasons: string[] = [];
  const forced = (parsed.values.backend as string | undefined) ?? process.env.KOTUNE_BACKEND;
  try {
    const info = await initBackend({ backend: parsed.values.backend as string | undefined, log: (line) => reasons.push(line) });
    const why = forced
      ? `asked for (${parsed.values.backend ? '--backend' : 'KOTUNE_BACKEND'})`
      : `the default: the first of ${DEFAULT_BACKENDS.join(', ')} that loads`;
    say('backend', `${info.description.replace(/^backend: /, '')} — ${why}`);
    for (const reason of info.skipped) say('', reason);
  } catch (error) {
    say('backend', `none: ${(error as Error).message.split('\n')[0]}`);
  }

  // The native kernels and their BLAS, whatever the backend (they serve wasm and cpu).
  const choice = process.env.KOTUNE_NATIVE ?? 'auto';
  try {
    const native = loadNative(choice);
    say('native kernels', 'kernels' in native ? `${native.kernels.describe()} (KOTUNE_NATIVE=${choice})` : `none: ${native.reason}`);
  } catch (error) {
    say('native kernels', `none: ${(error as Error).message}`);
  }
  say('BLAS', describeBlas());
  const env = (name: string) => `${name}=${process.env[name] ?? '(unset)'}`;
  say(
    'threads',
    `${env('OMP_NUM_THREADS')} (built-in product), ${env('OPENBLAS_NUM_THREADS')} (OpenBLAS): unset means every available core; ` +
      'the rest of the wasm backend runs on one thread',
  );

  // The GPU path: never a default, always the user's explicit choice.
  const installed = installedNativeBackends();
  const driver = readText('/proc/driver/nvidia/version')?.split('\n')[0];
  say(
    'GPU',
    installed['tensorflow-gpu']
      ? `@tensorflow/tfjs-node-gpu ${installed['tensorflow-gpu']} is installed: --backend tensorflow-gpu uses it (untested by kotune)`
      : `not set up. A GPU needs ${GPU_NEEDS}; then \`npm i @tensorflow/tfjs-node-gpu@${TFJS_VERSION}\` (its install downloads ` +
          'libtensorflow) and --backend tensorflow-gpu. kotune does not test this path',
  );
  say('', `here: NVIDIA driver ${driver ? `found (${driver.replace(/\s+/g, ' ')})` : 'not found'}; ${cudaLibraries()}`);
  if (installed.tensorflow)
    say('', `@tensorflow/tfjs-node ${installed.tensorflow} is installed: --backend tensorflow uses it (untested by kotune)`);

  const width = Math.max(...lines.map(([label]) => label.length));
  for (const [label, text] of lines) console.log(`${label.padEnd(width)}  ${text}`);
}
