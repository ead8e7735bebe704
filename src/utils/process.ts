/**
 * What every process entry point (the supervisor, the API, each worker) does with an error that
 * nothing caught: log it and exit 1. After an uncaught exception the process is in a state nobody
 * planned for (Node.js docs: Process > Event 'uncaughtException' > "Warning: Using
 * 'uncaughtException' correctly"), and an unhandled rejection is the same bug one tick later, so
 * neither is survived: the supervisor restarts a child that exits non-zero, and the platform
 * restarts the supervisor.
 *
 * Errors a request or a turn can recover from are handled where they happen (the Express error
 * handler, the workers' loops); this is the backstop behind them.
 */
import { logger, type Logger } from './logger';

export type FatalEvent = 'unhandledRejection' | 'uncaughtException';

export interface FatalErrorOptions {
  /** Names the process on the log line: `supervisor`, `api`, `worker:message`, … */
  processName: string;
  /** Runs, synchronously, after the log line and before the exit: the supervisor stops its children here. */
  beforeExit?: () => void;
  /** For tests. */
  log?: Logger;
  /** For tests; default `process.exit`. */
  exit?: (code: number) => void;
}

/** Logs `error` at fatal (pino serialises `err`: type, message, stack, cause) and exits 1. */
export function exitOnFatalError(event: FatalEvent, error: unknown, options: FatalErrorOptions): void {
  const log = options.log ?? logger;
  log.fatal({ err: error, event, process: options.processName }, `${event}: exiting`);
  try {
    options.beforeExit?.();
  } catch (cleanupError) {
    log.error({ err: cleanupError, process: options.processName }, 'clean-up before a fatal exit failed');
  }
  if (options.exit) options.exit(1);
  else process.exit(1);
}

/**
 * Sends `unhandledRejection` and `uncaughtException` to `exitOnFatalError`. Called once, first
 * thing, by each entry point run as a process (never on import, so tests that import `start()`
 * keep Jest's own handling). Returns a function that removes both listeners.
 */
export function exitOnUnhandledErrors(options: FatalErrorOptions): () => void {
  const onRejection = (reason: unknown) => exitOnFatalError('unhandledRejection', reason, options);
  const onException = (error: Error) => exitOnFatalError('uncaughtException', error, options);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
