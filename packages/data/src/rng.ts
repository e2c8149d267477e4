/** The whole generator state: four unsigned 32-bit words, plain JSON. */
export type RngState = [number, number, number, number];

/** splitmix32: spreads a seed over a full word so that nearby seeds give unrelated xoshiro states. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/**
 * Seeded pseudo-random numbers: xoshiro128** (Blackman & Vigna, 2018), 128-bit state, period 2^128 - 1,
 * passes BigCrush; seeded through splitmix32. Deterministic across platforms (only 32-bit integer ops),
 * and its state can be saved with `state()` and resumed with `Rng.fromState()` so that a restarted
 * training run draws the very numbers the interrupted one would have.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * `seed` is any safe integer; `streams` (e.g. an epoch number) select independent sequences for the
   * same seed, so per-epoch generators need no state carried over from the previous epoch.
   */
  constructor(seed: number, ...streams: number[]) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Rng seed must be a safe integer, got ${seed}`);
    let h = splitmix32(seed >>> 0) ^ splitmix32((Math.floor(seed / 2 ** 32) >>> 0) ^ 0x6a09e667);
    for (const stream of streams) {
      if (!Number.isSafeInteger(stream)) throw new RangeError(`Rng stream must be a safe integer, got ${stream}`);
      h = splitmix32(h ^ splitmix32(stream >>> 0) ^ Math.floor(stream / 2 ** 32));
    }
    this.s0 = splitmix32(h);
    this.s1 = splitmix32(this.s0 ^ 0x243f6a88);
    this.s2 = splitmix32(this.s1 ^ 0x85a308d3);
    this.s3 = splitmix32(this.s2 ^ 0x13198a2e);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  static fromState(state: RngState): Rng {
    if (!Array.isArray(state) || state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32)) {
      throw new TypeError(`Rng state must be four unsigned 32-bit integers, got ${JSON.stringify(state)}`);
    }
    if (state.every((w) => w === 0)) throw new TypeError('Rng state must not be all zeros');
    const rng = Object.create(Rng.prototype) as Rng;
    [rng.s0, rng.s1, rng.s2, rng.s3] = state;
    return rng;
  }

  state(): RngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection of the incomplete last range). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new RangeError(`Rng.int needs an integer 1..2^32, got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T>(array: T[]): T[] {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** `k` distinct positions of `array`, in random order (Python's `random.sample` semantics). */
  sample<T>(array: readonly T[], k: number): T[] {
    if (!Number.isInteger(k) || k < 0 || k > array.length) {
      throw new RangeError(`cannot sample ${k} items without replacement from ${array.length}`);
    }
    const pool = array.slice();
    for (let i = 0; i < k; i++) {
      const j = i + this.int(pool.length - i);
      const tmp = pool[i];
      pool[i] = pool[j];
      pool[j] = tmp;
    }
    pool.length = k;
    return pool;
  }

  /** One uniformly chosen item. */
  choice<T>(array: readonly T[]): T {
    if (array.length === 0) throw new RangeError('cannot choose from an empty array');
    return array[this.int(array.length)];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
