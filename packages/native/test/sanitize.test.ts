/**
 * The addon under AddressSanitizer and UndefinedBehaviorSanitizer: built with -fsanitize=address,undefined
 * (KOTUNE_NATIVE_SANITIZE=1) into a folder of its own, then every kernel test runs against it with the ASan
 * runtime preloaded (node itself is not instrumented, so the runtime must come first) and any report fatal.
 * Leak detection is off: node leaks at exit by design. Runs where KOTUNE_SANITIZE=1 (CI sets it, ~1 min) on
 * Linux with GCC or Clang and their sanitizer runtimes; elsewhere it is skipped with the reason.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { buildAddon, KERNEL_TESTS, runTests } from './builds.ts';
import { addonMissing } from './support.ts';

const compiler = process.env.CXX || 'g++';
/** The ASan runtime the compiler links against, as `-print-file-name` finds it. */
const runtime = spawnSync(compiler, ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout?.trim() ?? '';
const why =
  process.env.KOTUNE_SANITIZE !== '1'
    ? 'set KOTUNE_SANITIZE=1 to run it (CI does)'
    : process.platform !== 'linux'
      ? 'it preloads the ASan runtime the Linux way (LD_PRELOAD)'
      : addonMissing !== undefined
        ? addonMissing
        : !runtime.startsWith('/') || !existsSync(runtime)
          ? `${compiler} has no libasan.so (Debian: apt-get install libasan8)`
          : undefined;
if (why) console.log(`skip: the sanitizer build (${why})`);

(why ? test.skip : test)('ASan + UBSan: every kernel test passes without a report', () => {
  const build = buildAddon({ KOTUNE_NATIVE_SANITIZE: '1' });
  try {
    assert.match(build.line, /^@kotune\/native: built .*sanitizers/);
    const addon = readFileSync(build.addon);
    assert.ok(addon.includes('__asan_init') && addon.includes('__ubsan_handle_'), 'the addon is instrumented');
    const started = Date.now();
    const result = runTests(KERNEL_TESTS, {
      KOTUNE_NATIVE_ADDON: build.addon,
      KOTUNE_REQUIRE_NATIVE: '1',
      LD_PRELOAD: runtime,
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
    });
    console.log(`sanitizer build ${build.seconds.toFixed(1)} s, kernel tests under it ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.not.match(result.output, /ERROR: AddressSanitizer|runtime error:/);
    assert.is(result.failed, 0, result.output);
    assert.ok(result.passed >= 150, result.output);
  } finally {
    rmSync(build.dir, { recursive: true, force: true });
  }
});

test.run();
