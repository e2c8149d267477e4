/**
 * kotune's native kernels (`src/*.cc`, one file per job, built at install by `build.mjs`) on float32 typed
 * arrays, in place: the matrix product `c = op(a) · op(b)`, on the system BLAS (opened at run time: OpenBLAS,
 * Apple Accelerate or libblas.so.3) or on the addon's own kernel (AVX2/AVX-512 on x86-64, else portable C++);
 * a fused AdamW update; a sum of squares; GELU, dropout, LayerNorm and attention softmax with their gradients;
 * a whole encoder layer for inference and for training, with its backward (x86-64 with AVX2); float64 dot products for exact search. The engine
 * runs the wasm and cpu backends' model and optimizer on them, @kotune/eval its search; this package knows
 * nothing of TensorFlow.js.
 *
 * `KOTUNE_NATIVE` (or `loadNative`'s argument) chooses: `auto` (default: products on OpenBLAS, else
 * built-in: the one measured faster), `openblas`, `blas` (whichever system BLAS opened, e.g. Accelerate),
 * `builtin`, `builtin-avx2` (the built-in product without AVX-512, for CPUs that clock down under it), or `off`
 * (no native kernel: the backend's own ops). A kernel asked for by name that cannot run is an error, never a
 * silent fallback. `KOTUNE_NATIVE_ADDON` loads another build of the addon (a sanitizer or portable build).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// '../src/': so that dist/index.js, built from this file, finds it too (the package ships src/ for build.mjs).
import { sourceHash } from '../src/source-hash.mjs';

export type GemmKernel = 'openblas' | 'blas' | 'builtin' | 'builtin-avx2';
export const NATIVE_CHOICES = ['auto', 'openblas', 'blas', 'builtin', 'builtin-avx2', 'off'] as const;
export type NativeChoice = (typeof NATIVE_CHOICES)[number];

/** The kernels the addon exports as they are (see `src/binding.cc`). */
export interface PassThroughKernels {
  /** Σ x², accumulated in double. */
  sumOfSquares(x: Float32Array): number;
  /** `y = x·Φ(x)`, Φ(x) = (1 + erf(x/√2))·0.5: PyTorch's exact GELU. */
  gelu(x: Float32Array, y: Float32Array): void;
  /** `dx = dy·(Φ(x) + x·φ(x))`, φ the standard normal density: its gradient. */
  geluGrad(x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /**
   * `y[i] = x[i]·scale` where `mix32(seed + (i + 1)·0x9e3779b9) ≥ threshold`, else `x[i]·0` (murmur3's
   * finaliser, 32-bit wrap-around): @kotune/engine's dropout mask applied, the same mask for the same seed.
   */
  dropout(x: Float32Array, y: Float32Array, seed: number, threshold: number, scale: number): void;
  /**
   * LayerNorm over rows of weight's length: `y = (x − mean)·rstd·weight + bias`, rstd = 1/√(biased variance
   * + eps), moments in double; writes `y` and each row's `mean` and `rstd` (for the backward).
   */
  layerNorm(
    x: Float32Array,
    weight: Float32Array,
    bias: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    eps: number,
  ): void;
  /**
   * Its gradients (PyTorch's formulas), from the forward's `mean` and `rstd`: with x̂ = (x − mean)·rstd and
   * g = dy·weight, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), dweight = Σ_rows dy·x̂, dbias = Σ_rows dy.
   */
  layerNormGrad(
    x: Float32Array,
    weight: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dweight: Float32Array,
    dbias: Float32Array,
  ): void;
  /**
   * Attention probabilities over rows of `width`: `probs = softmax(scores / divisor + mask)`, the mask row of
   * score row r at `mask[⌊r / rowsPerMask⌋·width]` (a [batch, 1, 1, seq] mask under [batch, heads, q, seq]).
   */
  softmax(scores: Float32Array, mask: Float32Array, probs: Float32Array, width: number, rowsPerMask: number, divisor: number): void;
  /** Its gradient: `dscores = (dy·p − Σ(dy·p)·p) / divisor` per row. */
  softmaxGrad(probs: Float32Array, dy: Float32Array, dscores: Float32Array, width: number, divisor: number): void;
  /**
   * `out[j·n + r] = Σ_d queries[j][d]·rows[r][d]` for the `queries` and the `n` `rows` (vectors of `dim` floats,
   * stored one after another), each sum in double and in order over d: the same bits as the JavaScript loop
   * `s += q[d] * x[d]`.
   */
  dotRows(queries: Float32Array, rows: Float32Array, dim: number, out: Float64Array): void;
  /**
   * `out = a op b` elementwise (op 0 add, 1 multiply, 2 divide), `b` of a's length or one float: one float32
   * operation an element, on all threads (the same bits as the backends' own loops).
   */
  elementwise(op: 0 | 1 | 2, a: Float32Array, b: Float32Array, out: Float32Array): void;
  /**
   * nn.Embedding's gradient: `out` ([rows, width]) zeroed, then row i of `dy` added into row `ids[i]`, in order of i,
   * skipping ids equal to `padding` (−1: none).
   */
  embeddingGrad(ids: Int32Array, dy: Float32Array, out: Float32Array, width: number, padding: number): void;
  /**
   * Makes glibc's malloc serve blocks of every size from its heap and keep freed ones there for reuse, instead of
   * mapping each large block afresh (see binding.cc); process-wide. False where the C library is not glibc.
   */
  keepFreedMemory(): boolean;
}

/** Sizes of an encoder layer call: `[batch, seq, hidden, heads, ffn]`. */
export type EncoderDims = [batch: number, seq: number, hidden: number, heads: number, ffn: number];

interface Binding extends PassThroughKernels {
  packEncoderLayer(kernel: number, weights: Float32Array[], hidden: number, ffn: number): Float32Array;
  encoderLayer(
    kernel: number,
    packed: Float32Array,
    x: Float32Array,
    mask: Float32Array,
    y: Float32Array,
    dims: EncoderDims,
    divisor: number,
    eps: number,
  ): void;
  encoderTrainStateLength(dims: EncoderDims): number;
  encoderLayerTrainForward(
    kernel: number,
    weights: Float32Array[],
    x: Float32Array,
    mask: Float32Array,
    y: Float32Array,
    state: Float32Array | null,
    dims: EncoderDims,
    divisor: number,
    eps: number,
    dropout: number[],
  ): void;
  encoderLayerBackward(
    kernel: number,
    weights: Float32Array[],
    x: Float32Array,
    mask: Float32Array,
    state: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    grads: Float32Array[],
    dims: EncoderDims,
    divisor: number,
    eps: number,
    dropout: number[],
  ): void;
  gemm(
    kernel: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
  ): void;
  adamw(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    constants: number[],
  ): void;
  openBlasThreads(): number;
  /** The system BLAS that opened (a soname or path), or ''. */
  openBlasLibrary: string;
  openBlasConfig: string;
  /** `OpenBLAS`, `Accelerate` or `BLAS` (another libblas.so.3), or ''. */
  blasVendor: string;
  /** The built-in product's tile on this CPU. */
  builtinIsa: 'avx512' | 'avx2' | 'neon' | 'portable';
  /** Whether packEncoderLayer and encoderLayer exist (x86-64 with AVX2 and FMA). */
  encoderSupported: boolean;
  builtinThreads: number;
  /** What build.mjs compiled it from (see source-hash.mjs) and for (KOTUNE_NATIVE_ISA). */
  sourceHash: string;
  buildIsa: string;
}

/** build.mjs's record next to the addon, read before the addon is loaded. */
interface BuildManifest {
  sourceHash: string;
  isa: string;
  /** CPU features (Linux /proc/cpuinfo names) the whole addon was compiled to use. */
  requires: string[];
}

/**
 * The dropout masks of a training layer's three sites, each Dropout's (`threshold`, `scale`, `seed`; threshold 0:
 * that site off): attention probabilities (their index in [batch, heads, seq, seq]), the attention output and the
 * feed-forward output (index in [batch·seq, hidden]).
 */
export interface EncoderDropoutMasks {
  attention: { threshold: number; scale: number; seed: number };
  hidden: { threshold: number; scale: number; attentionOutputSeed: number; outputSeed: number };
}

/** AdamW's per-step constants, as @kotune/optim computes them (each is rounded to float32, as a tf.js scalar is). */
export interface AdamWConstants {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** `1 − lr·wd` for a decayed parameter, else 1. */
  decay: number;
  /** `√(1 − β₂ᵗ)`. */
  biasCorrection2Sqrt: number;
  eps: number;
  /** `lr / (1 − β₁ᵗ)`. */
  stepSize: number;
  /** The clipping coefficient (1: none). */
  gradScale: number;
}

export interface NativeKernels extends Omit<PassThroughKernels, 'dotRows'> {
  kernel: GemmKernel;
  /**
   * The product kernel, e.g. `OpenBLAS 0.3.21 (libopenblas.so.0, Cooperlake), 2 threads` or `built-in AVX-512
   * kernel, 2 threads` (OpenBLAS reads OPENBLAS_NUM_THREADS, the built-in kernel OMP_NUM_THREADS; default: all cores).
   */
  describe(): string;
  /**
   * `c[i] = op(a[i]) · op(b[i])` for i < batch, with `op(a[i])` m×k and `op(b[i])` k×n, all row-major and
   * stored entry after entry; `c` is overwritten. Lengths must be batch·m·k, batch·k·n and batch·m·n.
   */
  gemm(
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
  ): void;
  /**
   * One AdamW update of a parameter `p` with gradient `g` and moments `m`, `v` into the `*Out` arrays (all of
   * one length), per element in float32: g ← g·gradScale; m ← m·β₁ + g·(1−β₁); v ← v·β₂ + (g·g)·(1−β₂);
   * p ← p·decay; p ← p − (m / (√v / biasCorrection2Sqrt + ε))·stepSize.
   */
  adamw(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    c: AdamWConstants,
  ): void;
  /**
   * An XLM-RoBERTa layer's 16 tensors laid out once for `encoderLayer` on this product kernel: query weight, bias,
   * key weight, bias, value weight, bias, attention output dense weight, bias, its LayerNorm weight, bias,
   * intermediate dense weight, bias, output dense weight, bias, its LayerNorm weight, bias (Linear weights
   * `[out, in]`). Undefined where the CPU lacks AVX2 with FMA.
   */
  packEncoderLayer?(weights: Float32Array[], hidden: number, ffn: number): Float32Array;
  /**
   * `y` = the whole post-LN encoder layer applied to `x` ([batch·seq, hidden]) with the additive attention mask
   * ([batch, seq]: 0, or float32's min for a masked key), from `packEncoderLayer`'s array: the products, fused
   * attention (softmax(q·kᵀ / divisor + mask)·v, never more than a block of scores at a time), GELU, residuals and
   * LayerNorms (`eps`) in one call on all threads (see src/encoder.cc).
   */
  encoderLayer?(
    packed: Float32Array,
    x: Float32Array,
    mask: Float32Array,
    y: Float32Array,
    dims: EncoderDims,
    divisor: number,
    eps: number,
  ): void;
  /** Floats of the state `encoderLayerTrainForward` keeps for `encoderLayerBackward` (6·hidden + ffn + 2·heads a token). */
  encoderTrainStateLength?(dims: EncoderDims): number;
  /**
   * `y` = the layer (the 16 tensors unpacked, `packEncoderLayer`'s order) in training mode, dropout from `dropout`'s
   * masks, applied to `x` with the additive `mask`; keeps what the backward needs in `state`, or nothing where
   * `state` is null (the backward's caller then runs the forward again). Attention never holds more than a block
   * of scores (see src/encoder_train.cc).
   */
  encoderLayerTrainForward?(
    weights: Float32Array[],
    x: Float32Array,
    mask: Float32Array,
    y: Float32Array,
    state: Float32Array | null,
    dims: EncoderDims,
    divisor: number,
    eps: number,
    dropout: EncoderDropoutMasks,
  ): void;
  /** `dx` and the 16 tensors' gradients (written into `grads`, same order and lengths) from `dy` and the forward's x, mask and state. */
  encoderLayerBackward?(
    weights: Float32Array[],
    x: Float32Array,
    mask: Float32Array,
    state: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    grads: Float32Array[],
    dims: EncoderDims,
    divisor: number,
    eps: number,
    dropout: EncoderDropoutMasks,
  ): void;
}

function dropoutArray(d: EncoderDropoutMasks): number[] {
  return [
    d.attention.threshold,
    d.attention.scale,
    d.attention.seed,
    d.hidden.threshold,
    d.hidden.scale,
    d.hidden.attentionOutputSeed,
    d.hidden.outputSeed,
  ];
}

/** The addon this process loads: KOTUNE_NATIVE_ADDON, else the one build.mjs writes. */
export const NATIVE_ADDON = process.env.KOTUNE_NATIVE_ADDON || fileURLToPath(new URL('../build/kotune_native.node', import.meta.url));
const BUILD_SCRIPT = fileURLToPath(new URL('../build.mjs', import.meta.url));
const SOURCES = fileURLToPath(new URL('../src/', import.meta.url));

let binding: Binding | undefined;
let bindingError: string | undefined;

/** This CPU's features as Linux names them (flags of /proc/cpuinfo; macOS: sysctl's hw.optional.*), or undefined. */
function cpuFeatures(): Set<string> | undefined {
  try {
    if (process.platform === 'linux')
      return new Set(
        readFileSync('/proc/cpuinfo', 'utf8')
          .match(/^flags\s*:(.*)$/m)?.[1]
          ?.trim()
          .split(/\s+/),
      );
    if (process.platform === 'darwin') {
      const sysctl = execFileSync('sysctl', ['hw.optional'], { encoding: 'utf8' });
      // "hw.optional.avx2_0: 1", "hw.optional.avx512f: 1"
      return new Set([...sysctl.matchAll(/^hw\.optional\.(\w+?)(?:_0)?: 1$/gm)].map((m) => m[1]!.toLowerCase()));
    }
  } catch {
    // unreadable: the caller says so
  }
  return undefined;
}

const rebuild = `rebuild with node ${BUILD_SCRIPT}`;

/**
 * Why the addon at NATIVE_ADDON, built from sources of hash `sources`, must not be loaded here, or undefined
 * (checked before loading: an addon compiled for instructions this CPU lacks would die of SIGILL).
 */
function refusal(sources: string): string | undefined {
  if (!existsSync(NATIVE_ADDON)) return `the addon is not built (node ${BUILD_SCRIPT} builds it, or says why it cannot)`;
  const manifestPath = join(dirname(NATIVE_ADDON), 'kotune_native.json');
  if (!existsSync(manifestPath)) return `the addon has no kotune_native.json beside it (an older build): ${rebuild}`;
  let manifest: BuildManifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as BuildManifest;
  } catch {
    return `the addon's kotune_native.json is unreadable: ${rebuild}`;
  }
  if (manifest.sourceHash !== sources) return `the addon was built from other sources: ${rebuild}`;
  if (manifest.requires.length > 0) {
    const features = cpuFeatures();
    const missing = features ? manifest.requires.filter((f) => !features.has(f)) : manifest.requires;
    if (missing.length > 0) {
      return `the addon was built for ${manifest.isa} (KOTUNE_NATIVE_ISA) and this CPU ${features ? `lacks ${missing.join(', ')}` : 'cannot be checked for it'}: ${rebuild}`;
    }
  }
  return undefined;
}

function loadBinding(): Binding | undefined {
  if (binding || bindingError) return binding;
  let sources: string;
  try {
    sources = sourceHash(SOURCES);
  } catch {
    bindingError = `the addon's sources (${SOURCES}) cannot be read to check it against them`;
    return undefined;
  }
  bindingError = refusal(sources);
  if (bindingError) return undefined;
  try {
    const loaded = createRequire(import.meta.url)(NATIVE_ADDON) as Binding;
    // The manifest could be from another build than the binary beside it: the binary's own record decides.
    if (loaded.sourceHash !== sources) bindingError = `the addon was built from other sources: ${rebuild}`;
    else binding = loaded;
  } catch (err) {
    bindingError = `the addon did not load: ${(err as Error).message.split('\n')[0]}`;
  }
  return binding;
}

export function parseNativeChoice(value: string): NativeChoice {
  const choice = value.trim().toLowerCase();
  if (!(NATIVE_CHOICES as readonly string[]).includes(choice))
    throw new Error(`unknown KOTUNE_NATIVE "${value}": use one of ${NATIVE_CHOICES.join(', ')}`);
  return choice as NativeChoice;
}

const ISA_NAMES = { avx512: 'AVX-512', avx2: 'AVX2', neon: 'NEON', portable: 'portable C++' } as const;

/** The binding's kernels that `NativeKernels` offers as they are (dotRows is loaded on its own: `loadDotRows`). */
const PASS_THROUGH = [
  'sumOfSquares',
  'gelu',
  'geluGrad',
  'dropout',
  'layerNorm',
  'layerNormGrad',
  'softmax',
  'softmaxGrad',
  'elementwise',
  'embeddingGrad',
  'keepFreedMemory',
] as const satisfies readonly (keyof PassThroughKernels)[];

function passThrough(b: Binding): Pick<PassThroughKernels, (typeof PASS_THROUGH)[number]> {
  return Object.fromEntries(PASS_THROUGH.map((name) => [name, b[name]])) as Pick<PassThroughKernels, (typeof PASS_THROUGH)[number]>;
}

function kernelsOf(b: Binding, kernel: GemmKernel): NativeKernels {
  const id = { builtin: 0, openblas: 1, blas: 1, 'builtin-avx2': 2 }[kernel];
  const blas = kernel === 'openblas' || kernel === 'blas';
  return {
    kernel,
    describe: () => {
      const threads = blas ? b.openBlasThreads() : b.builtinThreads;
      const plural = `${threads} thread${threads === 1 ? '' : 's'}`;
      if (!blas) return `built-in ${ISA_NAMES[kernel === 'builtin-avx2' ? 'avx2' : b.builtinIsa]} kernel, ${plural}`;
      if (b.blasVendor !== 'OpenBLAS')
        return `${b.blasVendor === 'Accelerate' ? 'Apple Accelerate' : 'system BLAS'} (${b.openBlasLibrary}), its own threads`;
      const detail = b.openBlasConfig.match(/^OpenBLAS (\S+).*?(\S+) MAX_THREADS/);
      const name = detail ? `OpenBLAS ${detail[1]} (${b.openBlasLibrary}, ${detail[2]})` : `OpenBLAS (${b.openBlasLibrary})`;
      return `${name}, ${plural}`;
    },
    gemm: (a, bb, c, batch, m, n, k, transA, transB) => b.gemm(id, a, bb, c, batch, m, n, k, transA, transB),
    adamw: (p, g, m, v, pOut, mOut, vOut, c) =>
      b.adamw(p, g, m, v, pOut, mOut, vOut, [
        c.beta1,
        c.oneMinusBeta1,
        c.beta2,
        c.oneMinusBeta2,
        c.decay,
        c.biasCorrection2Sqrt,
        c.eps,
        c.stepSize,
        c.gradScale,
      ]),
    ...passThrough(b),
    ...(b.encoderSupported
      ? {
          packEncoderLayer: (weights: Float32Array[], hidden: number, ffn: number) => b.packEncoderLayer(id, weights, hidden, ffn),
          encoderLayer: (
            packed: Float32Array,
            x: Float32Array,
            mask: Float32Array,
            y: Float32Array,
            dims: EncoderDims,
            divisor: number,
            eps: number,
          ) => b.encoderLayer(id, packed, x, mask, y, dims, divisor, eps),
          encoderTrainStateLength: (dims: EncoderDims) => b.encoderTrainStateLength(dims),
          encoderLayerTrainForward: (
            weights: Float32Array[],
            x: Float32Array,
            mask: Float32Array,
            y: Float32Array,
            state: Float32Array | null,
            dims: EncoderDims,
            divisor: number,
            eps: number,
            dropout: EncoderDropoutMasks,
          ) => b.encoderLayerTrainForward(id, weights, x, mask, y, state, dims, divisor, eps, dropoutArray(dropout)),
          encoderLayerBackward: (
            weights: Float32Array[],
            x: Float32Array,
            mask: Float32Array,
            state: Float32Array,
            dy: Float32Array,
            dx: Float32Array,
            grads: Float32Array[],
            dims: EncoderDims,
            divisor: number,
            eps: number,
            dropout: EncoderDropoutMasks,
          ) => b.encoderLayerBackward(id, weights, x, mask, state, dy, dx, grads, dims, divisor, eps, dropoutArray(dropout)),
        }
      : {}),
  };
}

/**
 * The addon's `dotRows` (see `PassThroughKernels`), for exact search: undefined where the addon is missing or
 * `KOTUNE_NATIVE=off` (the product kernel chosen does not matter here).
 */
export function loadDotRows(): PassThroughKernels['dotRows'] | undefined {
  if (parseNativeChoice(process.env.KOTUNE_NATIVE ?? 'auto') === 'off') return undefined;
  return loadBinding()?.dotRows;
}

/**
 * The kernels `choice` names (default `KOTUNE_NATIVE`, else `auto`), or `{ reason }` saying why there are
 * none: `off` was asked for, or, under `auto`, the addon is missing or this CPU runs no product kernel.
 */
export function loadNative(choice: string = process.env.KOTUNE_NATIVE ?? 'auto'): { kernels: NativeKernels } | { reason: string } {
  const wanted = parseNativeChoice(choice);
  if (wanted === 'off') return { reason: 'KOTUNE_NATIVE=off' };
  const b = loadBinding();
  if (!b) {
    if (wanted !== 'auto') throw new Error(`KOTUNE_NATIVE=${wanted} was asked for, but ${bindingError}`);
    return { reason: bindingError! };
  }
  // Only OpenBLAS is measured faster than the built-in kernel (pnpm bench): only it becomes the default.
  const openblas = b.blasVendor === 'OpenBLAS';
  if (wanted === 'openblas' && !openblas) {
    const other = b.blasVendor === '' ? '' : ` (${b.openBlasLibrary} opened: KOTUNE_NATIVE=blas uses it)`;
    throw new Error(
      `KOTUNE_NATIVE=openblas was asked for, but no libopenblas.so.0 could be opened (Debian: apt-get install libopenblas0-pthread)${other}`,
    );
  }
  if (wanted === 'blas' && b.blasVendor === '') {
    throw new Error(
      'KOTUNE_NATIVE=blas was asked for, but no system BLAS with cblas_sgemm could be opened (OpenBLAS, Apple Accelerate, libblas.so.3, or KOTUNE_BLAS=/path/to/library)',
    );
  }
  if (wanted === 'builtin-avx2' && b.builtinIsa !== 'avx2' && b.builtinIsa !== 'avx512')
    throw new Error('KOTUNE_NATIVE=builtin-avx2 was asked for, but this CPU (or this build) lacks AVX2 with FMA');
  if (wanted === 'openblas' || (wanted === 'auto' && openblas)) return { kernels: kernelsOf(b, 'openblas') };
  if (wanted === 'blas' || wanted === 'builtin-avx2') return { kernels: kernelsOf(b, wanted) };
  return { kernels: kernelsOf(b, 'builtin') };
}

/**
 * The system BLAS the addon opened, for `kotune doctor`: e.g. `OpenBLAS 0.3.21 (libopenblas.so.0, Haswell), 2
 * threads — the default`, `Apple Accelerate (...) — KOTUNE_NATIVE=blas uses it`, or why there is none.
 */
export function describeBlas(): string {
  const b = loadBinding();
  if (!b) return `none: ${bindingError}`;
  if (b.blasVendor === '') return 'none found (OpenBLAS, Apple Accelerate, libblas.so.3; KOTUNE_BLAS=/path/to/library names another)';
  const described = kernelsOf(b, 'blas').describe();
  return b.blasVendor === 'OpenBLAS'
    ? `${described} — the default product kernel (KOTUNE_NATIVE=auto)`
    : `${described} — not the default (not measured faster than the built-in kernel): KOTUNE_NATIVE=blas uses it`;
}
