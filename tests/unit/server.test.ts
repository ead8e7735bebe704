/**
 * The API process's start and stop on a real socket (port 0), the pools mocked: it listens,
 * stop() lets a request in flight finish, cuts one that outlives the timeout, closes the pools
 * once however often it is called. Each test loads server.ts afresh: a stopped server stays
 * stopped, by design.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

jest.mock('../../src/utils/database', () => ({ pingDatabase: jest.fn(async () => undefined), closeDatabase: jest.fn(async () => undefined) }));
jest.mock('../../src/utils/redis', () => ({ pingRedis: jest.fn(async () => undefined), closeRedis: jest.fn(async () => undefined) }));
jest.mock('../../src/middleware/rateLimit', () => jest.requireActual('../fixtures/controllerApp').passThroughRateLimitModule());

type Server = typeof import('../../src/server');
type Mocked = { [name: string]: jest.Mock };

let server: Server;
let database: Mocked;
let redis: Mocked;

beforeEach(() => {
  jest.resetModules();
  server = require('../../src/server') as Server;
  database = jest.requireMock('../../src/utils/database');
  redis = jest.requireMock('../../src/utils/redis');
});

afterEach(() => server.stop(100));

/** One GET over a fresh connection; resolves with the status and body, or rejects with the socket error. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** A readyz whose Postgres ping answers only when `release` is called. */
function slowReadyz() {
  let release: () => void = () => undefined;
  database['pingDatabase']!.mockReturnValue(new Promise<void>((resolve) => (release = resolve)));
  return { release: () => release() };
}

const tick = (ms = 50) => new Promise((resolve) => setTimeout(resolve, ms));

describe('start', () => {
  it('when started on port 0, then it listens on a free port it reports, serving the app', async () => {
    const { server: listening, port } = await server.start(0);

    expect(port).toBeGreaterThan(0);
    expect((listening.address() as AddressInfo).port).toBe(port);
    expect(await get(port, '/healthz')).toEqual({ status: 200, body: '{"status":"ok"}' });
  });

  it('when the port is taken, then start rejects', async () => {
    const { port } = await server.start(0);
    jest.resetModules();
    const second = require('../../src/server') as Server;

    await expect(second.start(port)).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('stop', () => {
  it('when stopped, then the port refuses connections and the database and Redis are closed', async () => {
    const { port } = await server.start(0);

    await server.stop();

    await expect(get(port, '/healthz')).rejects.toThrow(/ECONNREFUSED/);
    expect(database['closeDatabase']).toHaveBeenCalledTimes(1);
    expect(redis['closeRedis']).toHaveBeenCalledTimes(1);
  });

  it('when a request is in flight, then it is answered before stop resolves', async () => {
    const { port } = await server.start(0);
    const ping = slowReadyz();
    const inFlight = get(port, '/readyz');
    await tick();

    const stopped = server.stop(5_000);
    let done = false;
    void stopped.then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    ping.release();

    expect((await inFlight).status).toBe(200);
    await stopped;
  });

  it('when a request outlives the timeout, then its connection is cut and stop still resolves', async () => {
    const { port } = await server.start(0);
    slowReadyz();
    const inFlight = get(port, '/readyz');
    await tick();

    await server.stop(50);

    await expect(inFlight).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(database['closeDatabase']).toHaveBeenCalledTimes(1);
  });

  it('when called twice, then both wait for one shutdown and the pools are closed once', async () => {
    await server.start(0);

    const first = server.stop();
    const second = server.stop();

    expect(second).toBe(first);
    await Promise.all([first, second]);
    expect(database['closeDatabase']).toHaveBeenCalledTimes(1);
    expect(redis['closeRedis']).toHaveBeenCalledTimes(1);
  });

  it('when closing a pool fails, then stop still resolves and closes the other', async () => {
    await server.start(0);
    database['closeDatabase']!.mockRejectedValueOnce(new Error('already closed'));

    await expect(server.stop()).resolves.toBeUndefined();
    expect(redis['closeRedis']).toHaveBeenCalledTimes(1);
  });

  it('when never started, then stop only closes the pools', async () => {
    await server.stop();

    expect(database['closeDatabase']).toHaveBeenCalledTimes(1);
  });
});
