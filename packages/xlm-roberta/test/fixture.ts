/** Paths and values of the golden fixtures `test/fixtures/xlmr-tiny` (see its README for the math and tolerances). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/xlmr-tiny/', import.meta.url));
export const RERANKER_DIR = `${FIXTURE}reranker`;
export const EMBEDDER_DIR = `${FIXTURE}embedder`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const cases: any = JSON.parse(readFileSync(`${FIXTURE}cases.json`, 'utf8'));

/** The README's error measure: max|a − b| / max|b| over all elements. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs expected ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return diff / scale;
}

/** Prints a measured error so that the test log records it. */
export function report(label: string, error: number): number {
  console.log(`  ${label}: max rel error ${error.toExponential(2)}`);
  return error;
}
