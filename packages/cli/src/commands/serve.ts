/**
 * `kotune serve --model DIR [--model NAME=DIR ...] [--port P] [--host H] [--api-key K]`: rerankers and embedders
 * behind text-embeddings-inference's, Cohere's / Jina's and OpenAI's HTTP APIs (see @kotune/serve). SIGTERM or
 * Ctrl-C stops taking requests, finishes those in flight and exits; a second one exits at once.
 */
import { createServer, defaultModelName } from '@kotune/serve';
import { CliError } from '../errors.ts';
import { intFlag, parseCommandArgs, type Flags } from '../args.ts';

const SYNOPSIS = '--model DIR [--model NAME=DIR ...] [--port P] [--host H] [--api-key K]';
const FLAGS: Flags = {
  model: {
    type: 'string',
    multiple: true,
    required: true,
    help: 'reranker or embedder folder (or repo id), as DIR or NAME=DIR; repeat for more',
  },
  port: { type: 'string', default: '3000', help: 'port to listen on' },
  host: { type: 'string', default: '127.0.0.1', help: 'interface to bind (0.0.0.0: every interface)' },
  'api-key': { type: 'string', help: 'require "Authorization: Bearer KEY" (default: KOTUNE_API_KEY; none: no check)' },
  'auto-truncate': { type: 'boolean', help: 'cut over-long inputs when a request does not say (default: answer 422)' },
  'max-client-batch-size': { type: 'string', default: '32', help: 'texts in one request, at most (413 past it)' },
  'max-concurrent-requests': { type: 'string', default: '512', help: 'inputs queued or computing, at most (503 past it)' },
  'max-batch-tokens': { type: 'string', default: '16384', help: 'tokens in one batch of requests' },
  'max-batch-requests': { type: 'string', help: 'inputs in one batch of requests (default: bounded by tokens only)' },
  'max-batch-wait-ms': { type: 'string', default: '5', help: 'how long an idle model waits for more requests to batch' },
  'batch-size': { type: 'string', default: '32', help: 'inputs per forward pass' },
  'payload-limit': { type: 'string', default: '2000000', help: 'largest request body in bytes (413 past it)' },
};

/** `NAME=DIR` or `DIR` (named by its last path component). */
export function parseModelFlag(value: string): { name: string; path: string } {
  const named = /^([\w.-]+)=(.+)$/.exec(value);
  return named ? { name: named[1]!, path: named[2]! } : { name: defaultModelName(value), path: value };
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommandArgs('serve', SYNOPSIS, FLAGS, argv);
  if (!parsed) return;
  const v = parsed.values;
  const port = Number(v.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new CliError(`serve: --port must be an integer in [0, 65535], got '${v.port}'`);
  const waitMs = Number(v['max-batch-wait-ms']);
  if (!(waitMs >= 0)) throw new CliError(`serve: --max-batch-wait-ms must be a number ≥ 0, got '${v['max-batch-wait-ms']}'`);
  const server = await createServer({
    models: (v.model as string[]).map(parseModelFlag),
    host: v.host as string,
    port,
    apiKey: v['api-key'] as string | undefined, // unset: KOTUNE_API_KEY, read by createServer
    backend: v.backend as string | undefined,
    autoTruncate: Boolean(v['auto-truncate']),
    maxClientBatchSize: intFlag('serve', 'max-client-batch-size', v['max-client-batch-size'], 32),
    maxConcurrentRequests: intFlag('serve', 'max-concurrent-requests', v['max-concurrent-requests'], 512),
    maxBatchTokens: intFlag('serve', 'max-batch-tokens', v['max-batch-tokens'], 16384),
    maxBatchRequests: v['max-batch-requests'] === undefined ? null : intFlag('serve', 'max-batch-requests', v['max-batch-requests'], 1),
    maxBatchWaitMs: waitMs,
    batchSize: intFlag('serve', 'batch-size', v['batch-size'], 32),
    payloadLimit: intFlag('serve', 'payload-limit', v['payload-limit'], 2_000_000),
  });
  let url: string;
  try {
    url = await server.listen();
  } catch (error) {
    await server.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`serve: port ${port} on ${v.host} is already in use; choose another with --port`);
    if (code === 'EACCES') throw new CliError(`serve: not allowed to listen on port ${port} of ${v.host}`);
    throw error;
  }
  const kinds = (kind: string) =>
    server.models
      .filter((m) => m.kind === kind)
      .map((m) => `${m.name} (${m.path})`)
      .join(', ') || 'none';
  console.log(`kotune serve: listening on ${url}; rerankers: ${kinds('reranker')}; embedders: ${kinds('embedder')}`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        console.error(`kotune serve: ${signal} again, exiting now`);
        process.exit(1);
      }
      stopping = true;
      console.error(`kotune serve: ${signal}: finishing the requests in flight, then exiting`);
      server.close().then(resolve, (error) => {
        console.error(`kotune serve: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  console.error('kotune serve: stopped');
}
