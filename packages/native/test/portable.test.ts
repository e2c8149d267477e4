/**
 * The addon beyond this machine's x86-64 SIMD: built with KOTUNE_NATIVE_ISA=portable (no x86 intrinsic
 * compiled in: the code arm64 and other CPUs run, less NEON), it passes the kernel tests, the fused encoder
 * layer's skipped with its reason; and, where Debian's cross compiler is installed (apt-get install
 * g++-aarch64-linux-gnu), the arm64 addon compiles and links (running it needs an arm64 machine).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { buildAddon, KERNEL_TESTS, runTests } from './builds.ts';
import { addonMissing } from './support.ts';

const canBuild = addonMissing === undefined; // where the addon does not build here, neither does a variant
if (!canBuild) console.log(`skip: the portable build (${addonMissing})`);

(canBuild ? test : test.skip)('KOTUNE_NATIVE_ISA=portable: the kernel tests pass on the portable C++ kernels', () => {
  const build = buildAddon({ KOTUNE_NATIVE_ISA: 'portable' });
  try {
    assert.match(build.line, /^@kotune\/native: built .*KOTUNE_NATIVE_ISA=portable/);
    console.log(`portable build: ${build.seconds.toFixed(1)} s`);
    // engine/matmul's products through TensorFlow.js add time and no kernel to gemm.test's.
    const result = runTests(
      KERNEL_TESTS.filter((t) => !t.endsWith('/matmul')),
      { KOTUNE_NATIVE_ADDON: build.addon, KOTUNE_REQUIRE_NATIVE: '1' },
    );
    assert.is(result.failed, 0, result.output);
    assert.ok(result.passed >= 50, result.output);
    assert.match(result.output, /skip: the native encoder layer tests \(.*built-in portable C\+\+ kernel/);
  } finally {
    rmSync(build.dir, { recursive: true, force: true });
  }
});

const crossCompiler = 'aarch64-linux-gnu-g++';
const hasCross = canBuild && spawnSync(crossCompiler, ['--version']).status === 0;
if (canBuild && !hasCross) console.log(`skip: the arm64 build (no ${crossCompiler} here; Debian: apt-get install g++-aarch64-linux-gnu)`);

(hasCross ? test : test.skip)('arm64: the addon cross-compiles to an AArch64 shared object', () => {
  const build = buildAddon({ CXX: crossCompiler });
  try {
    assert.match(build.line, /^@kotune\/native: built /);
    const elf = readFileSync(build.addon);
    assert.is(elf.toString('latin1', 1, 4), 'ELF');
    assert.is(elf.readUInt16LE(18), 183, 'e_machine: EM_AARCH64');
    assert.ok(elf.includes('PortableTile'), 'the portable (NEON) tile is in it');
  } finally {
    rmSync(build.dir, { recursive: true, force: true });
  }
});

test.run();
