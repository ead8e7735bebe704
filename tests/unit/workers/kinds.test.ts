/**
 * The worker table: which kinds the supervisor can run, how many of each `npm start` keeps, and
 * that a kind builds its worker only when asked (the workers' modules replaced by stand-ins, so
 * nothing connects anywhere).
 */
import { isWorkerKind, WORKER_KINDS } from '../../../src/workers/kinds';
import { MessageWorker } from '../../../src/workers/messageWorker';
import { ExtractionWorker } from '../../../src/workers/extractionWorker';
import { EventWorker } from '../../../src/workers/eventWorker';
import { config } from '../../../src/config';

jest.mock('../../../src/workers/messageWorker', () => ({ MessageWorker: jest.fn() }));
jest.mock('../../../src/workers/extractionWorker', () => ({ ExtractionWorker: jest.fn() }));
jest.mock('../../../src/workers/eventWorker', () => ({ EventWorker: jest.fn() }));

describe('WORKER_KINDS', () => {
  it('when read, then exactly the message, extraction and events kinds', () => {
    expect(Object.keys(WORKER_KINDS).sort()).toEqual(['events', 'extraction', 'message']);
  });

  it('when read, then each kind keeps as many processes as its setting says', () => {
    expect(WORKER_KINDS['message']!.processes).toBe(config.MESSAGE_WORKERS);
    expect(WORKER_KINDS['extraction']!.processes).toBe(config.EXTRACTION_WORKERS);
    expect(WORKER_KINDS['events']!.processes).toBe(config.EVENT_WORKERS);
  });

  it('when the table is only read, then no worker is built', () => {
    expect(MessageWorker).not.toHaveBeenCalled();
    expect(ExtractionWorker).not.toHaveBeenCalled();
    expect(EventWorker).not.toHaveBeenCalled();
  });

  it.each([
    ['message', MessageWorker],
    ['extraction', ExtractionWorker],
    ['events', EventWorker],
  ] as const)('when the %s kind creates a worker, then a fresh worker of its class, built with the defaults', async (kind, WorkerClass) => {
    jest.mocked(WorkerClass).mockClear();

    const first = await WORKER_KINDS[kind]!.create();
    const second = await WORKER_KINDS[kind]!.create();

    expect(first).toBeInstanceOf(WorkerClass);
    expect(second).not.toBe(first);
    expect(WorkerClass).toHaveBeenCalledTimes(2);
    expect(WorkerClass).toHaveBeenCalledWith();
  });
});

describe('isWorkerKind', () => {
  it('when the name is a listed kind, then true', () => {
    expect(isWorkerKind('message')).toBe(true);
    expect(isWorkerKind('extraction')).toBe(true);
    expect(isWorkerKind('events')).toBe(true);
  });

  it('when it is not, or is an inherited property name, then false', () => {
    expect(isWorkerKind('webhook')).toBe(false);
    expect(isWorkerKind('Message')).toBe(false);
    expect(isWorkerKind('toString')).toBe(false);
    expect(isWorkerKind('__proto__')).toBe(false);
  });
});
