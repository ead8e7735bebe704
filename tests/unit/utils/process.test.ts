/**
 * The process-level backstop every entry point installs: an error nothing caught is logged
 * (serialised) and the process exits non-zero, so the supervisor starts a fresh one.
 */
import { spawnSync } from 'node:child_process';
import { createLogger } from '../../../src/utils/logger';
import { exitOnFatalError, exitOnUnhandledErrors } from '../../../src/utils/process';
import { ROOT } from '../../fixtures/processes';

/** A logger like the product's, writing parsed lines to an array. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  return { log, lines };
}

afterEach(() => jest.restoreAllMocks());

describe('exitOnFatalError', () => {
  it('when an exception reaches it, then it logs the error serialised at fatal and exits 1', () => {
    const { log, lines } = capture();
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const cause = new Error('socket hang up');
    exitOnFatalError('uncaughtException', new Error('boom', { cause }), { processName: 'api', log });
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'fatal', event: 'uncaughtException', process: 'api', msg: 'uncaughtException: exiting' });
    // pino's serialiser keeps the type and stack, and folds the cause into the message.
    expect(lines[0]!.err).toMatchObject({ type: 'Error', message: 'boom: socket hang up', stack: expect.stringContaining('Error: boom') });
  });

  it('when a rejection carries no Error, then the reason is still logged and it exits 1', () => {
    const { log, lines } = capture();
    const exit = jest.fn();
    exitOnFatalError('unhandledRejection', 'just a string', { processName: 'worker:message', log, exit });
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines[0]).toMatchObject({ level: 'fatal', event: 'unhandledRejection', err: 'just a string' });
  });

  it('when it has a clean-up, then that runs after the log line and before the exit, and its own failure does not stop the exit', () => {
    const { log, lines } = capture();
    const order: string[] = [];
    const exit = jest.fn(() => order.push('exit'));
    exitOnFatalError('uncaughtException', new Error('boom'), {
      processName: 'supervisor',
      log,
      exit,
      beforeExit: () => {
        order.push(`clean-up after ${lines.length} line`);
        throw new Error('child already gone');
      },
    });
    expect(order).toEqual(['clean-up after 1 line', 'exit']);
    expect(exit).toHaveBeenCalledWith(1);
    expect(lines[1]).toMatchObject({ level: 'error', msg: 'clean-up before a fatal exit failed', err: { message: 'child already gone' } });
  });
});

describe('exitOnUnhandledErrors', () => {
  it('when installed, then both process events reach the handler; when removed, then they are gone', () => {
    const { log, lines } = capture();
    const exit = jest.fn();
    const before = { rejection: process.listenerCount('unhandledRejection'), exception: process.listenerCount('uncaughtException') };
    const remove = exitOnUnhandledErrors({ processName: 'api', log, exit });
    try {
      const onRejection = process.listeners('unhandledRejection').at(-1)!;
      const onException = process.listeners('uncaughtException').at(-1)!;
      onRejection(new Error('rejected'), Promise.resolve());
      onException(new Error('thrown'), 'uncaughtException');
      expect(lines.map((line) => [line.event, (line.err as { message: string }).message])).toEqual([
        ['unhandledRejection', 'rejected'],
        ['uncaughtException', 'thrown'],
      ]);
      expect(exit).toHaveBeenCalledTimes(2);
      expect(exit).toHaveBeenCalledWith(1);
    } finally {
      remove();
    }
    expect(process.listenerCount('unhandledRejection')).toBe(before.rejection);
    expect(process.listenerCount('uncaughtException')).toBe(before.exception);
  });

  it('when a real process leaves a rejection unhandled, then it logs it at fatal and exits 1 instead of carrying on', () => {
    const script = `
      const { exitOnUnhandledErrors } = require('./src/utils/process.ts');
      exitOnUnhandledErrors({ processName: 'probe' });
      Promise.reject(new Error('nobody caught me'));
      setTimeout(() => console.log('still alive'), 5000);
    `;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(1);
    expect(run.stdout).not.toContain('still alive');
    const fatal = run.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.level === 'fatal');
    expect(fatal).toMatchObject({ event: 'unhandledRejection', process: 'probe', err: { message: 'nobody caught me' } });
  });
});
