/**
 * `npm run seed`: a demo tenant to try the product with: "Demo Shop" (demo@example.com) with
 * credits, an agent, and a WhatsApp number linked to it. Idempotent: each piece is looked up
 * first and made only when missing, so a second run changes nothing and says so. The tenant's
 * API key exists in plain text only when the tenant is created, so it is printed then, once.
 *
 * Runs the same service functions the API runs, against `DATABASE_URL`, after migrating it,
 * with one difference: the API asks Graph to vouch for a number's access token before storing
 * it (CONTRACT §4.10), and no Graph vouches for the demo's placeholder (its account id is the
 * shared fixtures' fabricated one), so the seed stores it unverified (`placeholderVerdict`). This
 * is the operator's own demo data, never a tenant's claim; the real token goes in through
 * `PATCH /v1/phone-numbers/:id`, which Graph verifies.
 */
import { config } from '../src/config';
import { migrate } from '../src/utils/migrator';
import { closeDatabase, db } from '../src/utils/database';
import { closeRedis } from '../src/utils/redis';
import { AppError } from '../src/utils/errors';
import * as userService from '../src/services/userService';
import * as agentService from '../src/services/agentService';
import * as phoneNumberService from '../src/services/phoneNumberService';
import type { AccountVerifier } from '../src/services/metaGraphService';
import type { Agent } from '../src/models/Agent';
import type { PhoneNumber } from '../src/models/PhoneNumber';

export const DEMO_TENANT = { name: 'Demo Shop', email: 'demo@example.com', credits: 100_000 };

export const DEMO_AGENT = {
  name: 'Demo Shop assistant',
  systemPrompt:
    'You are the friendly shop assistant of Demo Shop, a small bag and accessories store. ' +
    'Answer briefly, in the language the customer writes in. Ask for a name and an email when someone wants to order.',
  debounceMs: 1_500,
  fallbackMessage: 'Thanks for your message! A member of our team will get back to you shortly.',
};

/** The WhatsApp number of the shared Meta fixtures, so their webhooks route to the demo tenant. */
export const DEMO_WHATSAPP = {
  externalId: '109876543210123',
  displayName: 'Demo Shop WhatsApp',
  // Not a real token: sends fail with Meta's 190 until it is replaced (PATCH /v1/phone-numbers/:id).
  accessToken: 'EAAG-demo-placeholder-token',
};

/** The seed's stand-in for Graph's verdict on the placeholder token: see the file's header. */
const placeholderVerdict: AccountVerifier = async () => ({ ok: true, name: null });

export interface SeedResult {
  userId: string;
  /** The plain key, only when this run created the tenant. */
  apiKey: string | null;
  agentId: string;
  phoneNumberId: string | null;
  /** What this run wrote, one sentence each; empty when everything already existed. */
  created: string[];
  notes: string[];
}

/**
 * The tenant with the demo email, if any. No model looks tenants up by email (the API never
 * needs to), so this one read is plain SQL; `lower()` matches the unique index on `users`.
 */
async function findTenantIdByEmail(email: string): Promise<string | null> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM users WHERE lower(email) = lower($1)', [email]);
  return rows[0]?.id ?? null;
}

/** Walks every page of a cursor-paginated service listing until `match` finds something. */
async function findInPages<T>(
  list: (page: { limit: number; cursor?: string | undefined }) => Promise<{ data: T[]; next_cursor: string | null }>,
  match: (item: T) => boolean,
): Promise<T | undefined> {
  let cursor: string | undefined;
  do {
    const page = await list({ limit: 100, cursor });
    const found = page.data.find(match);
    if (found) return found;
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return undefined;
}

async function ensureTenant(result: Pick<SeedResult, 'created'>): Promise<{ userId: string; apiKey: string | null }> {
  const existing = await findTenantIdByEmail(DEMO_TENANT.email);
  if (existing) return { userId: existing, apiKey: null };
  try {
    const { user, apiKey } = await userService.createUser(DEMO_TENANT);
    result.created.push(`created tenant "${user.name}" <${user.email}> (${user.id}) with ${user.creditBalance} credits`);
    return { userId: user.id, apiKey: apiKey.apiKey };
  } catch (error) {
    // Another seed created it between our look and our insert: theirs is as good as ours.
    const raced = error instanceof AppError && error.code === 'conflict' ? await findTenantIdByEmail(DEMO_TENANT.email) : null;
    if (!raced) throw error;
    return { userId: raced, apiKey: null };
  }
}

async function ensureAgent(userId: string, result: Pick<SeedResult, 'created'>): Promise<Agent> {
  const existing = await findInPages(
    (page) => agentService.listAgents(userId, page),
    (agent) => agent.name === DEMO_AGENT.name,
  );
  if (existing) return existing;
  const agent = await agentService.createAgent(userId, DEMO_AGENT);
  result.created.push(`created agent "${agent.name}" (${agent.id}), debounce ${agent.debounceMs} ms, with a fallback message`);
  return agent;
}

async function ensureWhatsAppNumber(userId: string, result: Pick<SeedResult, 'created' | 'notes'>): Promise<PhoneNumber | null> {
  const existing = await findInPages(
    (page) => phoneNumberService.listPhoneNumbers(userId, page),
    (number) => number.channel === 'whatsapp' && number.externalId === DEMO_WHATSAPP.externalId,
  );
  if (existing) return existing;
  try {
    const number = await phoneNumberService.createPhoneNumber(userId, { channel: 'whatsapp', ...DEMO_WHATSAPP }, placeholderVerdict);
    result.created.push(`created WhatsApp number ${number.externalId} (${number.id}) with a placeholder access token, not verified with Graph`);
    return number;
  } catch (error) {
    // The account belongs to another tenant (the API's 409): leave theirs alone, say so.
    if (!(error instanceof AppError && error.code === 'conflict')) throw error;
    result.notes.push(`WhatsApp number ${DEMO_WHATSAPP.externalId} is registered to another tenant: not added to Demo Shop`);
    return null;
  }
}

/** Creates whatever of the demo tenant is missing; touches nothing that exists. */
export async function seed(): Promise<SeedResult> {
  const result: SeedResult = { userId: '', apiKey: null, agentId: '', phoneNumberId: null, created: [], notes: [] };
  const tenant = await ensureTenant(result);
  result.userId = tenant.userId;
  result.apiKey = tenant.apiKey;
  const agent = await ensureAgent(tenant.userId, result);
  result.agentId = agent.id;
  const number = await ensureWhatsAppNumber(tenant.userId, result);
  result.phoneNumberId = number?.id ?? null;
  if (number && number.agentId === null) {
    await phoneNumberService.linkAgent(tenant.userId, number.id, agent.id);
    result.created.push(`linked WhatsApp number ${number.externalId} to agent "${agent.name}"`);
  } else if (number && number.agentId !== agent.id) {
    // Someone linked another agent on purpose; relinking would archive their conversations.
    result.notes.push(`WhatsApp number ${number.externalId} is linked to another agent (${number.agentId}): left as it is`);
  }
  return result;
}

function report(result: SeedResult): string {
  const base = `http://127.0.0.1:${config.PORT}`;
  const lines: string[] = [];
  if (result.created.length === 0) {
    lines.push(`seed: the demo tenant already exists (${DEMO_TENANT.email}, user id ${result.userId}); nothing changed.`);
  } else {
    for (const item of result.created) lines.push(`seed: ${item}`);
  }
  for (const note of result.notes) lines.push(`seed: note: ${note}`);
  lines.push('');
  if (result.apiKey) {
    lines.push(`Demo Shop's API key (shown this once; it is stored only as a hash):`, '', `  ${result.apiKey}`, '');
    lines.push(`Try it:   curl -H "Authorization: Bearer ${result.apiKey}" ${base}/v1/me`);
  } else {
    lines.push(
      'Its API key was printed when the tenant was created and cannot be shown again. Mint a new one with the admin key:',
      `  curl -X POST -H "Authorization: Bearer <ADMIN_API_KEY>" ${base}/v1/users/${result.userId}/api-keys`,
      `  (ADMIN_API_KEY defaults to dev-admin-key in development)`,
    );
  }
  if (result.phoneNumberId) {
    lines.push(
      `Play a customer (with npm start running):`,
      `  npm run simulate -- --to ${DEMO_WHATSAPP.externalId} --from 15550001111 --text "Hi" --name "Ana"`,
      `The number's access token is a placeholder: replies reach Meta only after`,
      `  PATCH /v1/phone-numbers/${result.phoneNumberId} { "access_token": "<your token>" }`,
      `  (Graph must accept the token for that number: a 422 gives Graph's reason)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const migrated = await migrate(config.DATABASE_URL);
  if (migrated.created || migrated.applied.length > 0) {
    process.stdout.write(`seed: migrated ${new URL(config.DATABASE_URL).pathname.slice(1)} (${migrated.applied.length} migration(s) applied)\n`);
  }
  process.stdout.write(report(await seed()));
}

if (require.main === module) {
  main()
    .catch((error: Error) => {
      process.stderr.write(`seed: failed: ${error.message}\n`);
      process.exitCode = 1;
    })
    // The pool and the Redis connection (a new key is hinted live for the rate limiter) would
    // keep the process alive; close them whether or not the seed worked.
    .finally(() => Promise.all([closeDatabase(), closeRedis()]));
}
