/**
 * What the side-by-side benches (side-by-side.bench.ts, scale.bench.ts) share: timing a step, running one side in
 * a process of its own and reading its JSON line, and comparing the two sides' figures.
 */
import { spawnSync } from 'node:child_process';
import type { Encoded } from '@kotune/tokenizer';

export interface Timing {
  seconds_per_step: number;
  tokens: number;
  items: number;
  outputs?: number[];
  optimizer_seconds?: number;
}

/** Tokens (unmasked positions) and rows of some forwards' inputs. */
export function tokensOf(forwards: Encoded[]): { tokens: number; items: number } {
  const rows = forwards.flatMap((f) => f.attentionMask);
  return { tokens: rows.reduce((n, row) => n + row.reduce((a, b) => a + b, 0), 0), items: rows.length };
}

/** Seconds per call of `step` over `steps` calls, after `warmup` untimed ones. */
export async function time(warmup: number, steps: number, step: () => unknown): Promise<number> {
  for (let i = 0; i < warmup; i++) await step();
  const start = performance.now();
  for (let i = 0; i < steps; i++) await step();
  return (performance.now() - start) / 1000 / steps;
}

function lastJsonLine(stdout: string): unknown {
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

/** Runs one side; its stderr is shown without the over-long lines (a wasm abort prints the whole minified module). */
export function runSide<T>(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): T {
  const r = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env, maxBuffer: 1 << 28 });
  const stderr = r.stderr.split('\n').filter((line) => line.trim() !== '' && line.length < 300);
  if (stderr.length > 0) console.log(stderr.join('\n'));
  if (r.status !== 0) {
    const why = r.signal ? `killed by ${r.signal}` : `status ${r.status}`;
    throw new Error(`${command} ${args.join(' ')} failed (${why}): ${stderr.find((l) => /Error|Abort/.test(l)) ?? stderr.at(-1) ?? ''}`);
  }
  return lastJsonLine(r.stdout) as T;
}

/** max |a − b| / max |b|. */
export function maxRelativeDifference(a: number[], b: number[]): number {
  let diff = 0;
  let scale = 0;
  a.forEach((x, i) => {
    diff = Math.max(diff, Math.abs(x - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  });
  return diff / scale;
}

export const geometricMean = (values: number[]): number => Math.exp(values.reduce((s, v) => s + Math.log(v), 0) / values.length);
export const fixed = (x: number | null | undefined, digits: number): string => (x === null || x === undefined ? 'n/a' : x.toFixed(digits));
