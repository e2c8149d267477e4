/**
 * Picks the TensorFlow.js backend at run time.
 *
 * Default: wasm (XNNPACK + SIMD), else cpu (pure JS): the backends our tests run. On wasm and cpu the model's
 * products, GELU, dropout and LayerNorm, and the optimizer's AdamW updates and gradient norms go to the
 * native kernels of @kotune/native when it is built (`KOTUNE_NATIVE`, see `native-kernels.ts`); the start-up
 * line says which kernel multiplies. A run whose memory estimate (`memory-plan.ts`) wasm's 4 GB cannot hold
 * skips wasm for cpu, with one line saying why. kotune's wasm is registered as `kotune-wasm` (`wasm-kernels.ts`).
 * tfjs-node-gpu (CUDA) and tfjs-node (native CPU) run only when asked for (`--backend`, `KOTUNE_BACKEND`) and
 * installed by the user (optional peers): their install script downloads libtensorflow, the GPU one needs
 * the CUDA 11.2 / cuDNN 8 libraries, and no test of ours runs them.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { totalmem } from 'node:os';
import { fitsWasm, formatEstimate, gigabytes, type MemoryEstimate } from './memory-plan.ts';
import { keepFreedMemory, useNativeKernels } from './native-kernels.ts';
import { checkTfjsInternals } from './tfjs-internals.ts';
import { KOTUNE_CPU, startKotuneCpu } from './cpu-backend.ts';
import { KOTUNE_WASM, startKotuneWasm } from './wasm-kernels.ts';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];
/** Tried in this order when no backend is asked for. */
export const DEFAULT_BACKENDS: readonly BackendName[] = ['wasm', 'cpu'];

export interface BackendInfo {
  name: BackendName;
  /**
   * The line printed at start-up, e.g. `backend: wasm (threads 1, simd); products: OpenBLAS 0.3.21
   * (libopenblas.so.0, Cooperlake), 2 threads`.
   */
  description: string;
  /** Why each backend tried before this one was skipped. */
  skipped: string[];
}

const require = createRequire(import.meta.url);

let active: BackendInfo | undefined;
/** The `native` option of the call that chose `active`. */
let activeNative: string | undefined;
/** Whether `active` was asked for by name (`backend`, `KOTUNE_BACKEND`) rather than chosen by default. */
let activeForced = false;

/** Accepts the names users type: `gpu`, `node`, `tfjs-node`, `tfjs-node-gpu` as aliases. */
export function parseBackendName(value: string): BackendName {
  const aliases: Record<string, BackendName> = {
    'tensorflow-gpu': 'tensorflow-gpu',
    'tfjs-node-gpu': 'tensorflow-gpu',
    gpu: 'tensorflow-gpu',
    cuda: 'tensorflow-gpu',
    tensorflow: 'tensorflow',
    'tfjs-node': 'tensorflow',
    node: 'tensorflow',
    wasm: 'wasm',
    cpu: 'cpu',
  };
  const name = aliases[value.trim().toLowerCase()];
  if (!name) throw new Error(`unknown backend "${value}": use one of ${BACKEND_NAMES.join(', ')} (aliases gpu, node)`);
  return name;
}

async function tryNative(pkg: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node'): Promise<string> {
  // The addon registers the 'tensorflow' backend when it loads; a missing package, a missing
  // libtensorflow or missing CUDA libraries all surface here as an exception.
  require(pkg);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('the tensorflow backend did not initialise');
  await tf.ready();
  return pkg === '@tensorflow/tfjs-node-gpu' ? 'tensorflow (tfjs-node-gpu, CUDA)' : 'tensorflow (tfjs-node, native CPU)';
}

async function tryWasm(): Promise<string> {
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await startKotuneWasm())) throw new Error('the wasm backend did not initialise');
  await tf.ready();
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return `wasm (threads ${wasm.getThreadsCount()}, ${simd ? 'simd' : 'no simd'})`;
}

async function tryCpu(): Promise<string> {
  if (!(await startKotuneCpu())) throw new Error('the cpu backend did not initialise');
  await tf.ready();
  // The cpu backend prints a banner advising tfjs-node on its first write in Node; our start-up line already
  // says which backend runs and why (tfjs-backend-cpu 4.22 keeps the flag in `firstUse`).
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  return 'cpu (pure JavaScript)';
}

const attempts: Record<BackendName, () => Promise<string>> = {
  'tensorflow-gpu': () => tryNative('@tensorflow/tfjs-node-gpu'),
  tensorflow: () => tryNative('@tensorflow/tfjs-node'),
  wasm: tryWasm,
  cpu: tryCpu,
};

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? text;
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

export interface InitOptions {
  /** Force one backend; otherwise `KOTUNE_BACKEND`, otherwise the fallback order. */
  backend?: string;
  /**
   * The native kernels for wasm and cpu: `auto`, `openblas`, `builtin`, `builtin-avx2`, `off`; otherwise
   * `KOTUNE_NATIVE`, otherwise `auto`.
   */
  native?: string;
  /** Where the start-up line and fall-through reasons go; default stderr. Pass `null` for silence. */
  log?: ((line: string) => void) | null;
  /**
   * The run's memory (`trainingMemory` / `inferenceMemory`): when wasm cannot hold it, the default choice skips
   * wasm for cpu with one line saying why, and a forced wasm is an error.
   */
  memory?: MemoryEstimate;
}

/** Why wasm cannot run a run of `memory`, or undefined when it can (or nothing is known). */
function wasmTooSmall(memory: MemoryEstimate | undefined): string | undefined {
  if (memory === undefined || fitsWasm(memory)) return undefined;
  return `${formatEstimate(memory)}, more than wasm's 4 GB (2³² bytes) can hold`;
}

/** A line when even the machine's memory is short of the estimate (the cpu backend has no cap of its own). */
function machineTooSmall(memory: MemoryEstimate | undefined): string | undefined {
  if (memory === undefined || memory.total <= totalmem()) return undefined;
  return (
    `memory: ${formatEstimate(memory)}, more than this machine's ${gigabytes(totalmem())} if the inputs reach their ` +
    'maximum lengths (batches are padded to their longest input): lower the batch or the lengths, or turn on gradient_checkpointing, if it runs out'
  );
}

/**
 * Selects and initialises a backend, once per process (later calls with the same or no request
 * return the active one; asking for a different one switches). A forced backend that cannot load
 * is an error, never a silent fallback.
 */
export async function initBackend(options: InitOptions = {}): Promise<BackendInfo> {
  const log = options.log === undefined ? (line: string) => process.stderr.write(`${line}\n`) : options.log;
  const requested = options.backend ?? process.env.KOTUNE_BACKEND;
  const forced = requested ? parseBackendName(requested) : undefined;
  const tooSmall = wasmTooSmall(options.memory);
  if (forced === 'wasm' && tooSmall) {
    throw new Error(
      `backend wasm was requested but cannot run this: ${tooSmall}; use --backend cpu (no such cap), or lower the batch or the lengths`,
    );
  }
  const keepActive = active && (forced ? forced === active.name : !(tooSmall && active.name === 'wasm' && !activeForced));
  if (active && keepActive && (options.native === undefined || options.native === activeNative)) {
    if (tf.getBackend() !== backendRegistryName(active.name)) await tf.setBackend(backendRegistryName(active.name));
    return active;
  }
  const order = forced ? [forced] : DEFAULT_BACKENDS;
  const skipped: string[] = [];
  for (const name of order) {
    let description: string;
    if (name === 'wasm' && tooSmall && !forced) {
      const reason = `wasm skipped: ${tooSmall}`;
      skipped.push(reason);
      log?.(`backend: ${reason}; using the next one`);
      continue;
    }
    try {
      description = await attempts[name]();
    } catch (err) {
      const reason = `${name} unavailable: ${firstLine(err)}`;
      if (forced) throw new Error(`backend ${name} was requested but cannot be used: ${firstLine(err)}`);
      skipped.push(reason);
      log?.(`backend: ${reason}; trying the next one`);
      continue;
    }
    if (name === 'wasm' || name === 'cpu') {
      checkTfjsInternals(name); // a tfjs without what kotune relies on stops here, whichever backend was asked for
      description += `; products: ${useNativeKernels(options.native)}`;
      const kept = name === 'cpu' ? keepFreedMemory() : undefined;
      if (kept) description += `; ${kept}`;
    }
    activeNative = options.native;
    activeForced = forced !== undefined;
    active = { name, description: `backend: ${description}`, skipped };
    log?.(active.description);
    const short = machineTooSmall(options.memory);
    if (short) log?.(short);
    return active;
  }
  throw new Error(`no TensorFlow.js backend could be initialised:\n${skipped.join('\n')}`);
}

/** The name tf.js knows the backend by (`tf.getBackend()`). */
function backendRegistryName(name: BackendName): string {
  return name === 'tensorflow-gpu' ? 'tensorflow' : name === 'wasm' ? KOTUNE_WASM : name === 'cpu' ? KOTUNE_CPU : name;
}

/** The backend `initBackend` chose, or undefined before the first call. */
export function activeBackend(): BackendInfo | undefined {
  return active;
}

/**
 * The version of each TensorFlow native package `initBackend` could load when asked for (the user installed
 * it beside kotune), or undefined where it is absent; nothing is loaded.
 */
export function installedNativeBackends(): Record<'tensorflow-gpu' | 'tensorflow', string | undefined> {
  const version = (pkg: string): string | undefined => {
    try {
      return (require(`${pkg}/package.json`) as { version: string }).version;
    } catch {
      return undefined;
    }
  };
  return { 'tensorflow-gpu': version('@tensorflow/tfjs-node-gpu'), tensorflow: version('@tensorflow/tfjs-node') };
}

let defaultInit: Promise<BackendInfo> | undefined;

/**
 * The active backend, or the default one initialised now (as `initBackend()`, honouring `KOTUNE_BACKEND`)
 * when nothing chose one yet. `Reranker.load`, `Embedder.load`, `train` and `evaluate` call it, so that a
 * program that never calls `initBackend` runs on wasm with the native kernels, not on TensorFlow.js's own
 * default, the pure-JS cpu backend (about 50x slower). With `memory`, a wasm that was chosen by default and
 * cannot hold the run gives way to cpu (one line says why); one that was asked for by name is an error.
 */
export async function ensureBackend(log?: InitOptions['log'], memory?: MemoryEstimate): Promise<BackendInfo> {
  if (active && (active.name !== 'wasm' || !wasmTooSmall(memory))) return active;
  if (active) return initBackend({ backend: activeForced ? 'wasm' : undefined, native: activeNative, log, memory });
  defaultInit ??= initBackend({ log, memory }).finally(() => (defaultInit = undefined));
  return defaultInit;
}

/** Reads `--backend NAME` / `--backend=NAME` from argv, for scripts that take no other flags. */
export function backendFromArgv(argv: readonly string[] = process.argv): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--backend') return argv[i + 1];
    if (arg.startsWith('--backend=')) return arg.slice('--backend='.length);
  }
  return undefined;
}
