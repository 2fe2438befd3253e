/**
 * A TCP proxy for tests that behaves like a bad network link: it sits on
 * 127.0.0.1 (ephemeral port) in front of any upstream host:port and, per
 * connection, can cut the link after a byte budget sent downstream (fixed,
 * or drawn from a seeded PRNG within [min, max] so a failing run can be
 * replayed), stall it (stop forwarding, keep it open), or refuse it.
 *
 *   const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: origin.port },
 *                                         cutAfterBytes: 300_000 });
 *   await downloadFile({ url: proxy.url('/a.bundle'), ... });
 *   proxy.stats.bytesDownstream;   // bytes on the wire towards the client
 *   await proxy.close();           // destroys every socket, then stops listening
 *
 * It knows nothing about HTTP: the budget counts every byte the client
 * receives, headers included, which is exactly what "bytes on the wire"
 * means. Faults apply to new connections; `configure()` changes them
 * between (or during) tests. `bytesPerSecond` makes it a slow link: one
 * downstream capacity shared by every connection, as on a real line.
 */
import { seededRandom } from './random.js';
import { SlowLink } from './slow-link.js';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export type ByteBudget = number | { min: number; max: number; seed: number };

export interface FaultOptions {
  /** Cut each connection once this many bytes went downstream. */
  cutAfterBytes?: ByteBudget | undefined;
  /**
   * How a cut looks to the client: 'close' (FIN after the budget; default:
   * every counted byte reaches the client) or 'reset' (RST: as on a real
   * link, bytes still in flight are lost, so bytesDownstream over-counts
   * what the client could read).
   */
  cutStyle?: 'close' | 'reset';
  /** Forward this many bytes downstream per connection, then nothing (connection left open). */
  stallAfterBytes?: number | undefined;
  /** Accept, then reset, every connection. */
  refuse?: boolean;
  /** Only the first N connections (counted from the last configure()) get faults; later ones pass through. */
  faultyConnections?: number | undefined;
  /** Downstream capacity of the link, shared by all (faulty) connections; unset: as fast as loopback. */
  bytesPerSecond?: number | undefined;
}

export interface FaultProxyOptions extends FaultOptions {
  upstream: { host: string; port: number };
  /** Listen on this port (default: any free one); lets a test stop the link and bring it back where clients expect it. */
  port?: number;
}

export interface FaultProxyStats {
  connections: number;
  /** Bytes forwarded to clients. */
  bytesDownstream: number;
  /** Bytes forwarded to the upstream. */
  bytesUpstream: number;
  cuts: number;
  stalls: number;
  refused: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** `http://127.0.0.1:<port><path>` */
  url(path: string): string;
  readonly stats: Readonly<FaultProxyStats>;
  /** Replaces the fault settings for connections accepted from now on. */
  configure(faults: FaultOptions): void;
  /** Destroys every open socket and stops listening. */
  close(): Promise<void>;
}

export { seededRandom };

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = opts.upstream;
  let faults: FaultOptions = { ...opts };
  let random = rngFor(faults.cutAfterBytes);
  let faultyLeft = faults.faultyConnections ?? Infinity;
  const stats: FaultProxyStats = {
    connections: 0,
    bytesDownstream: 0,
    bytesUpstream: 0,
    cuts: 0,
    stalls: 0,
    refused: 0,
  };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  /** The simulated slow link (shared by all connections). */
  const link = new SlowLink();

  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };

  const server: Server = createServer((client) => {
    track(client);
    stats.connections += 1;
    const faulty = faultyLeft > 0;
    if (faulty) faultyLeft -= 1;
    const f = faulty ? faults : {};
    if (f.refuse) {
      stats.refused += 1;
      client.resetAndDestroy();
      return;
    }
    const budget = budgetFor(f.cutAfterBytes, random);
    const stallAt = f.stallAfterBytes;
    let sent = 0;
    let done = false;

    const up = connect(upstream.port, upstream.host);
    track(up);
    const rate = f.bytesPerSecond;
    /** A throttled chunk is being delivered: upstream stays paused, and its end waits for the delivery. */
    let throttling = false;
    let endAfterDelivery = false;
    const shutBoth = (): void => {
      done = true;
      up.destroy();
      client.destroy();
    };
    up.on('error', shutBoth);
    up.on('close', () => {
      if (done) return;
      if (throttling) {
        endAfterDelivery = true;
        return;
      }
      done = true;
      client.end();
    });
    client.on('close', () => {
      done = true;
      up.destroy();
    });
    client.on('error', shutBoth);

    client.on('data', (chunk: Buffer) => {
      if (done) return;
      stats.bytesUpstream += chunk.length;
      if (!up.write(chunk)) client.pause();
    });
    up.on('drain', () => client.resume());
    client.on('end', () => {
      if (!done) up.end();
    });

    const writeDown = (c: Buffer): boolean => {
      stats.bytesDownstream += c.length;
      return client.write(c);
    };
    /** Sends `c` to the client (at the link's rate, if it has one), then runs `after`. */
    const deliver = (c: Buffer, after: () => void): void => {
      if (!rate || c.length === 0) {
        if (c.length > 0 && !writeDown(c)) up.pause();
        after();
        return;
      }
      throttling = true;
      up.pause();
      const slices: Buffer[] = [];
      for (let i = 0; i < c.length; i += SLOW_LINK_SLICE) slices.push(c.subarray(i, i + SLOW_LINK_SLICE));
      const step = (): void => {
        for (;;) {
          const s = slices.shift();
          if (!s) {
            throttling = false;
            after();
            if (endAfterDelivery && !done) {
              done = true;
              client.end();
            } else if (!done && !client.writableNeedDrain) up.resume(); // else 'drain' resumes it
            return;
          }
          const now = Date.now();
          const sentAt = link.book(s.length, rate, now);
          if (sentAt <= now) {
            // behind schedule (a late timer): this slice is due already
            if (client.destroyed) return;
            writeDown(s);
            continue;
          }
          const timer = setTimeout(() => {
            timers.delete(timer);
            if (client.destroyed) return;
            writeDown(s);
            step();
          }, sentAt - now);
          timers.add(timer);
          return;
        }
      };
      step();
    };

    up.on('data', (chunk: Buffer) => {
      if (done) return;
      let c = chunk;
      let action: 'cut' | 'stall' | undefined;
      const stallLeft = (stallAt ?? Infinity) - sent;
      const cutLeft = (budget ?? Infinity) - sent;
      if (c.length >= stallLeft && stallLeft <= cutLeft) {
        c = c.subarray(0, stallLeft);
        action = 'stall';
      } else if (c.length >= cutLeft) {
        c = c.subarray(0, cutLeft);
        action = 'cut';
      }
      sent += c.length;
      if (action === 'stall') {
        // Keep both sockets open and silent: the client must notice by itself.
        stats.stalls += 1;
        done = true;
        up.pause();
      } else if (action === 'cut') {
        stats.cuts += 1;
        done = true;
        up.destroy();
      }
      deliver(c, () => {
        if (action !== 'cut') return;
        if (f.cutStyle === 'reset') {
          // Let the bytes reach the kernel first, then reset.
          client.write(Buffer.alloc(0), () => client.resetAndDestroy());
        } else {
          client.end(() => client.destroy());
        }
      });
    });
    client.on('drain', () => {
      if (!done && !throttling) up.resume();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    stats,
    configure(next) {
      faults = { ...next };
      random = rngFor(faults.cutAfterBytes);
      faultyLeft = faults.faultyConnections ?? Infinity;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

/** A slow link delivers in slices this large, each when the link would have finished sending it. */
const SLOW_LINK_SLICE = 16 * 1024;

function rngFor(b: ByteBudget | undefined): () => number {
  return typeof b === 'object' ? seededRandom(b.seed) : Math.random;
}

function budgetFor(b: ByteBudget | undefined, random: () => number): number | undefined {
  if (b === undefined) return undefined;
  if (typeof b === 'number') return Math.max(b, 0);
  const lo = Math.max(Math.min(b.min, b.max), 1);
  const hi = Math.max(b.min, b.max);
  return lo + Math.floor(random() * (hi - lo + 1));
}
