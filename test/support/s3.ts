/**
 * A real S3-compatible store for tests: s3rver on 127.0.0.1 with its files
 * in a temporary directory, and an HTTP proxy in front of it that records
 * every request (method, key, body bytes) and can hold requests back, so a
 * test can stop a publish at an exact point of its upload order.
 */
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import S3rver from 's3rver';
import { tempDir } from './repos.js';

export const BUCKET = 'mirrors';

export interface StoreRequest {
  method: string;
  /** Path and query as sent, e.g. `/mirrors/git/manifest.js.gz?x-id=PutObject`. */
  url: string;
  /** The object key (path without the bucket), query left off. */
  key: string;
  query: URLSearchParams;
  bodyBytes: number;
}

export interface TestStore {
  /** `http://127.0.0.1:<port>`: s3rver itself (anonymous reads, as a replica or CDN reads a public bucket). */
  endpoint: string;
  /** The recording proxy in front of s3rver; publish is pointed here. */
  proxyUrl: string;
  /** Public URL of `s3://mirrors/<prefix>`: where replicas read the tree. */
  publicUrl(prefix: string): string;
  /** Environment for the CLI: credentials, region, endpoint (the proxy), no profile files, no instance metadata. */
  env(extra?: Record<string, string>): Record<string, string>;
  requests: StoreRequest[];
  /** Requests matching this are held (never answered) until release() or close. */
  hold(match: ((r: StoreRequest) => boolean) | null): void;
  /** Resolves once a held request arrived. */
  held(): Promise<StoreRequest>;
  /** Bytes of an object (null: none), read anonymously from s3rver. */
  get(key: string): Promise<Buffer | null>;
  sha256(key: string): Promise<string | null>;
  /** Deletes one part of an unfinished upload from s3rver's files, as a store that lost it. */
  dropPart(uploadId: string, partNumber: number): Promise<void>;
  stateHome: string;
}

/**
 * `listParts`: answer ListParts (which s3rver lacks, 405) from s3rver's own
 * files of unfinished uploads, as S3, MinIO and Ceph answer it.
 */
export async function startStore(t: ExecutionContext, opts: { listParts?: boolean } = {}): Promise<TestStore> {
  const { dir, cleanup } = await tempDir('bm-s3-');
  t.teardown(cleanup);
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: join(dir, 'store'),
    silent: true,
    configureBuckets: [{ name: BUCKET, configs: [] }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const requests: StoreRequest[] = [];
  let holdMatch: ((r: StoreRequest) => boolean) | null = null;
  const heldRequests: StoreRequest[] = [];
  let onHeld: ((r: StoreRequest) => void)[] = [];
  const heldSockets = new Set<ServerResponse>();
  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const rec: StoreRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      key: decodeURIComponent(u.pathname).replace(/^\/[^/]*\/?/, ''),
      query: u.searchParams,
      bodyBytes: 0,
    };
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      rec.bodyBytes = body.length;
      if (holdMatch?.(rec)) {
        heldSockets.add(res);
        heldRequests.push(rec);
        for (const f of onHeld) f(rec);
        onHeld = [];
        return;
      }
      requests.push(rec);
      const uploadId = rec.query.get('uploadId');
      if (opts.listParts && rec.method === 'GET' && uploadId && !rec.query.has('partNumber'))
        return void listParts(join(dir, 'store'), rec.key, uploadId).then(
          ({ status, xml }) => res.writeHead(status, { 'content-type': 'application/xml' }).end(xml),
          () => res.destroy(),
        );
      const up = httpRequest(
        { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  t.teardown(async () => {
    for (const r of heldSockets) r.destroy();
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
    await server.close();
  });
  const get = async (key: string) => {
    const r = await fetch(`${endpoint}/${BUCKET}/${key}`);
    return r.status === 200 ? Buffer.from(await r.arrayBuffer()) : null;
  };
  const stateHome = join(dir, 'state');
  return {
    endpoint,
    proxyUrl,
    publicUrl: (prefix) => `${endpoint}/${BUCKET}/${prefix}`,
    env: (extra = {}) => ({
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: proxyUrl,
      AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      XDG_STATE_HOME: stateHome,
      ...extra,
    }),
    requests,
    hold: (match) => {
      holdMatch = match;
    },
    held: () => new Promise((resolve) => (heldRequests.length ? resolve(heldRequests[0]!) : onHeld.push(resolve))),
    get,
    sha256: async (key) => {
      const b = await get(key);
      return b ? createHash('sha256').update(b).digest('hex') : null;
    },
    dropPart: async (uploadId, n) => {
      const up = join(dir, 'store', BUCKET, '._S3rver_uploads', uploadId);
      await rm(join(up, String(n)));
      await rm(join(up, `${n}.md5`));
    },
    stateHome,
  };
}

/** ListParts from where s3rver keeps the parts of an unfinished upload (`<bucket>/._S3rver_uploads/<id>/<n>`). */
async function listParts(root: string, key: string, uploadId: string): Promise<{ status: number; xml: string }> {
  const up = join(root, BUCKET, '._S3rver_uploads', uploadId.replace(/[^0-9a-f]/g, ''));
  let names: string[];
  try {
    names = await readdir(up);
  } catch {
    return {
      status: 404,
      xml: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>no such upload</Message><UploadId>${uploadId}</UploadId></Error>`,
    };
  }
  const parts: string[] = [];
  for (const n of names.filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b))) {
    const size = (await stat(join(up, n))).size;
    const md5 = (await readFile(join(up, `${n}.md5`), 'utf8')).trim();
    parts.push(`<Part><PartNumber>${n}</PartNumber><ETag>"${md5}"</ETag><Size>${size}</Size></Part>`);
  }
  return {
    status: 200,
    xml: `<?xml version="1.0" encoding="UTF-8"?><ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${BUCKET}</Bucket><Key>${key}</Key><UploadId>${uploadId}</UploadId><IsTruncated>false</IsTruncated>${parts.join('')}</ListPartsResult>`,
  };
}

/** PUTs of whole objects and of parts, by key. */
export function puts(requests: StoreRequest[]): StoreRequest[] {
  return requests.filter((r) => r.method === 'PUT');
}
