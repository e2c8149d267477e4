export { resolveModelPath, isRepoId } from './resolve.ts';
export type { ResolveOptions } from './resolve.ts';
export { hubCacheDir, hfHome, hubToken, offlineFromEnv, repoFolder, missingModelFiles } from './cache.ts';
