/**
 * Picks the TensorFlow.js backend at run time.
 *
 * Default: wasm (XNNPACK + SIMD), else cpu (pure JS): the backends our tests run. On wasm and cpu the model's
 * products, GELU, dropout and LayerNorm, and the optimizer's AdamW updates and gradient norms go to the
 * native kernels of @kotune/native when it is built (`KOTUNE_NATIVE`, see `native-kernels.ts`); the start-up
 * line says which kernel multiplies.
 * tfjs-node-gpu (CUDA) and tfjs-node (native CPU) run only when asked for (`--backend`, `KOTUNE_BACKEND`) and
 * installed by the user (optional peers): their install script downloads libtensorflow, the GPU one needs
 * the CUDA 11.2 / cuDNN 8 libraries, and no test of ours runs them.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { useNativeKernels } from './native-kernels.ts';
import { registerWasmKernels } from './wasm-kernels.ts';

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

/** Accepts the names users type: `gpu`, `node`, `tfjs-node`, `tfjs-node-gpu` as aliases. */
export function parseBackendName(value: string): BackendName {
  const aliases: Record<string, BackendName> = {
    'tensorflow-gpu': 'tensorflow-gpu', 'tfjs-node-gpu': 'tensorflow-gpu', gpu: 'tensorflow-gpu', cuda: 'tensorflow-gpu',
    tensorflow: 'tensorflow', 'tfjs-node': 'tensorflow', node: 'tensorflow',
    wasm: 'wasm', cpu: 'cpu',
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
  registerWasmKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
  await tf.ready();
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return `wasm (threads ${wasm.getThreadsCount()}, ${simd ? 'simd' : 'no simd'})`;
}

async function tryCpu(): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
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
  if (active && (!forced || forced === active.name) && (options.native === undefined || options.native === activeNative)) {
    if (tf.getBackend() !== backendRegistryName(active.name)) await tf.setBackend(backendRegistryName(active.name));
    return active;
  }
  const order = forced ? [forced] : DEFAULT_BACKENDS;
  const skipped: string[] = [];
  for (const name of order) {
    let description: string;
    try {
      description = await attempts[name]();
    } catch (err) {
      const reason = `${name} unavailable: ${firstLine(err)}`;
      if (forced) throw new Error(`backend ${name} was requested but cannot be used: ${firstLine(err)}`);
      skipped.push(reason);
      log?.(`backend: ${reason}; trying the next one`);
      continue;
    }
    if (name === 'wasm' || name === 'cpu') description += `; products: ${useNativeKernels(options.native)}`;
    activeNative = options.native;
    active = { name, description: `backend: ${description}`, skipped };
    log?.(active.description);
    return active;
  }
  throw new Error(`no TensorFlow.js backend could be initialised:\n${skipped.join('\n')}`);
}

function backendRegistryName(name: BackendName): string {
  return name === 'tensorflow-gpu' ? 'tensorflow' : name;
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
 * default, the pure-JS cpu backend (about 50x slower).
 */
export async function ensureBackend(log?: InitOptions['log']): Promise<BackendInfo> {
  if (active) return active;
  defaultInit ??= initBackend({ log }).finally(() => (defaultInit = undefined));
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
