/**
 * `npm run start:worker -- <kind>`: one worker process. The supervisor starts each worker
 * this way, with its kind on the command line so `ps` shows which is which.
 */
import { WORKER_KINDS, isWorkerKind } from '../src/workers/kinds';
import { logger } from '../src/utils/logger';
import { config } from '../src/config';
import { exitOnUnhandledErrors } from '../src/utils/process';
import { serveLiveness } from '../src/workers/heartbeat';

const kind = process.argv[2] ?? '';
const known = ['message', 'extraction', 'events'];

exitOnUnhandledErrors({ processName: `worker:${kind}` });

async function main(): Promise<void> {
  if (!isWorkerKind(kind)) {
    process.stderr.write(known.includes(kind) ? `worker ${kind}: not built yet\n` : `usage: worker-start <${known.join('|')}>\n`);
    process.exit(1);
  }
  const worker = await WORKER_KINDS[kind]!.create();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ kind, signal }, 'worker stopping');
    const hardStop = setTimeout(() => {
      logger.warn({ kind }, 'worker did not drain in time');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    hardStop.unref();
    worker.close().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error, kind }, 'worker close failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  await worker.start();
  // Never closed: a draining worker is still alive, and its exit ends the server with it.
  if (config.WORKER_HEALTH_PORT !== undefined) await serveLiveness(config.WORKER_HEALTH_PORT);
  logger.info({ kind, health_port: config.WORKER_HEALTH_PORT }, 'worker started');
}

main().catch((error) => {
  logger.fatal({ err: error, kind }, 'worker failed to start');
  process.exit(1);
});
