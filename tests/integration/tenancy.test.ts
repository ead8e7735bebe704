/**
 * Tenants are walled off (CONTRACT §3 Auth, §4.5), checked route by route from the API's own
 * /openapi.json rather than from a hand-kept list: every operation the document describes must
 * appear in ROUTES below, so a new route cannot land without saying which key it takes, which
 * resource each path parameter names and what a valid body looks like, and then being walked
 * here with another tenant's key.
 */
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../src/app';
import { db } from '../../src/utils/database';
import { encodeCursor } from '../../src/utils/pagination';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { ADMIN_AUTH } from '../fixtures/tenants';
import { createTestConversation, createTestExtraction, insertTestMessages } from '../fixtures/conversations';
import { standinAccessToken } from '../fixtures/standins/graphStandin';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
type Auth = { Authorization: string };

const tag = () => randomBytes(5).toString('hex');

/** One tenant and a full set of its resources: what a path parameter or a body can name. */
interface World {
  label: string;
  userId: string;
  name: string;
  email: string;
  auth: Auth;
  apiKeyId: string;
  agentId: string;
  phoneNumberId: string;
  conversationId: string;
  messageIds: string[];
  extractionId: string;
  ledgerEntryIds: string[];
}

/** The kinds of resource a path parameter can name; each maps to one id of a World. */
const RESOURCE = {
  user: (w: World) => w.userId,
  apiKey: (w: World) => w.apiKeyId,
  agent: (w: World) => w.agentId,
  phoneNumber: (w: World) => w.phoneNumberId,
  conversation: (w: World) => w.conversationId,
} satisfies Record<string, (world: World) => string>;
type ResourceKind = keyof typeof RESOURCE;

interface RouteCase {
  /** The key the route takes. */
  auth: 'admin' | 'tenant';
  /** The resource kind each `{param}` of the path names. */
  params?: Record<string, ResourceKind>;
  /** A minimal valid body, built from the caller's own resources (so only the path can be foreign). */
  body?: (own: World) => object;
}

/**
 * Every operation of /openapi.json, keyed `METHOD /path`. Adding a route? Add it here: the test
 * "when the document is read, then ROUTES covers exactly its operations" fails until you do.
 */
const ROUTES: Record<string, RouteCase> = {
  'POST /v1/users': { auth: 'admin', body: () => ({ name: 'Walker', email: `walker-${tag()}@example.com` }) },
  'GET /v1/users': { auth: 'admin' },
  'GET /v1/users/{id}': { auth: 'admin', params: { id: 'user' } },
  'POST /v1/users/{id}/api-keys': { auth: 'admin', params: { id: 'user' } },
  'DELETE /v1/users/{id}/api-keys/{keyId}': { auth: 'admin', params: { id: 'user', keyId: 'apiKey' } },
  'POST /v1/users/{id}/credits': { auth: 'admin', params: { id: 'user' }, body: () => ({ amount: 5, reason: 'walk' }) },

  'GET /v1/me': { auth: 'tenant' },
  'GET /v1/credits/ledger': { auth: 'tenant' },

  'POST /v1/phone-numbers': {
    auth: 'tenant',
    body: () => {
      const externalId = `walk-${tag()}`;
      return { channel: 'whatsapp', external_id: externalId, access_token: standinAccessToken('whatsapp', externalId) };
    },
  },
  'GET /v1/phone-numbers': { auth: 'tenant' },
  'GET /v1/phone-numbers/{id}': { auth: 'tenant', params: { id: 'phoneNumber' } },
  'PATCH /v1/phone-numbers/{id}': { auth: 'tenant', params: { id: 'phoneNumber' }, body: () => ({ display_name: 'Renamed' }) },
  'DELETE /v1/phone-numbers/{id}': { auth: 'tenant', params: { id: 'phoneNumber' } },
  'PUT /v1/phone-numbers/{id}/agent': { auth: 'tenant', params: { id: 'phoneNumber' }, body: (own) => ({ agent_id: own.agentId }) },
  'DELETE /v1/phone-numbers/{id}/agent': { auth: 'tenant', params: { id: 'phoneNumber' } },

  'POST /v1/agents': { auth: 'tenant', body: () => ({ name: 'Walker', system_prompt: 'Be brief.' }) },
  'GET /v1/agents': { auth: 'tenant' },
  'GET /v1/agents/{id}': { auth: 'tenant', params: { id: 'agent' } },
  'PATCH /v1/agents/{id}': { auth: 'tenant', params: { id: 'agent' }, body: () => ({ temperature: 0.1 }) },
  'POST /v1/agents/{id}/archive': { auth: 'tenant', params: { id: 'agent' } },

  'GET /v1/conversations': { auth: 'tenant' },
  'GET /v1/conversations/{id}': { auth: 'tenant', params: { id: 'conversation' } },
  'GET /v1/conversations/{id}/messages': { auth: 'tenant', params: { id: 'conversation' } },
  'POST /v1/conversations/{id}/messages': { auth: 'tenant', params: { id: 'conversation' }, body: () => ({ text: 'A human here' }) },
  'POST /v1/conversations/{id}/template': { auth: 'tenant', params: { id: 'conversation' }, body: () => ({ name: 'order_update', language: 'en_US' }) },
  'POST /v1/conversations/{id}/pause': { auth: 'tenant', params: { id: 'conversation' } },
  'POST /v1/conversations/{id}/resume': { auth: 'tenant', params: { id: 'conversation' } },

  'GET /v1/extractions': { auth: 'tenant' },
  'GET /v1/conversations/{id}/extraction': { auth: 'tenant', params: { id: 'conversation' } },
  'POST /v1/conversations/{id}/extract': { auth: 'tenant', params: { id: 'conversation' } },
};

interface Operation {
  key: string;
  method: Method;
  path: string;
  pathParams: string[];
  hasRequestBody: boolean;
  successStatuses: number[];
  route: RouteCase;
}

/** The tables that hold a tenant's data; each row names its tenant in `user_id`. */
const TENANT_TABLES = ['api_keys', 'agents', 'phone_numbers', 'conversations', 'messages', 'extractions', 'credit_ledger'];

describe('tenant walls, walked route by route from /openapi.json', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  // Test-only: the document is untyped JSON, read the way any client would.
  let document: any;
  let operations: Operation[];
  let owner: World;
  let intruder: World;

  const call = (method: Method, path: string, headers: Record<string, string>, body?: object) => {
    const req = request(app)[method](path).set(headers);
    return body === undefined ? req : req.send(body);
  };

  const fill = (operation: Operation, world: World) =>
    operation.path.replace(/\{([A-Za-z_]+)\}/g, (_match, name: string) => {
      const kind = operation.route.params?.[name];
      if (!kind) throw new Error(`${operation.key}: ROUTES names no resource for {${name}}`);
      return RESOURCE[kind](world);
    });

  /** A tenant made the way an operator makes one (the admin API), then given one of everything. */
  async function createWorld(label: string): Promise<World> {
    const name = `Tenant ${label} ${tag()}`;
    const email = `tenant-${tag()}@example.com`;
    const created = await request(app).post('/v1/users').set(ADMIN_AUTH).send({ name, email, credits: 1000 });
    expect(created.status).toBe(201);
    const userId: string = created.body.user.id;
    const auth = { Authorization: `Bearer ${created.body.api_key}` };

    const agent = await request(app).post('/v1/agents').set(auth).send({ name: `Agent ${label}`, system_prompt: 'Sell shoes.' });
    expect(agent.status).toBe(201);
    const externalId = `tenancy-${tag()}`;
    const number = await request(app)
      .post('/v1/phone-numbers')
      .set(auth)
      .send({ channel: 'whatsapp', external_id: externalId, display_name: `Line ${label}`, access_token: standinAccessToken('whatsapp', externalId) });
    expect(number.status).toBe(201);
    const linked = await request(app).put(`/v1/phone-numbers/${number.body.id}/agent`).set(auth).send({ agent_id: agent.body.id });
    expect(linked.status).toBe(200);

    const conversation = await createTestConversation(userId, {
      phoneNumber: { id: number.body.id, channel: 'whatsapp', externalId, agentId: agent.body.id },
      customerName: `Customer of ${label}`,
    });
    const messages = await insertTestMessages(userId, conversation.id, [
      { text: `Hello from ${label}'s customer` },
      { direction: 'outbound', text: `Hello from ${label}'s agent`, externalId: `wamid.${tag()}` },
    ]);
    const extraction = await createTestExtraction(userId, conversation.id, { agentId: agent.body.id, upToSequenceNo: 2 });
    // A reply charge naming the outbound message, as the message worker books it.
    await db.query(
      `INSERT INTO credit_ledger (user_id, amount, reason, message_id, conversation_id, tokens) VALUES ($1, -42, 'reply', $2, $3, 42)`,
      [userId, messages[1]!.id, conversation.id],
    );
    const ledger = await db.query<{ id: string }>(`SELECT id FROM credit_ledger WHERE user_id = $1`, [userId]);

    return {
      label,
      userId,
      name,
      email,
      auth,
      apiKeyId: created.body.api_key_id,
      agentId: agent.body.id,
      phoneNumberId: number.body.id,
      conversationId: conversation.id,
      messageIds: messages.map((m) => m.id),
      extractionId: extraction.id,
      ledgerEntryIds: ledger.rows.map((r) => r.id),
    };
  }

  const idsOf = (world: World): string[] => [
    world.userId,
    world.apiKeyId,
    world.agentId,
    world.phoneNumberId,
    world.conversationId,
    world.extractionId,
    ...world.messageIds,
    ...world.ledgerEntryIds,
  ];

  /** Everything the database holds for a tenant, row by row, to compare before and after. */
  async function snapshot(userId: string): Promise<Record<string, unknown[]>> {
    const tables: Record<string, unknown[]> = {};
    tables.users = (await db.query(`SELECT * FROM users WHERE id = $1`, [userId])).rows;
    for (const table of TENANT_TABLES) {
      tables[table] = (await db.query(`SELECT * FROM ${table} WHERE user_id = $1 ORDER BY id`, [userId])).rows;
    }
    return tables;
  }

  beforeAll(async () => {
    const res = await request(app).get('/openapi.json');
    expect(res.status).toBe(200);
    document = res.body;
    operations = [];
    for (const [path, item] of Object.entries<Record<string, any>>(document.paths)) {
      // Meta's webhook and the operations routes take no key and hold no tenant's data.
      if (!path.startsWith('/v1/')) continue;
      for (const [method, op] of Object.entries<any>(item)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        const key = `${method.toUpperCase()} ${path}`;
        operations.push({
          key,
          method: method as Method,
          path,
          pathParams: [...path.matchAll(/\{([A-Za-z_]+)\}/g)].map((m) => m[1]!),
          hasRequestBody: op.requestBody !== undefined,
          successStatuses: Object.keys(op.responses ?? {})
            .map(Number)
            .filter((status) => status >= 200 && status < 300),
          // Filled for every key by the coverage test; an uncovered one fails there first.
          route: ROUTES[key] ?? { auth: 'tenant' },
        });
      }
    }
    owner = await createWorld('A');
    intruder = await createWorld('B');
  });

  const tenantOperationsWithParams = () => operations.filter((op) => op.route.auth === 'tenant' && op.pathParams.length > 0);

  describe('the route table', () => {
    it('when the document is read, then ROUTES covers exactly its operations', () => {
      const documented = operations.map((op) => op.key).sort();
      expect(documented.length).toBeGreaterThan(20);
      // A documented route missing from ROUTES shows up on the left, a stale entry on the right.
      expect(documented).toEqual(Object.keys(ROUTES).sort());
    });

    it('when a route has path parameters or a request body, then ROUTES says what to put in them', () => {
      for (const op of operations) {
        const params = Object.keys(op.route.params ?? {}).sort();
        expect({ route: op.key, params }).toEqual({ route: op.key, params: [...op.pathParams].sort() });
        expect({ route: op.key, body: op.route.body !== undefined }).toEqual({ route: op.key, body: op.hasRequestBody });
      }
    });

    it('when the owner walks every tenant route on its own fresh resources, then each succeeds (so the 404s below are about ownership)', async () => {
      // Fresh resources per route: archiving, deleting or unlinking must not spoil the next call.
      for (const op of tenantOperationsWithParams()) {
        const world = await createWorld(`Control ${op.key}`);
        const res = await call(op.method, fill(op, world), world.auth, op.route.body?.(world));
        expect({ route: op.key, status: res.status, error: res.body?.error }).toEqual({
          route: op.key,
          status: op.successStatuses[0],
          error: undefined,
        });
      }
    });
  });

  describe("another tenant's resources", () => {
    it("when tenant B names tenant A's resources on every tenant route, then each answers 404 not_found in the contract shape", async () => {
      const before = await snapshot(owner.userId);
      const ownerIds = idsOf(owner);
      const walked = tenantOperationsWithParams();
      expect(walked.length).toBeGreaterThan(10);

      for (const op of walked) {
        const requestId = `tenancy-${tag()}`;
        const res = await call(op.method, fill(op, owner), { ...intruder.auth, 'X-Request-Id': requestId }, op.route.body?.(intruder));
        expect({ route: op.key, status: res.status, body: res.body }).toEqual({
          route: op.key,
          status: 404,
          body: { error: { code: 'not_found', message: expect.any(String), request_id: requestId } },
        });
        // The refusal says nothing that names A's resources.
        const text = JSON.stringify(res.body);
        for (const id of ownerIds) expect({ route: op.key, leaks: text.includes(id) }).toEqual({ route: op.key, leaks: false });
      }

      // Not one row of A's changed: no archive, link, delete, pause, message, extraction request or charge.
      expect(await snapshot(owner.userId)).toEqual(before);
    });

    it("when tenant B's walk is over, then A's agent, number and conversation read exactly as before through A's key", async () => {
      const agent = await request(app).get(`/v1/agents/${owner.agentId}`).set(owner.auth);
      expect(agent.body).toMatchObject({ id: owner.agentId, archived_at: null, temperature: 0.7 });
      const number = await request(app).get(`/v1/phone-numbers/${owner.phoneNumberId}`).set(owner.auth);
      expect(number.body).toMatchObject({ id: owner.phoneNumberId, agent_id: owner.agentId, display_name: 'Line A' });
      const conversation = await request(app).get(`/v1/conversations/${owner.conversationId}`).set(owner.auth);
      expect(conversation.body).toMatchObject({ id: owner.conversationId, is_active: true, bot_paused: false });
      const messages = await request(app).get(`/v1/conversations/${owner.conversationId}/messages`).set(owner.auth);
      expect(messages.body.data.map((m: { id: string }) => m.id)).toEqual(owner.messageIds);
      const { rows } = await db.query(`SELECT extraction_requested_at FROM conversations WHERE id = $1`, [owner.conversationId]);
      expect(rows).toEqual([{ extraction_requested_at: null }]);
    });

    it("when tenant B links its own number to A's agent, then 404 and B's number stays as it was", async () => {
      const res = await request(app)
        .put(`/v1/phone-numbers/${intruder.phoneNumberId}/agent`)
        .set(intruder.auth)
        .send({ agent_id: owner.agentId });
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
      const number = await request(app).get(`/v1/phone-numbers/${intruder.phoneNumberId}`).set(intruder.auth);
      expect(number.body.agent_id).toBe(intruder.agentId);
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM phone_numbers WHERE agent_id = $1 AND user_id <> $2`, [
        owner.agentId,
        owner.userId,
      ]);
      expect(rows).toEqual([{ n: 0 }]);
    });

    it("when tenant B registers A's account id, with a token Graph refuses or even one it accepts, then 422 or 409 without saying whose it is", async () => {
      const { rows } = await db.query<{ external_id: string }>(`SELECT external_id FROM phone_numbers WHERE id = $1`, [owner.phoneNumberId]);
      const externalId = rows[0]!.external_id;
      for (const [token, status, code] of [
        ['mine now', 422, 'account_verification_failed'],
        [standinAccessToken('whatsapp', externalId), 409, 'conflict'],
      ] as const) {
        const res = await request(app).post('/v1/phone-numbers').set(intruder.auth).send({ channel: 'whatsapp', external_id: externalId, access_token: token });
        expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
        for (const id of idsOf(owner)) expect(JSON.stringify(res.body)).not.toContain(id);
        expect(JSON.stringify(res.body)).not.toContain(owner.name);
      }
    });
  });

  describe('lists', () => {
    const lists = [
      '/v1/agents',
      '/v1/agents?include_archived=true',
      '/v1/phone-numbers',
      '/v1/conversations',
      '/v1/extractions',
      '/v1/credits/ledger',
    ];

    it("when tenant B lists anything, then only B's own rows come back and none of A's ids appear", async () => {
      for (const path of lists) {
        const res = await request(app).get(path).set(intruder.auth);
        expect({ path, status: res.status }).toEqual({ path, status: 200 });
        expect(res.body.data.length).toBeGreaterThan(0);
        const text = JSON.stringify(res.body);
        for (const id of idsOf(owner)) expect({ path, leaks: text.includes(id) }).toEqual({ path, leaks: false });
      }
      const ids = async (path: string) => (await request(app).get(path).set(intruder.auth)).body.data.map((row: { id: string }) => row.id);
      expect(await ids('/v1/agents')).toContain(intruder.agentId);
      expect(await ids('/v1/phone-numbers')).toContain(intruder.phoneNumberId);
      expect(await ids('/v1/conversations')).toContain(intruder.conversationId);
      expect(await ids('/v1/extractions')).toEqual([intruder.extractionId]);
      expect((await ids('/v1/credits/ledger')).sort()).toEqual([...intruder.ledgerEntryIds].sort());
    });

    it("when tenant B filters a list by A's number or agent, then the page is empty", async () => {
      const filtered = [
        `/v1/conversations?phone_number_id=${owner.phoneNumberId}`,
        `/v1/conversations?agent_id=${owner.agentId}`,
        `/v1/extractions?phone_number_id=${owner.phoneNumberId}`,
      ];
      for (const path of filtered) {
        const res = await request(app).get(path).set(intruder.auth);
        expect({ path, status: res.status, body: res.body }).toEqual({ path, status: 200, body: { data: [], next_cursor: null } });
      }
    });

    it("when tenant B pages from a cursor that names A's row, then the page is empty, not A's neighbours", async () => {
      const cursors = [
        ['/v1/agents', owner.agentId],
        ['/v1/phone-numbers', owner.phoneNumberId],
        ['/v1/conversations', owner.conversationId],
        ['/v1/extractions', owner.extractionId],
        ['/v1/credits/ledger', owner.ledgerEntryIds[0]!],
      ] as const;
      for (const [path, id] of cursors) {
        const res = await request(app).get(`${path}?cursor=${encodeCursor(id)}`).set(intruder.auth);
        expect({ path, status: res.status, body: res.body }).toEqual({ path, status: 200, body: { data: [], next_cursor: null } });
      }
    });

    it('when tenant B asks /v1/me, then it sees itself', async () => {
      const res = await request(app).get('/v1/me').set(intruder.auth);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: intruder.userId, name: intruder.name, email: intruder.email, credit_balance: 958, credits_held: 0 });
    });
  });

  describe('keys', () => {
    it('when no key is sent, then every route of the document answers 401 unauthorized', async () => {
      for (const op of operations) {
        const res = await call(op.method, fill(op, owner), {}, op.route.body?.(owner));
        expect({ route: op.key, status: res.status, code: res.body.error?.code }).toEqual({ route: op.key, status: 401, code: 'unauthorized' });
      }
    });

    it('when an unknown key is sent, then every route of the document answers 401 unauthorized', async () => {
      for (const op of operations) {
        const res = await call(op.method, fill(op, owner), { Authorization: `Bearer mca_${tag()}` }, op.route.body?.(owner));
        expect({ route: op.key, status: res.status, code: res.body.error?.code }).toEqual({ route: op.key, status: 401, code: 'unauthorized' });
      }
    });

    it('when a tenant key calls an admin route, even about its own tenant, then 403 forbidden and nothing changes', async () => {
      const admin = operations.filter((op) => op.route.auth === 'admin');
      expect(admin.length).toBeGreaterThanOrEqual(6);
      const usersBefore = (await db.query(`SELECT count(*)::int AS n FROM users`)).rows;
      const ownerBefore = await snapshot(owner.userId);
      for (const tenant of [intruder, owner]) {
        for (const op of admin) {
          const res = await call(op.method, fill(op, owner), tenant.auth, op.route.body?.(tenant));
          expect({ route: op.key, as: tenant.label, status: res.status, code: res.body.error?.code }).toEqual({
            route: op.key,
            as: tenant.label,
            status: 403,
            code: 'forbidden',
          });
        }
      }
      expect((await db.query(`SELECT count(*)::int AS n FROM users`)).rows).toEqual(usersBefore);
      expect(await snapshot(owner.userId)).toEqual(ownerBefore);
      // The key B tried to revoke still works.
      expect((await request(app).get('/v1/me').set(owner.auth)).status).toBe(200);
    });

    it('when the operator key calls a tenant route, then 403 forbidden', async () => {
      const tenantRoutes = operations.filter((op) => op.route.auth === 'tenant');
      expect(tenantRoutes.length).toBeGreaterThan(15);
      for (const op of tenantRoutes) {
        const res = await call(op.method, fill(op, owner), ADMIN_AUTH, op.route.body?.(owner));
        expect({ route: op.key, status: res.status, code: res.body.error?.code }).toEqual({ route: op.key, status: 403, code: 'forbidden' });
      }
    });

    it('when the document lists an operation, then it declares the key scheme its guard enforces', () => {
      for (const op of operations) {
        const security = document.paths[op.path][op.method].security;
        const scheme = op.route.auth === 'admin' ? { operatorKey: [] } : { tenantKey: [] };
        expect({ route: op.key, security }).toEqual({ route: op.key, security: [scheme] });
      }
    });
  });
});
