/**
 * How tests run pnpm: the one running them (`npm_execpath` under `pnpm test`), else `npx -y pnpm@12` (the
 * README's way). Not a test file itself: the runner only loads `*.test.ts`.
 */
import { basename } from 'node:path';

export function pnpmCommand(): [string, ...string[]] {
  const own = process.env.npm_execpath;
  return own && basename(own).startsWith('pnpm') ? [own] : ['npx', '-y', 'pnpm@12'];
}
