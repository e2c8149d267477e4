/**
 * `pnpm lint` (and test/workspace.test.ts): every package under packages/ follows the conventions that make it
 * installable from a tarball (CONTRIBUTING.md, "Packages"), and imports only what it declares. Prints one line
 * per problem, with what to write instead, and exits 1 if there is any.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

interface PackageJson {
  name?: string;
  version?: string;
  private?: boolean;
  description?: string;
  type?: string;
  engines?: { node?: string };
  exports?: unknown;
  bin?: Record<string, string> | string;
  files?: string[];
  publishConfig?: { exports?: unknown; bin?: Record<string, string> | string };
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, unknown>;
  optionalDependencies?: Record<string, string>;
}

/** The umbrella package: `kotune`, in packages/kotune; every other folder `d` holds `@kotune/d`. */
const UMBRELLA = 'kotune';
/** Packages whose install script downloads libtensorflow: a user adds them on purpose, we never depend on them. */
const DOWNLOADS_AT_INSTALL = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];

const readJson = (path: string): PackageJson => JSON.parse(readFileSync(path, 'utf8'));
const show = (value: unknown) => JSON.stringify(value);

function typeScriptFiles(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'dist' || entry.startsWith('.')) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) typeScriptFiles(path, out);
    else if (/\.(ts|mts|mjs|js)$/.test(entry) && !entry.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** `@scope/name/sub` -> `@scope/name`, `name/sub` -> `name`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

const BUILTINS = new Set(builtinModules);

/** The exports / bin entries a source path maps to in the tarball: `./src/x.ts` -> `./dist/x.js`. */
function distOf(source: string, extension: '.js' | '.d.ts'): string {
  return source.replace(/^\.\/src\//, './dist/').replace(/\.ts$/, extension);
}

export function checkPackages(root: string): string[] {
  const problems: string[] = [];
  const rootJson = readJson(join(root, 'package.json'));
  const rootDev = new Set(Object.keys(rootJson.devDependencies ?? {}));
  const packagesDir = join(root, 'packages');
  const dirs = readdirSync(packagesDir)
    .filter((d) => existsSync(join(packagesDir, d, 'package.json')))
    .sort();
  const version = existsSync(join(packagesDir, UMBRELLA, 'package.json'))
    ? readJson(join(packagesDir, UMBRELLA, 'package.json')).version
    : undefined;
  const ours = new Set(dirs.map((d) => (d === UMBRELLA ? UMBRELLA : `@kotune/${d}`)));

  for (const dir of dirs) {
    const at = relative(root, join(packagesDir, dir, 'package.json'));
    const problem = (text: string) => problems.push(`${at}: ${text}`);
    const pkg = readJson(join(packagesDir, dir, 'package.json'));
    const name = dir === UMBRELLA ? UMBRELLA : `@kotune/${dir}`;

    if (pkg.name !== name) problem(`"name" must be ${show(name)} (the folder's name), not ${show(pkg.name)}`);
    if (!/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(pkg.version ?? ''))
      problem(`"version" must be a real version such as "0.1.0", not ${show(pkg.version)}`);
    else if (version !== undefined && pkg.version !== version)
      problem(`"version" must be ${show(version)}, the version of every package (they are released together)`);
    if (pkg.private) problem('"private" must go: every package is packed and installed from its tarball');
    if (!pkg.description) problem('"description" is missing (one line: what the package does)');
    if (pkg.type !== 'module') problem('"type" must be "module"');
    if (pkg.engines?.node !== rootJson.engines?.node)
      problem(`"engines" must be ${show({ node: rootJson.engines?.node })}, as the workspace's`);
    if (!pkg.files?.includes('dist')) problem('"files" must list "dist" (what the tarball ships; add assets the code reads at run time)');

    // exports: the sources in the repository, the build in the tarball.
    const exportsMap = typeof pkg.exports === 'string' ? { '.': pkg.exports } : pkg.exports;
    if (!exportsMap || typeof exportsMap !== 'object') {
      problem('"exports" is missing: { ".": "./src/index.ts" }');
    } else {
      const expected: Record<string, { types: string; import: string }> = {};
      for (const [key, target] of Object.entries(exportsMap as Record<string, unknown>)) {
        if (typeof target !== 'string' || !/^\.\/src\/.+\.ts$/.test(target)) {
          problem(
            `"exports" ${show(key)} must be a "./src/….ts" path (tsx, the tests and typecheck read the sources), not ${show(target)}`,
          );
          continue;
        }
        if (!existsSync(join(packagesDir, dir, target))) problem(`"exports" ${show(key)}: ${target} does not exist`);
        expected[key] = { types: distOf(target, '.d.ts'), import: distOf(target, '.js') };
      }
      if (show(pkg.publishConfig?.exports) !== show(expected)) {
        problem(`"publishConfig.exports" must be ${show(expected)} (the tarball's exports: the build, with its declarations)`);
      }
    }
    if (pkg.bin !== undefined) {
      const bins = typeof pkg.bin === 'string' ? { [packageName(name).split('/').pop()!]: pkg.bin } : pkg.bin;
      const published = pkg.publishConfig?.bin;
      const publishedBins = typeof published === 'string' ? { [packageName(name).split('/').pop()!]: published } : published;
      for (const command of Object.keys(bins)) {
        const target = publishedBins?.[command];
        if (!target || !/^\.\/dist\/.+\.js$/.test(target))
          problem(`"publishConfig.bin" must map ${show(command)} to the built "./dist/….js" entry`);
        else if (!existsSync(join(packagesDir, dir, target.replace(/^\.\/dist\//, './src/').replace(/\.js$/, '.ts'))))
          problem(`"publishConfig.bin" ${show(command)}: ${target} is built from no src/ file`);
      }
    }

    // dependencies: our packages by workspace version; nothing that downloads at install.
    const sections = ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies'] as const;
    for (const section of sections) {
      for (const [dep, range] of Object.entries(pkg[section] ?? {})) {
        if (ours.has(dep) && range !== 'workspace:*')
          problem(`${section} ${dep}: must be "workspace:*" (packing writes the released version)`);
        if (DOWNLOADS_AT_INSTALL.includes(dep))
          problem(
            `${section} ${dep}: downloads libtensorflow at install; list it in "peerDependenciesMeta" as optional only, so that only users who add it get it`,
          );
      }
    }

    // imports: src/ may use its dependencies and peers; tests and benches also its devDependencies and the workspace's.
    const runtime = new Set([
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}),
      ...Object.keys(pkg.peerDependenciesMeta ?? {}),
    ]);
    const development = new Set([...runtime, ...Object.keys(pkg.devDependencies ?? {}), ...rootDev]);
    const used = new Set<string>();
    for (const area of ['src', 'test', 'bench', 'bin']) {
      for (const file of typeScriptFiles(join(packagesDir, dir, area))) {
        const where = relative(root, file);
        const text = readFileSync(file, 'utf8');
        for (const { fileName: specifier } of ts.preProcessFile(text, true, true).importedFiles) {
          if (specifier.startsWith('.')) {
            const target = resolve(file, '..', specifier);
            if (area === 'src' && !target.startsWith(join(packagesDir, dir, 'src') + sep)) {
              problems.push(`${where}: imports ${specifier}, outside its package's src/; import the other package by name`);
            }
            continue;
          }
          if (specifier.startsWith('node:')) continue;
          if (BUILTINS.has(specifier)) {
            problems.push(`${where}: imports "${specifier}"; write "node:${specifier}"`);
            continue;
          }
          const dep = packageName(specifier);
          if (dep.startsWith('@tensorflow/') && dir !== 'engine')
            problems.push(`${where}: imports ${dep}; only @kotune/engine imports TensorFlow.js (use its \`tf\`)`);
          if (dep === name) problems.push(`${where}: imports its own package by name; use a relative path`);
          else if (area === 'src' ? !runtime.has(dep) : !development.has(dep)) {
            problems.push(
              `${where}: imports ${dep}, which ${at} does not declare (add it to "${area === 'src' ? 'dependencies' : 'devDependencies'}")`,
            );
          }
          if (area === 'src' || area === 'bin') used.add(dep);
        }
      }
    }
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      if (!used.has(dep)) problem(`dependencies ${dep}: no file of src/ imports it (move it to devDependencies, or drop it)`);
    }
  }
  return problems;
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const problems = checkPackages(new URL('..', import.meta.url).pathname);
  for (const line of problems) console.log(line);
  console.log(
    problems.length === 0 ? 'packages: every package follows the conventions (CONTRIBUTING.md)' : `packages: ${problems.length} problems`,
  );
  process.exit(problems.length === 0 ? 0 : 1);
}
