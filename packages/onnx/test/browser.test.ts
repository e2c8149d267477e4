/**
 * The README's browser example (examples/transformers-js/browser/index.html, served as it is) in headless
 * Chromium: transformers.js from its CDN address, the exported reranker as static files under /models/. The
 * machine has no internet, so the CDN's host name resolves to a local HTTPS server that serves the same files
 * from node_modules (transformers.js's browser bundle and the onnxruntime-web it asks for). The page's sigmoid
 * scores must equal `Reranker.score(normalize)` within 1e-5 relative. Skipped, with the reason, where Chromium
 * or openssl is missing (Debian: apt-get install chromium openssl).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { initBackend } from '@kotune/engine';
import { Reranker } from '@kotune/xlm-roberta';
import { exportedCopy, maxRelativeError, report, RERANKER_DIR } from './support.ts';

const PAGE = fileURLToPath(new URL('../examples/transformers-js/browser/index.html', import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(existsSync);
const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const MIME: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/** Serves `route(path)` (a file, or null for 404) with CORS open, as a CDN does. */
function handler(route: (path: string) => string | null) {
  return (request: IncomingMessage, response: ServerResponse) => {
    const file = route(decodeURIComponent(new URL(request.url!, 'http://x').pathname));
    if (!file || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'access-control-allow-origin': '*' });
    response.end(readFileSync(file));
  };
}

/** `file` under `root`, or null when the path climbs out of it. */
const under = (root: string, path: string) => {
  const file = normalize(join(root, path));
  return file.startsWith(root) ? file : null;
};

/**
 * Opens `url` in headless Chromium and returns the text of `selector` once the page has replaced its placeholder
 * (or after 60 s), through the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ending in
 * NUL, written to the browser's fd 3 and read from its fd 4).
 */
async function pageText(chromium: string, url: string, selector: string, flags: string[]): Promise<string> {
  const browser = spawn(chromium, ['--headless', '--no-sandbox', '--disable-gpu', '--remote-debugging-pipe', ...flags, 'about:blank'], {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'],
  });
  const [toBrowser, fromBrowser] = [browser.stdio[3] as Writable, browser.stdio[4] as Readable];
  const pending = new Map<number, (message: { result?: Record<string, unknown>; error?: unknown }) => void>();
  let buffered = '';
  fromBrowser.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    for (let end = buffered.indexOf('\0'); end >= 0; end = buffered.indexOf('\0')) {
      const message = JSON.parse(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      pending.get(message.id)?.(message);
    }
  });
  let nextId = 0;
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((done, fail) => {
      const id = ++nextId;
      pending.set(id, (message) =>
        message.error ? fail(new Error(`${method}: ${JSON.stringify(message.error)}`)) : done(message.result ?? {}),
      );
      toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  try {
    const { targetId } = await send('Target.createTarget', { url });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    const deadline = Date.now() + 60_000;
    let text = '';
    while (Date.now() < deadline) {
      const { result } = await send(
        'Runtime.evaluate',
        { expression: `document.querySelector(${JSON.stringify(selector)})?.textContent ?? ''`, returnByValue: true },
        sessionId as string,
      );
      text = String((result as { value?: unknown }).value ?? '');
      if (text && text !== 'scoring…') break;
      await new Promise((wait) => setTimeout(wait, 200));
    }
    return text;
  } finally {
    const exited = new Promise((done) => browser.once('exit', done));
    browser.kill();
    await exited;
  }
}

const listen = (server: Server) =>
  new Promise<number>((done) => server.listen(0, '127.0.0.1', () => done((server.address() as AddressInfo).port)));

test('the README prints the browser page verbatim', () => {
  assert.ok(readFileSync(README, 'utf8').includes(readFileSync(PAGE, 'utf8')), 'README.md holds index.html as it is');
});

/** The folder of the package that `entry` (a resolved file) belongs to. */
function packageRoot(entry: string): string {
  let dir = dirname(entry);
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

test('the browser page scores the exported reranker as kotune does', async () => {
  if (!CHROMIUM || !hasOpenssl) {
    console.log(`  skipped: ${CHROMIUM ? 'openssl' : 'Chromium'} is not installed (apt-get install chromium openssl)`);
    return;
  }
  await initBackend({ backend: 'wasm', log: null });
  const model = await exportedCopy(RERANKER_DIR);
  const reranker = await Reranker.load(RERANKER_DIR, { log: null });
  const expected = await reranker.score(
    [
      ['배고프다', '뭐라도 챙겨 드세요.'],
      ['배고프다', '좋은 꿈 꾸세요.'],
    ],
    { normalize: true },
  );
  reranker.dispose();

  const transformers = packageRoot(createRequire(import.meta.url).resolve('@huggingface/transformers'));
  const ortWeb = packageRoot(createRequire(join(transformers, 'package.json')).resolve('onnxruntime-web'));
  const ortVersion = JSON.parse(readFileSync(join(ortWeb, 'package.json'), 'utf8')).version as string;
  const site = createHttpServer(
    handler((path) =>
      path === '/' ? PAGE : path.startsWith('/models/my-reranker/') ? under(model, path.slice('/models/my-reranker/'.length)) : null,
    ),
  );
  const work = mkdtempSync(join(tmpdir(), 'kotune-browser-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=cdn.jsdelivr.net',
      '-keyout',
      join(work, 'key.pem'),
      '-out',
      join(work, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const cdn = createHttpsServer(
    { key: readFileSync(join(work, 'key.pem')), cert: readFileSync(join(work, 'cert.pem')) },
    handler((path) => {
      if (path === '/npm/@huggingface/transformers@4.3.1') return join(transformers, 'dist', 'transformers.min.js');
      const prefix = `/npm/onnxruntime-web@${ortVersion}/dist/`;
      return path.startsWith(prefix) ? under(join(ortWeb, 'dist'), path.slice(prefix.length)) : null;
    }),
  );
  const [sitePort, cdnPort] = await Promise.all([listen(site), listen(cdn)]);
  try {
    const shown = await pageText(CHROMIUM, `http://127.0.0.1:${sitePort}/`, '#scores', [
      `--user-data-dir=${join(work, 'profile')}`,
      '--ignore-certificate-errors',
      // Every host name but the CDN's resolves to nothing: the browser reaches only the two local servers.
      `--host-resolver-rules=MAP cdn.jsdelivr.net:443 127.0.0.1:${cdnPort}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1`,
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-domain-reliability',
    ]);
    assert.ok(shown.startsWith('['), `the page shows scores, not ${JSON.stringify(shown)}`);
    assert.ok(report('browser page vs Reranker.score(normalize)', maxRelativeError(JSON.parse(shown) as number[], expected)) <= 1e-5);
  } finally {
    site.close();
    cdn.close();
    rmSync(work, { recursive: true, force: true, maxRetries: 5 });
  }
});

test.run();
