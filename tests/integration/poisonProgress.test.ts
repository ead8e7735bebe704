/**
 * Only deliveries that end in a crash with no progress count toward poison: a stream entry
 * taken over from dead workers (its delivery count near MESSAGE_MAX_ATTEMPTS) whose turn
 * records progress goes back to a count of one, so the next crash does not dead-letter it.
 */
import { getRedis } from '../../src/utils/redis';
import { CONSUMER_GROUPS, messageStream, prefixedKey } from '../../src/utils/queue';
import { createBusiness, customerWrites, eventually, messagesOf, pipelineForFile } from '../fixtures/pipeline';

const pipeline = pipelineForFile();

afterEach(async () => {
  // Graph answers again first: a worker drains its in-flight send before it stops.
  pipeline().graph.reset();
  await pipeline().stopWorkers();
});

/** Delivery count of a pending entry, or undefined once it is acknowledged. */
async function deliveries(id: string): Promise<number | undefined> {
  const pending = (await getRedis().xpending(messageStream(0), CONSUMER_GROUPS.messages, '-', '+', 100)) as [string, string, number, number][];
  return pending.find(([entry]) => entry === id)?.[3];
}

describe('poison counts crashes without progress only', () => {
  it('when an entry delivered twice to workers that died is taken over and its turn records the reply, then its delivery count goes back to one', async () => {
    const { app, graph } = pipeline();
    const redis = getRedis();
    const business = await createBusiness(app);
    await redis.xgroup('CREATE', prefixedKey(redis, messageStream(0)), CONSUMER_GROUPS.messages, '$', 'MKSTREAM').catch(() => undefined);
    const customer = '15554440001';
    await customerWrites(app, business, customer, 'still here?');
    // Two workers that read it and died: delivered twice, never acknowledged.
    const read = (await redis.xreadgroup('GROUP', CONSUMER_GROUPS.messages, 'ghost-1', 'COUNT', 10, 'STREAMS', messageStream(0), '>')) as [string, [string, string[]][]][];
    const entry = read[0]![1].at(-1)![0];
    await redis.xclaim(messageStream(0), CONSUMER_GROUPS.messages, 'ghost-2', 0, entry);
    expect(await deliveries(entry)).toBe(2);
    // The send hangs, so the entry stays in flight after the reply is recorded.
    graph.setFault({ hang: true, kind: 'text' });

    await pipeline().startWorker({ leaseMs: 300, maxDeliveries: 3, sweepIntervalMs: 60_000, sendInDoubtGraceMs: 500 });
    await eventually(async () => (await messagesOf(business.tenant.userId, customer))[1]?.status === 'queued', 20_000, 'the reply recorded');
    await eventually(async () => (await deliveries(entry)) === 1, 10_000, 'the delivery count reset to one');
  }, 60_000);
});
