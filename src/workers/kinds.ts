/**
 * The table of contents of the background workers: each kind the supervisor can run, with
 * how many processes of it `npm start` starts. A kind is listed once it is built.
 */
import { config } from '../config';

export interface WorkerProcess {
  /** Starts consuming; resolves once the worker is running. */
  start(): Promise<void>;
  /** Idempotent: stops intake, drains what is in flight, closes connections. */
  close(): Promise<void>;
}

export interface WorkerKind {
  /** How many processes of this kind the supervisor keeps alive. */
  processes: number;
  create(): Promise<WorkerProcess>;
}

export const WORKER_KINDS: Record<string, WorkerKind> = {
  message: {
    processes: config.MESSAGE_WORKERS,
    // Imported on demand: the supervisor reads this table without loading every worker's code.
    create: async () => new (await import('./messageWorker')).MessageWorker(),
  },
  extraction: {
    processes: config.EXTRACTION_WORKERS,
    create: async () => new (await import('./extractionWorker')).ExtractionWorker(),
  },
  events: {
    processes: config.EVENT_WORKERS,
    create: async () => new (await import('./eventWorker')).EventWorker(),
  },
};

export const isWorkerKind = (name: string): boolean => Object.hasOwn(WORKER_KINDS, name);
