/**
 * The API process: `start()` listens, `stop()` drains in-flight requests and closes pools
 * within SHUTDOWN_TIMEOUT_MS. Run directly, it also handles SIGTERM/SIGINT.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { config } from './config';
import { createApp } from './app';
import { closeDatabase } from './utils/database';
import { closeRedis } from './utils/redis';
import { logger } from './utils/logger';
import { exitOnUnhandledErrors } from './utils/process';

let server: Server | undefined;
let stopping: Promise<void> | undefined;

export async function start(port = config.PORT): Promise<{ server: Server; port: number }> {
  const app = createApp();
  const listening = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, '0.0.0.0', (error?: Error) => (error ? reject(error) : resolve(s)));
  });
  server = listening;
  // Keep-alive sockets would otherwise hold `close()` open until they time out.
  listening.keepAliveTimeout = 5_000;
  const actualPort = (listening.address() as AddressInfo).port;
  logger.info({ port: actualPort }, 'API listening');
  return { server: listening, port: actualPort };
}

/** Idempotent: a second SIGTERM waits for the first shutdown instead of starting another. */
export function stop(timeoutMs = config.SHUTDOWN_TIMEOUT_MS): Promise<void> {
  stopping ??= (async () => {
    const current = server;
    server = undefined;
    if (current) {
      const closed = new Promise<void>((resolve) => current.close(() => resolve()));
      current.closeIdleConnections();
      const timer = setTimeout(() => {
        logger.warn('shutdown timeout: closing remaining connections');
        current.closeAllConnections();
      }, timeoutMs);
      await closed;
      clearTimeout(timer);
    }
    await Promise.allSettled([closeDatabase(), closeRedis()]);
    logger.info('API stopped');
  })();
  return stopping;
}

if (require.main === module) {
  exitOnUnhandledErrors({ processName: 'api' });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'shutting down');
      stop().then(
        () => process.exit(0),
        (error) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
  start().catch((error) => {
    logger.fatal({ err: error }, 'API failed to start');
    process.exit(1);
  });
}
