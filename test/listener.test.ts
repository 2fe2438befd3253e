/**
 * The helper that starts nginx and `git daemon` for tests and the bench:
 * a server that exits before it listens (its port was taken between the
 * look and the bind) is started again on another port; one that never
 * manages to is an error naming it, after three attempts; a server with a
 * sign of its own (nginx's pid file) is up only once that sign is there.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accepts, startOnFreePort } from './support/listener.js';

const listenOn = (port: number) =>
  spawn(process.execPath, ['-e', `require('node:net').createServer((s) => s.end()).listen(${port}, '127.0.0.1')`], {
    stdio: 'ignore',
  });
const exitAtOnce = () => spawn(process.execPath, ['-e', 'process.exit(1)'], { stdio: 'ignore' });

test('a server that exits before it listens is started again on another port', async (t) => {
  const ports: number[] = [];
  const { child, port } = await startOnFreePort('test server', (p) => {
    ports.push(p);
    return ports.length === 1 ? exitAtOnce() : listenOn(p);
  });
  t.teardown(() => void child.kill());
  t.is(ports.length, 2);
  t.is(port, ports[1]!);
  const reached = await new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
  t.true(reached);
});

test('a server that never listens fails after three attempts, naming it and its own words', async (t) => {
  let attempts = 0;
  const err = await t.throwsAsync(
    startOnFreePort(
      'test server',
      () => {
        attempts++;
        return exitAtOnce();
      },
      () => 'bind: Address already in use',
    ),
  );
  t.is(attempts, 3);
  t.true(err!.message.includes('test server') && err!.message.includes('Address already in use'));
});

test('a server is up only once its own sign says so, not at the first connection a port accepts', async (t) => {
  // the server listens at once but writes its sign 300 ms later, as nginx writes its pid file only once bound
  const dir = await mkdtemp(join(tmpdir(), 'bm-listener-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sign = join(dir, 'up');
  const { child } = await startOnFreePort(
    'test server',
    (p) =>
      spawn(
        process.execPath,
        [
          '-e',
          `require('node:net').createServer((s) => s.end()).listen(${p}, '127.0.0.1');` +
            `setTimeout(() => require('node:fs').writeFileSync(${JSON.stringify(sign)}, ''), 300)`,
        ],
        { stdio: 'ignore' },
      ),
    () => '',
    async (p) => existsSync(sign) && (await accepts(p)),
  );
  t.teardown(() => void child.kill());
  t.true(existsSync(sign));
});
