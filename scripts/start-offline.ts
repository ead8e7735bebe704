/**
 * `npm run start:offline`: `npm start`'s supervisor (API and workers, as OS processes) against
 * the local stand-ins for OpenAI and Meta's Graph API that the tests and `npm run demo` use, so
 * a newcomer sees a message `answered`, its reply `sent` and a charge in the ledger with no
 * OpenAI or Meta account. The stand-ins listen on 127.0.0.1, live in this process, and stop
 * with it; the product uses its usual database, Redis and PORT (development defaults).
 *
 * SIGTERM or SIGINT (Ctrl-C) stops the supervisor, which drains its children, then the
 * stand-ins; this process exits with the supervisor's code.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startOpenAIStandin } from '../tests/fixtures/standins/openaiStandin';
import { startGraphStandin } from '../tests/fixtures/standins/graphStandin';
import { ROOT } from '../tests/fixtures/processes';

/** The bearer key the OpenAI stand-in accepts; anything works as long as both sides agree. */
const OFFLINE_OPENAI_KEY = 'offline';

const say = (line: string) => process.stderr.write(`start:offline: ${line}\n`);

async function main(): Promise<void> {
  const openai = await startOpenAIStandin({ apiKey: OFFLINE_OPENAI_KEY });
  const graph = await startGraphStandin();
  say(`OpenAI stand-in at ${openai.url}, Graph API stand-in at ${graph.url} (replies echo the customer; sends are accepted, not delivered)`);
  // Registering a number verifies its token with Graph: the stand-in vouches for its own tokens only.
  say('register numbers with access tokens the stand-in accepts for that account alone: EAAG-standin.<phone_number_id>.<anything> (WhatsApp), IGAA-standin.<account id>.<anything> (Instagram)');

  const supervisor = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'workerManager.ts')], {
    cwd: ROOT,
    stdio: 'inherit',
    env: {
      ...process.env,
      OPENAI_API_KEY: OFFLINE_OPENAI_KEY,
      OPENAI_BASE_URL: openai.url,
      META_GRAPH_API_URL: graph.url,
      INSTAGRAM_GRAPH_API_URL: graph.url,
    },
  });
  say(`supervisor pid ${supervisor.pid}; stop with Ctrl-C or kill -TERM ${process.pid}`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping the product, then the stand-ins`);
    // A terminal's Ctrl-C reaches the supervisor directly too; a second signal is harmless to it.
    if (supervisor.exitCode === null && supervisor.signalCode === null) supervisor.kill('SIGTERM');
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const code = await new Promise<number>((resolve) =>
    supervisor.once('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0))),
  );
  await Promise.all([openai.close(), graph.close()]);
  say(`stopped (supervisor exit ${code})`);
  process.exit(code);
}

main().catch((error: Error) => {
  say(`failed: ${error.stack ?? error.message}`);
  process.exit(1);
});
