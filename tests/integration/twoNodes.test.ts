/**
 * Two complete instances, as two machines would run them: two `npm start` supervisors (each an
 * API and its workers, compiled) on different ports, sharing one Postgres database, one Redis
 * key prefix, and the OpenAI and Graph stand-ins. Customers' webhooks go through both APIs, and
 * one message worker of each node is SIGKILLed while every conversation's turn is in flight
 * (guarantee 16: any number of processes on any number of machines keep guarantees 1–3).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { config } from '../../src/config';
import { closeDatabase, db } from '../../src/utils/database';
import { closeRedis, getRedis } from '../../src/utils/redis';
import { CONSUMER_GROUPS, messageStream } from '../../src/utils/queue';
import { postSignedWebhook, whatsappTextWebhook } from '../../scripts/simulate';
import { freePort, productEnv, ROOT, runNpmScript, type RunningProcess } from '../fixtures/processes';
import { eventually, messagesOf } from '../fixtures/pipeline';
import { standinAccessToken, startGraphStandin, type GraphStandin } from '../fixtures/standins/graphStandin';
import { startOpenAIStandin, type OpenAIStandin } from '../fixtures/standins/openaiStandin';
import { clearTestRedis, dropDatabase, testDatabaseName } from '../fixtures/testDatabase';

const CUSTOMERS = 8;
const MESSAGES_EACH = 3;
const PHONE_NUMBER_ID = '1555000888';
/** Long enough that every turn of the second round is inside its model call when the kill comes. */
const SLOW_MODEL_MS = 3_000;

interface Node {
  name: string;
  url: string;
  npm: RunningProcess;
}

let openai: OpenAIStandin;
let graph: GraphStandin;
const nodes: Node[] = [];

const customer = (i: number) => `1555123000${i}`;
const text = (i: number, k: number) => `message ${k} of customer ${i}`;
const logged = (node: Node, msg: string) => node.npm.lines.filter((line) => line.msg === msg);

async function startNode(name: string): Promise<Node> {
  const port = await freePort();
  const npm = runNpmScript('start', [], {
    ...productEnv(port),
    OPENAI_BASE_URL: openai.url,
    META_GRAPH_API_URL: graph.url,
    INSTAGRAM_GRAPH_API_URL: graph.url,
    MESSAGE_WORKERS: '2',
    EXTRACTION_WORKERS: '1',
    // Short, so a killed worker's conversations move on within the test's time.
    WORKER_LEASE_MS: '2000',
    SWEEPER_INTERVAL_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '5000',
  });
  return { name, url: `http://127.0.0.1:${port}`, npm };
}

async function call<T>(node: Node, method: string, route: string, key: string, body?: unknown): Promise<T> {
  const response = await fetch(`${node.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status >= 300) throw new Error(`${method} ${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Customer i writes message k through `node`'s webhook; Meta's 200 must come back. */
async function write(node: Node, i: number, k: number): Promise<void> {
  const body = whatsappTextWebhook({ phoneNumberId: PHONE_NUMBER_ID, from: customer(i), text: text(i, k) });
  const response = await postSignedWebhook(node.url, body, config.META_APP_SECRET);
  expect(response.status).toBe(200);
}

const inboundStatuses = async () =>
  (await db.query<{ status: string }>("SELECT status FROM messages WHERE direction = 'inbound'")).rows.map((row) => row.status);

/** Waits until each customer's messages up to `k` are answered and no reply is left to send. */
async function allAnswered(k: number, timeoutMs: number): Promise<void> {
  await eventually(
    async () => {
      const statuses = await inboundStatuses();
      const { rows } = await db.query("SELECT 1 FROM messages WHERE direction = 'outbound' AND status = 'queued'");
      return statuses.length === CUSTOMERS * k && statuses.every((status) => status === 'answered') && rows.length === 0;
    },
    timeoutMs,
    `every customer's messages up to ${k} answered`,
  );
}

beforeAll(async () => {
  // Compiled once here: two `npm start`s would otherwise both find dist/ stale and queue on the build lock.
  const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs'), '--if-stale'], { cwd: ROOT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  openai = await startOpenAIStandin();
  graph = await startGraphStandin();
}, 120_000);

afterAll(async () => {
  for (const node of nodes) node.npm.child.kill('SIGKILL');
  await Promise.all([openai?.close(), graph?.close()]);
  await closeRedis();
  await closeDatabase();
  await clearTestRedis().catch(() => undefined);
  await dropDatabase(testDatabaseName());
});

describe('two nodes sharing one Postgres and one Redis', () => {
  it('when customers write through both APIs and a message worker dies on each node mid-turn, then every message is answered exactly once, in order', async () => {
    // Both at once: their migrations race on an empty database, as two machines' would.
    nodes.push(await startNode('a'), await startNode('b'));
    for (const node of nodes) {
      await node.npm.waitFor((line) => line.msg === 'API listening', 60_000);
      await eventually(async () => logged(node, 'message worker reading').length === 2, 60_000, `node ${node.name}'s message workers`);
      await node.npm.waitFor((line) => line.msg === 'worker started' && line.kind === 'extraction', 60_000);
    }
    const [a, b] = nodes as [Node, Node];

    // The tenant is made through one node, and is the same tenant on the other.
    const { user, api_key: key } = await call<{ user: { id: string }; api_key: string }>(a, 'POST', '/v1/users', 'dev-admin-key', { name: 'Two nodes', email: 'nodes@example.com', credits: 1_000_000 });
    const agent = await call<{ id: string }>(b, 'POST', '/v1/agents', key, { name: 'Nodes', system_prompt: 'Answer.', debounce_ms: 0 });
    const number = await call<{ id: string }>(a, 'POST', '/v1/phone-numbers', key, { channel: 'whatsapp', external_id: PHONE_NUMBER_ID, access_token: standinAccessToken('whatsapp', PHONE_NUMBER_ID) });
    await call(b, 'PUT', `/v1/phone-numbers/${number.id}/agent`, key, { agent_id: agent.id });

    // Round 1: customer i writes through node i mod 2.
    await Promise.all(Array.from({ length: CUSTOMERS }, (_, i) => write(nodes[i % 2]!, i, 1)));
    await allAnswered(1, 20_000);

    // Round 2, through the other node, with a slow model: every turn is inside its model call.
    openai.setLatency(SLOW_MODEL_MS);
    await Promise.all(Array.from({ length: CUSTOMERS }, (_, i) => write(nodes[(i + 1) % 2]!, i, 2)));
    await openai.waitFor(() => openai.inFlight() === CUSTOMERS, 15_000);

    // On each node, SIGKILL the message worker holding the most unacknowledged entries.
    const [, , , consumers] = (await getRedis().xpending(messageStream(0), CONSUMER_GROUPS.messages)) as [number, string, string, [string, string][]];
    const pendingOf = (pid: number) => Number(consumers?.find(([name]) => name.endsWith(`-${pid}`))?.[1] ?? 0);
    let killedWithWork = 0;
    for (const node of nodes) {
      const pids = node.npm.lines.filter((l) => l.msg === 'child started' && String(l.child).startsWith('message-')).map((l) => l.pid as number);
      const victim = pids.sort((x, y) => pendingOf(y) - pendingOf(x))[0]!;
      if (pendingOf(victim) > 0) killedWithWork++;
      process.kill(victim, 'SIGKILL');
    }
    expect(killedWithWork).toBeGreaterThan(0);
    openai.setLatency(0);

    // Round 3 arrives while the dead workers' conversations wait out their lease.
    await Promise.all(Array.from({ length: CUSTOMERS }, (_, i) => write(nodes[i % 2]!, i, 3)));
    await allAnswered(MESSAGES_EACH, 30_000);
    for (const node of nodes) {
      expect(node.npm.lines.some((l) => l.msg === 'child exited unexpectedly; restarting' && l.signal === 'SIGKILL')).toBe(true);
    }

    // Exactly once and in order: each customer's sends echo messages 1, 2, 3, each once, in
    // that order (a reply may answer two at once); every send is one stored reply.
    for (let i = 0; i < CUSTOMERS; i++) {
      const sends = graph.texts(customer(i));
      const echoed = sends.flatMap((send) => [...(send.text ?? '').matchAll(/message (\d) of customer/g)].map((m) => Number(m[1])));
      expect({ customer: i, echoed }).toEqual({ customer: i, echoed: [1, 2, 3] });
      const replies = (await messagesOf(user.id, customer(i))).filter((m) => m.direction === 'outbound');
      expect(replies.map((m) => [m.status, m.external_id])).toEqual(sends.map((send) => ['sent', send.externalId]));
    }
    expect(await inboundStatuses()).toHaveLength(CUSTOMERS * MESSAGES_EACH);

    // Both stop cleanly, as an operator's SIGTERM to npm would stop them.
    for (const node of nodes) node.npm.child.kill('SIGTERM');
    expect(await Promise.all(nodes.map((node) => node.npm.exited))).toEqual([0, 0]);
  }, 90_000);
});
