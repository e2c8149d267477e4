/**
 * `pnpm build`: compiles every package's `src/` to `dist/` — JavaScript and declarations, the `.ts` import
 * specifiers rewritten to `.js` — for the tarballs `pnpm pack` makes (their `publishConfig` points `exports`
 * and `bin` at `dist/`, see CONTRIBUTING.md). Development never needs it: in the repository the packages'
 * `exports` point at `src/`, which tsx, the tests and `pnpm typecheck` read directly.
 *
 * One TypeScript program over all packages (one type check, ~10 s) whose output for
 * `packages/<pkg>/src/<file>` is written to `packages/<pkg>/dist/<file>`.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';

const root = new URL('..', import.meta.url).pathname;
const packagesDir = join(root, 'packages');
/** Where the program would write; every path under it is redirected into its package's `dist/`. */
const staging = join(root, '.build-staging');

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(path, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/**
 * TypeScript rewrites the `.ts` import specifiers of the JavaScript it emits but keeps them in declarations;
 * consumers' `tsc` (without `allowImportingTsExtensions`) wants the `.js` of the file that exists.
 */
function jsSpecifiers(declarations: string): string {
  return declarations.replace(/(\bfrom\s+|\bimport\s*\(\s*)(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2');
}

export function build(): { files: number; packages: string[] } {
  const packages = readdirSync(packagesDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && readdirSync(join(packagesDir, e.name)).includes('src'))
    .map((e) => e.name);
  const roots = packages.flatMap((pkg) => sourceFiles(join(packagesDir, pkg, 'src')));

  const base = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.base.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  )!;
  const options: ts.CompilerOptions = {
    ...base.options,
    noEmit: false,
    declaration: true,
    allowImportingTsExtensions: false,
    rewriteRelativeImportExtensions: true,
    rootDir: packagesDir,
    outDir: staging,
  };
  const program = ts.createProgram(roots, options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) {
    const host = { getCanonicalFileName: (f: string) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
    throw new Error(`build: type errors\n${ts.formatDiagnostics(diagnostics, host)}`);
  }

  for (const pkg of packages) rmSync(join(packagesDir, pkg, 'dist'), { recursive: true, force: true });
  let files = 0;
  const result = program.emit(undefined, (fileName, text) => {
    // <staging>/<pkg>/src/<rest> -> packages/<pkg>/dist/<rest>
    const [pkg, src, ...rest] = relative(staging, fileName).split(sep);
    if (src !== 'src' || !pkg) throw new Error(`build: unexpected output ${fileName}`);
    ts.sys.writeFile(join(packagesDir, pkg, 'dist', ...rest), fileName.endsWith('.d.ts') ? jsSpecifiers(text) : text);
    files++;
  });
  if (result.emitSkipped) throw new Error('build: TypeScript skipped the emit');
  return { files, packages };
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const started = Date.now();
  const { files, packages } = build();
  console.log(`built ${files} files into packages/{${packages.join(',')}}/dist in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
