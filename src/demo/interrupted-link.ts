/**
 * A TCP relay on 127.0.0.1 that drops every connection after a byte budget:
 * the demo's stand-in for a link that breaks every few hundred kilobytes.
 */
import { createServer, connect, type Socket } from 'node:net';

export interface InterruptedLink {
  url: string;
  port: number;
  stats: { connections: number; cuts: number; bytesDown: number };
  close(): Promise<void>;
}

export async function startInterruptedLink(upstreamPort: number, cutEveryBytes: number): Promise<InterruptedLink> {
  const sockets = new Set<Socket>();
  const stats = { connections: 0, cuts: 0, bytesDown: 0 };
  const server = createServer((client) => {
    stats.connections += 1;
    const upstream = connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let budget = cutEveryBytes;
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => sockets.delete(client) && upstream.destroy());
    upstream.on('close', () => sockets.delete(upstream) && client.end());
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      const part = chunk.length > budget ? chunk.subarray(0, budget) : chunk;
      budget -= part.length;
      stats.bytesDown += part.length;
      client.write(part);
      if (budget <= 0) {
        stats.cuts += 1;
        drop();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
