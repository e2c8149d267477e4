/**
 * For the tests that need the addon (this package's, and the native variants of the engine's and the
 * optimizer's): where it cannot run here — not built (no compiler, a platform build.mjs does not support), or
 * no product kernel on this CPU — `nativeTest` registers them as skipped and prints the reason once, on a
 * `skip:` line that `pnpm test` shows. With `KOTUNE_REQUIRE_NATIVE=1` (CI, whose machines build it) a missing
 * addon fails the file instead. Not a test file itself: the runner only loads `*.test.ts`.
 */
import { test } from 'uvu';
import { loadNative } from '../src/index.ts';

const probe = loadNative('auto');
/** Why the native kernels cannot run here, or undefined when they can. */
export const addonMissing: string | undefined = 'reason' in probe ? probe.reason : undefined;

/** Why the fused encoder layer cannot run here (no addon, or no AVX2 with FMA: arm64, the portable build), or undefined. */
export const encoderMissing: string | undefined =
  'reason' in probe
    ? probe.reason
    : probe.kernels.encoderLayer
      ? undefined
      : `the fused encoder layer needs x86-64 with AVX2 and FMA; this is ${probe.kernels.describe()}`;

if (addonMissing !== undefined && process.env.KOTUNE_REQUIRE_NATIVE === '1') {
  throw new Error(`KOTUNE_REQUIRE_NATIVE=1, but the native kernels cannot run: ${addonMissing}`);
}

let announced = false;

/** uvu's `test` where the addon runs; elsewhere the same registration as a skipped test. */
export const nativeTest: typeof test =
  addonMissing === undefined
    ? test
    : Object.assign((name: string, handler: Parameters<typeof test>[1]) => {
        if (!announced) console.log(`skip: the tests that need the native addon (${addonMissing})`);
        announced = true;
        test.skip(name, handler);
      }, test);
