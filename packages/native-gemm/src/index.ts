/**
 * The native matrix product (`src/gemm.cc`, built at install by `build.mjs`): `c = op(a) · op(b)` on
 * float32 typed arrays, in place, on OpenBLAS when the machine has it (opened at run time) or on the
 * addon's own AVX2/AVX-512 kernel. The engine routes the model's products here on the wasm and cpu
 * backends; this package knows nothing of TensorFlow.js.
 *
 * `KOTUNE_GEMM` (or `loadNativeGemm`'s argument) picks the kernel: `auto` (default: OpenBLAS, then
 * built-in), `openblas`, `builtin`, `builtin-avx2` (the built-in kernel without AVX-512, for CPUs that
 * clock down under it), or `off` (the backend's own products). A kernel asked for by name
 * that cannot run is an error, never a silent fallback.
 */
import { createRequire } from 'node:module';

export type GemmKernel = 'openblas' | 'builtin' | 'builtin-avx2';
export const GEMM_CHOICES = ['auto', 'openblas', 'builtin', 'builtin-avx2', 'off'] as const;
export type GemmChoice = (typeof GEMM_CHOICES)[number];

interface Binding {
  gemm(kernel: number, a: Float32Array, b: Float32Array, c: Float32Array, batch: number, m: number, n: number, k: number, transA: boolean, transB: boolean): void;
  setOpenBlasThreads(threads: number): void;
  openBlasThreads(): number;
  openBlasLibrary: string;
  openBlasConfig: string;
  builtinIsa: string;
  builtinSupported: boolean;
}

export interface NativeGemm {
  kernel: GemmKernel;
  /** e.g. `OpenBLAS 0.3.21 (libopenblas.so.0, Cooperlake), 2 threads` or `built-in AVX-512 kernel, 1 thread`. */
  describe(): string;
  /**
   * `c[i] = op(a[i]) · op(b[i])` for i < batch, with `op(a[i])` m×k and `op(b[i])` k×n, all row-major and
   * stored entry after entry; `c` is overwritten. Lengths must be batch·m·k, batch·k·n and batch·m·n.
   */
  gemm(a: Float32Array, b: Float32Array, c: Float32Array, batch: number, m: number, n: number, k: number, transA: boolean, transB: boolean): void;
  /** Threads for OpenBLAS (the built-in kernel runs on one). */
  setThreads(threads: number): void;
}

const ADDON = new URL('../build/kotune_gemm.node', import.meta.url).pathname;

let binding: Binding | undefined;
let bindingError: string | undefined;

function loadBinding(): Binding | undefined {
  if (binding || bindingError) return binding;
  try {
    binding = createRequire(import.meta.url)(ADDON) as Binding;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
      ? 'the addon is not built (pnpm -F @kotune/native-gemm build; needs g++ and Node\'s headers)'
      : `the addon did not load: ${(err as Error).message.split('\n')[0]}`;
    bindingError = reason;
  }
  return binding;
}

export function parseGemmChoice(value: string): GemmChoice {
  const choice = value.trim().toLowerCase();
  if (!(GEMM_CHOICES as readonly string[]).includes(choice)) throw new Error(`unknown KOTUNE_GEMM "${value}": use one of ${GEMM_CHOICES.join(', ')}`);
  return choice as GemmChoice;
}

function kernelOf(b: Binding, kernel: GemmKernel): NativeGemm {
  const id = { builtin: 0, openblas: 1, 'builtin-avx2': 2 }[kernel];
  return {
    kernel,
    describe: () => {
      if (kernel !== 'openblas') return `built-in ${kernel === 'builtin' && b.builtinIsa === 'avx512' ? 'AVX-512' : 'AVX2'} kernel, 1 thread`;
      const threads = b.openBlasThreads();
      const detail = b.openBlasConfig.match(/^OpenBLAS (\S+).*?(\S+) MAX_THREADS/);
      const name = detail ? `OpenBLAS ${detail[1]} (${b.openBlasLibrary}, ${detail[2]})` : `OpenBLAS (${b.openBlasLibrary})`;
      return `${name}, ${threads} thread${threads === 1 ? '' : 's'}`;
    },
    gemm: (a, bb, c, batch, m, n, k, transA, transB) => b.gemm(id, a, bb, c, batch, m, n, k, transA, transB),
    setThreads: (threads) => {
      if (!Number.isInteger(threads) || threads < 1) throw new Error(`native gemm: a thread count >= 1 expected, got ${threads}`);
      if (kernel === 'openblas') b.setOpenBlasThreads(threads);
    },
  };
}

/**
 * The kernel `choice` names (default `KOTUNE_GEMM`, else `auto`), or `{ reason }` saying why there is none:
 * `off` was asked for, or, under `auto`, the addon is missing or this CPU runs neither kernel.
 */
export function loadNativeGemm(choice: string = process.env.KOTUNE_GEMM ?? 'auto'): { gemm: NativeGemm } | { reason: string } {
  const wanted = parseGemmChoice(choice);
  if (wanted === 'off') return { reason: 'KOTUNE_GEMM=off' };
  const b = loadBinding();
  if (!b) {
    if (wanted !== 'auto') throw new Error(`KOTUNE_GEMM=${wanted} was asked for, but ${bindingError}`);
    return { reason: bindingError! };
  }
  const openblas = b.openBlasLibrary !== '';
  if (wanted === 'openblas' && !openblas) throw new Error('KOTUNE_GEMM=openblas was asked for, but no libopenblas.so.0 could be opened (Debian: apt-get install libopenblas0-pthread)');
  if (wanted.startsWith('builtin') && !b.builtinSupported) throw new Error(`KOTUNE_GEMM=${wanted} was asked for, but this CPU has neither AVX2 with FMA nor AVX-512`);
  if (wanted === 'openblas' || (wanted === 'auto' && openblas)) return { gemm: kernelOf(b, 'openblas') };
  if (wanted === 'builtin-avx2') return { gemm: kernelOf(b, 'builtin-avx2') };
  if (b.builtinSupported) return { gemm: kernelOf(b, 'builtin') };
  return { reason: 'no libopenblas.so.0, and this CPU has neither AVX2 with FMA nor AVX-512 for the built-in kernel' };
}
