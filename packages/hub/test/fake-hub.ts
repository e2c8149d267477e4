/**
 * A local stand-in for huggingface.co serving the requests @huggingface/hub 2.17 makes for a download:
 *
 *   GET  /api/models/<repo>/revision/<rev>?expand=...      model info (`sha` = the commit)
 *   GET  /api/models/<repo>/tree/<rev>?recursive=true&...  file listing (git oid, size, lfs {oid, size})
 *   GET  /<repo>/resolve/<rev>/<path>                      content; `Range: bytes=0-0` probes size + ETag
 *
 * with the hub's error conventions (401 "Repository not found" for unknown or private repos without a
 * token, 404 + `X-Error-Code: EntryNotFound` for missing files).
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  files: Record<string, Uint8Array | string>;
  /** Bearer token required to see the repo. */
  token?: string;
  /** Files served with different bytes than the listing's checksum says. */
  corrupt?: string[];
}

export interface FakeHub {
  url: string;
  /** Every request as "METHOD /path?query". */
  requests: string[];
  /** The commit hash each repo's "main" points to. */
  sha(repoId: string): string;
  close(): Promise<void>;
}

const LFS = /\.(safetensors|bin|model|onnx)$/;

function gitOid(content: Uint8Array): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const requests: string[] = [];
  const bytes = (v: Uint8Array | string) => (typeof v === 'string' ? Buffer.from(v) : Buffer.from(v));
  const shas = new Map(Object.keys(repos).map((id) => [id, createHash('sha1').update(`commit ${id}`).digest('hex')]));

  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url!, 'http://x');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const api = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)(?:\/(.*))?$/);
    const resolve = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
    const repoId = api?.[1] ?? resolve?.[1];
    const repo = repoId ? repos[repoId] : undefined;
    if (!repo || (repo.token && req.headers.authorization !== `Bearer ${repo.token}`)) {
      return json(401, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    }
    const sha = shas.get(repoId!)!;
    const revision = decodeURIComponent((api?.[3] ?? resolve?.[2])!);
    if (revision !== 'main' && revision !== 'HEAD' && revision !== sha)
      return json(404, { error: `Invalid rev id: ${revision}` }, { 'X-Error-Code': 'RevisionNotFound' });

    if (api?.[2] === 'revision')
      return json(200, {
        _id: `id-${repoId}`,
        id: repoId,
        sha,
        private: !!repo.token,
        siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
      });
    if (api?.[2] === 'tree') {
      const dirs = new Set<string>();
      const entries: unknown[] = [];
      for (const [path, value] of Object.entries(repo.files)) {
        const content = bytes(value);
        const parts = path.split('/');
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
        entries.push({
          type: 'file',
          path,
          size: content.length,
          oid: gitOid(content),
          ...(LFS.test(path)
            ? { lfs: { oid: createHash('sha256').update(content).digest('hex'), size: content.length, pointerSize: 134 } }
            : {}),
        });
      }
      for (const path of dirs) entries.push({ type: 'directory', path, size: 0, oid: createHash('sha1').update(path).digest('hex') });
      return json(200, entries);
    }
    if (resolve && req.method === 'GET') {
      const path = resolve[3]!;
      const value = repo.files[path];
      if (value === undefined) return json(404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      let content = bytes(value);
      if (repo.corrupt?.includes(path)) content = Buffer.concat([content.subarray(0, -1), Buffer.from([content[content.length - 1]! ^ 1])]);
      const etag = LFS.test(path) ? createHash('sha256').update(bytes(value)).digest('hex') : gitOid(bytes(value));
      const headers = {
        ETag: `"${etag}"`,
        'X-Linked-ETag': `"${etag}"`,
        'Content-Type': 'application/octet-stream',
        'Accept-Ranges': 'bytes',
      };
      const range = req.headers.range?.match(/^bytes=(\d+)-(\d+)$/);
      if (range) {
        const start = Number(range[1]);
        const end = Math.min(Number(range[2]), content.length - 1);
        res.writeHead(206, {
          ...headers,
          'Content-Range': `bytes ${start}-${end}/${content.length}`,
          'Content-Length': String(end - start + 1),
        });
        return res.end(content.subarray(start, end + 1));
      }
      res.writeHead(200, { ...headers, 'Content-Length': String(content.length) });
      return res.end(content);
    }
    json(404, { error: `fake hub: no route for ${req.method} ${req.url}` });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    sha: (id) => shas.get(id)!,
    close: () => new Promise((done) => server.close(() => done())),
  };
}
