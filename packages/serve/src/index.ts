export { createServer, defaultModelName } from './server.ts';
export type { KotuneServer, ServeOptions } from './server.ts';
export type { BatcherStats } from './batcher.ts';
export type { ErrorType } from './errors.ts';
export type { LoadedModel, ModelKind, ModelSpec } from './protocol.ts';
