/**
 * `npm run demo`: the whole product, offline, for someone with Postgres and Redis and no Meta or
 * OpenAI account. It runs the REAL product (`npm start`'s supervisor, its API and its workers,
 * as OS processes) against local stand-ins for OpenAI and Meta's Graph API, sets a tenant up
 * through the REST API, plays customers with signed webhooks in Meta's exact shapes, and prints
 * what a business would see: each conversation, the credits charged and the extracted lead.
 *
 * Everything it makes is its own and goes away at the end: a fresh database
 * (`multichannel_demo_<random>`), a Redis key prefix in a logical database of its own, the
 * stand-ins and the processes. The product's logs go to a file, not to the transcript.
 *
 * `runDemo()` returns what happened as data, so a test asserts on the same run a person reads.
 */
import { isWorkerKind } from '../src/workers/kinds';
import { DEMO_REDIS_DB, WHATSAPP_NUMBER } from './demo/cast';
import { computeChecks } from './demo/checks';
import { clip, describeError, INTERRUPTED, Progress } from './demo/progress';
import { printChecks, printEpilogue, printReport } from './demo/report';
import type { DemoOptions, DemoResult } from './demo/result';
import { extractLead, openTheShop, playCustomers, readBack } from './demo/scenes';
import { collectEvents, subscribeTheBusiness, type Subscription } from './demo/events';
import { buildTheSet, killProductGroup, planStage, strikeTheSet, type SetPieces } from './demo/stage';

/**
 * The demo as a list of steps: build the set, open the shop, play the customers, extract the
 * lead, read it all back and print it; then, whatever happened, strike the set and check the run.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const { signal } = options;
  const stage = planStage();
  const progress = new Progress(log, stage.startedAt);
  const result: DemoResult = {
    ok: false,
    elapsedMs: 0,
    database: stage.database,
    redisPrefix: stage.redisPrefix,
    logFile: stage.logFile,
    extractionAvailable: isWorkerKind('extraction'),
    scenes: { whatsappPhoneNumberId: WHATSAPP_NUMBER },
    transcripts: [],
    credits: null,
    lead: { status: 'not_reached' },
    graphTextSends: 0,
    supervisorExitCode: undefined,
    checks: [],
  };
  const pieces: SetPieces = { databaseTouched: false };
  let subscription: Subscription | undefined;
  const killOnExit = () => killProductGroup(pieces.product);
  process.once('exit', killOnExit);

  log(`Multi-channel AI agent: offline demo (database ${stage.database}, Redis db ${DEMO_REDIS_DB} prefix ${stage.redisPrefix})`);
  log('');
  try {
    const set = await buildTheSet(progress, stage, pieces, signal);
    const shop = await openTheShop(progress, set.baseUrl, signal);
    subscription = await subscribeTheBusiness(progress, shop);
    const ana = await playCustomers(progress, shop, result.scenes);
    if (result.extractionAvailable) {
      result.lead = await extractLead(progress, shop, ana, options.extractionTimeoutMs ?? 25_000);
    } else {
      result.lead = { status: 'unavailable', reason: 'no `extraction` kind in src/workers/kinds.ts yet' };
      log(`    · Lead extraction skipped: the extraction worker is not available (${result.lead.reason})`);
    }
    const expectedEvents = ['message.received', 'message.answered', 'conversation.handoff', 'conversation.resumed'];
    if (result.lead.status === 'extracted') expectedEvents.push('extraction.completed');
    result.events = await collectEvents(progress, shop, subscription, expectedEvents);
    Object.assign(result, await readBack(progress, shop));
    result.graphTextSends = set.graph.texts().length;
    printReport(log, result);
  } catch (error) {
    // Whatever a Ctrl-C cut short (a sleep, a fetch), it reads as the interruption it was.
    result.error = signal?.aborted ? INTERRUPTED : describeError(error);
    log('');
    log(`Demo stopped: ${result.error}`);
    if (pieces.product && pieces.product.troubles.length > 0) {
      log('  The product said, last:');
      for (const line of pieces.product.troubles) log(`    ${clip(line, 160)}`);
    }
    if (pieces.product) log(`  Full product logs: ${stage.logFile}`);
  } finally {
    await subscription?.receiver.close();
    log('');
    log('Cleaning up');
    const cleanedUp = await strikeTheSet(progress, stage, pieces, result, log);
    process.removeListener('exit', killOnExit);
    result.checks = computeChecks(result);
    result.elapsedMs = Date.now() - stage.startedAt;
    result.ok = result.error === undefined && cleanedUp && result.checks.every((check) => check.passed);
    printChecks(log, result);
    printEpilogue(log, result);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Command line

if (require.main === module) {
  const controller = new AbortController();
  let interruptedAt = 0;
  process.on('SIGINT', () => {
    if (interruptedAt === 0) {
      interruptedAt = Date.now();
      process.stdout.write('\nInterrupted: cleaning up (Ctrl-C again to quit at once)…\n');
      controller.abort();
      // npm and tsx may relay the terminal's Ctrl-C a moment after it arrived here directly:
      // only a press well after the first one means "quit now".
    } else if (Date.now() - interruptedAt > 1_000) process.exit(130);
  });
  runDemo({ signal: controller.signal }).then(
    (result) => {
      process.exitCode = result.ok ? 0 : 1;
    },
    (error: Error) => {
      process.stderr.write(`demo: ${error.stack ?? error.message}\n`);
      process.exitCode = 1;
    },
  );
}
