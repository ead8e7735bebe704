/**
 * The API's self-description (CONTRACT §3 Operations): /openapi.json is an OpenAPI 3.1
 * document holding every /v1 route the contract lists, generated from the same zod schemas that
 * validate requests, and /docs serves Swagger UI over it.
 */
import { spawnSync } from 'node:child_process';
import request from 'supertest';
import { createApp } from '../../src/app';
import { ERROR_STATUS } from '../../src/utils/errors';
import { ROOT } from '../fixtures/processes';
import { version } from '../../package.json';
import { setupTestDatabase, teardownTestDatabase } from '../fixtures/testDatabase';
import { createTestTenant, type TestTenant } from '../fixtures/tenants';

/**
 * CONTRACT §3, table by table, with the body fields each route takes (`required` / `optional`);
 * routes without a body have none. Written out from the contract on purpose, not read from the
 * code: this is what the document must promise.
 */
const CONTRACT_ROUTES: Record<string, { required: string[]; optional: string[] } | null> = {
  // Operator
  'POST /v1/users': { required: ['name', 'email'], optional: ['credits'] },
  'GET /v1/users': null,
  'GET /v1/users/{id}': null,
  'POST /v1/users/{id}/api-keys': null,
  'DELETE /v1/users/{id}/api-keys/{keyId}': null,
  'POST /v1/users/{id}/credits': { required: ['amount'], optional: ['reason'] },
  // Tenant
  'GET /v1/me': null,
  'GET /v1/credits/ledger': null,
  'POST /v1/phone-numbers': { required: ['channel', 'external_id', 'access_token'], optional: ['display_name'] },
  'GET /v1/phone-numbers': null,
  'GET /v1/phone-numbers/{id}': null,
  'PATCH /v1/phone-numbers/{id}': { required: [], optional: ['display_name', 'access_token'] },
  'DELETE /v1/phone-numbers/{id}': null,
  'PUT /v1/phone-numbers/{id}/agent': { required: ['agent_id'], optional: [] },
  'DELETE /v1/phone-numbers/{id}/agent': null,
  'POST /v1/agents': {
    required: ['name', 'system_prompt'],
    optional: ['model', 'temperature', 'max_tokens', 'history_limit', 'max_prompt_tokens', 'debounce_ms', 'lead_fields', 'fallback_message',
      'resume_after_minutes', 'handoff_keywords', 'opt_out_keywords', 'opt_in_keywords', 'opt_out_message'],
  },
  'GET /v1/agents': null,
  'GET /v1/agents/{id}': null,
  'PATCH /v1/agents/{id}': {
    required: [],
    optional: ['name', 'system_prompt', 'model', 'temperature', 'max_tokens', 'history_limit', 'max_prompt_tokens', 'debounce_ms', 'lead_fields', 'fallback_message',
      'resume_after_minutes', 'handoff_keywords', 'opt_out_keywords', 'opt_in_keywords', 'opt_out_message'],
  },
  'POST /v1/agents/{id}/archive': null,
  'GET /v1/conversations': null,
  'GET /v1/conversations/{id}': null,
  'GET /v1/conversations/{id}/messages': null,
  'POST /v1/conversations/{id}/messages': { required: ['text'], optional: [] },
  'POST /v1/conversations/{id}/template': { required: ['name', 'language'], optional: ['components'] },
  'POST /v1/conversations/{id}/pause': null,
  'POST /v1/conversations/{id}/resume': null,
  'GET /v1/extractions': null,
  'GET /v1/conversations/{id}/extraction': null,
  'POST /v1/conversations/{id}/extract': null,
  // Tenant events
  'POST /v1/webhook-endpoints': { required: ['url', 'events'], optional: [] },
  'GET /v1/webhook-endpoints': null,
  'DELETE /v1/webhook-endpoints/{id}': null,
  'GET /v1/webhook-endpoints/{id}/deliveries': null,
  'POST /v1/webhook-endpoints/{id}/deliveries/{deliveryId}/redeliver': null,
  'POST /v1/webhook-endpoints/{id}/rotate-secret': null,
};

/** Query parameters the contract names for filters and paging. */
const CONTRACT_QUERIES: Record<string, string[]> = {
  'GET /v1/users': ['limit', 'cursor'],
  'GET /v1/credits/ledger': ['limit', 'cursor'],
  'GET /v1/phone-numbers': ['limit', 'cursor'],
  'GET /v1/agents': ['limit', 'cursor', 'include_archived'],
  'GET /v1/conversations': ['limit', 'cursor', 'phone_number_id', 'agent_id', 'is_active'],
  'GET /v1/conversations/{id}/messages': ['limit', 'cursor'],
  'GET /v1/extractions': ['limit', 'cursor', 'phone_number_id', 'since'],
  'GET /v1/webhook-endpoints': ['limit', 'cursor'],
  'GET /v1/webhook-endpoints/{id}/deliveries': ['limit', 'cursor'],
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** The routes outside /v1 that CONTRACT §3 names (Meta's webhook and Operations). */
const OUTSIDE_V1 = ['GET /webhooks/meta', 'POST /webhooks/meta', 'GET /healthz', 'GET /readyz', 'GET /metrics'];

/**
 * Checks `document` against the OpenAPI 3.1 JSON schema with @seriousme/openapi-schema-validator.
 * The package is ESM-only, which jest's CommonJS runtime cannot load: it runs in a node of its own.
 */
function validateOpenApi(document: unknown): { valid: boolean; errors?: unknown } {
  const script = `
    import { Validator } from '@seriousme/openapi-schema-validator';
    let input = '';
    for await (const chunk of process.stdin) input += chunk;
    const result = await new Validator().validate(JSON.parse(input));
    process.stdout.write(JSON.stringify({ valid: result.valid, version: new Validator().version, errors: result.errors }));
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, input: JSON.stringify(document), encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`the validator did not run: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

describe('OpenAPI document and Swagger UI', () => {
  beforeAll(setupTestDatabase);
  afterAll(teardownTestDatabase);
  const app = createApp();

  // Test-only: the document is untyped JSON, read the way any client would.
  let document: any;
  const operation = (key: string): any => {
    const [method, path] = key.split(' ') as [string, string];
    return document.paths[path]?.[method.toLowerCase()];
  };
  const bodySchema = (key: string): any => operation(key)?.requestBody?.content?.['application/json']?.schema;

  beforeAll(async () => {
    const res = await request(app).get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    document = res.body;
  });

  describe('GET /openapi.json', () => {
    it('when fetched, then it is an OpenAPI 3.1 document with info, paths and the operator and tenant key schemes', () => {
      expect(document.openapi).toMatch(/^3\.1\.\d+$/);
      expect(document.info).toEqual(expect.objectContaining({ title: expect.any(String), version }));
      expect(typeof document.paths).toBe('object');
      expect(document.components.securitySchemes.operatorKey).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
      expect(document.components.securitySchemes.tenantKey).toEqual(expect.objectContaining({ type: 'http', scheme: 'bearer' }));
    });

    it('when fetched, then every /v1 route of CONTRACT §3 is in it', () => {
      const documented = Object.entries<Record<string, unknown>>(document.paths).flatMap(([path, item]) =>
        Object.keys(item)
          .filter((method) => METHODS.includes(method))
          .map((method) => `${method.toUpperCase()} ${path}`),
      );
      const missing = Object.keys(CONTRACT_ROUTES).filter((key) => !documented.includes(key));
      expect(missing).toEqual([]);
    });

    it('when an operation is read, then it has a summary, a tag, a success response and every path parameter declared', () => {
      for (const key of Object.keys(CONTRACT_ROUTES)) {
        const op = operation(key);
        const [, path] = key.split(' ') as [string, string];
        const successes = Object.keys(op.responses).filter((status) => /^2\d\d$/.test(status));
        expect({ key, summary: typeof op.summary, tags: op.tags?.length, successes: successes.length }).toEqual({
          key,
          summary: 'string',
          tags: 1,
          successes: 1,
        });
        const declared = (op.parameters ?? [])
          .filter((p: { in: string }) => p.in === 'path')
          .map((p: { name: string; required: boolean }) => `${p.name}:${p.required}`)
          .sort();
        const inPath = [...path.matchAll(/\{([A-Za-z_]+)\}/g)].map((m) => `${m[1]}:true`).sort();
        expect({ key, declared }).toEqual({ key, declared: inPath });
      }
    });

    it('when a route takes a body, then its JSON schema has the contract fields and requires exactly the mandatory ones', () => {
      for (const [key, fields] of Object.entries(CONTRACT_ROUTES)) {
        const schema = bodySchema(key);
        if (!fields) {
          expect({ key, body: schema }).toEqual({ key, body: undefined });
          continue;
        }
        expect({ key, type: schema?.type }).toEqual({ key, type: 'object' });
        expect({ key, properties: Object.keys(schema.properties) }).toEqual({
          key,
          properties: expect.arrayContaining([...fields.required, ...fields.optional]),
        });
        expect({ key, required: [...(schema.required ?? [])].sort() }).toEqual({ key, required: [...fields.required].sort() });
      }
      // Every PUT and PATCH carries a body; POSTs without one are the contract's action routes.
      for (const key of Object.keys(CONTRACT_ROUTES).filter((k) => /^(PUT|PATCH) /.test(k))) {
        expect({ key, documented: bodySchema(key) !== undefined }).toEqual({ key, documented: true });
      }
    });

    it('when a list route is read, then its contract query parameters are documented with the page bounds', () => {
      for (const [key, names] of Object.entries(CONTRACT_QUERIES)) {
        const query = (operation(key).parameters ?? []).filter((p: { in: string }) => p.in === 'query');
        expect({ key, names: query.map((p: { name: string }) => p.name) }).toEqual({ key, names: expect.arrayContaining(names) });
        const limit = query.find((p: { name: string }) => p.name === 'limit');
        expect({ key, limit: limit.schema }).toEqual({ key, limit: expect.objectContaining({ minimum: 1, maximum: 100, default: 20 }) });
      }
    });

    it('when an authenticated route is read, then 401, 403, 429, 500 and (with an id) 404 reference the one error schema', () => {
      for (const key of Object.keys(CONTRACT_ROUTES)) {
        const op = operation(key);
        const expected = ['401', '403', '429', '500', ...(key.includes('{') ? ['404'] : [])];
        for (const status of expected) {
          const schema = op.responses[status]?.content?.['application/json']?.schema;
          expect({ key, status, schema }).toEqual({ key, status, schema: { $ref: '#/components/schemas/Error' } });
        }
      }
      expect(document.components.schemas.Error.properties.error.required).toEqual(expect.arrayContaining(['code', 'message', 'request_id']));
      // Written once: no operation spells the error shape out inline.
      expect(JSON.stringify(document.paths)).not.toContain('"properties":{"error"');
    });

    it('when validated against the OpenAPI 3.1 schema, then it is valid', () => {
      const result = validateOpenApi(document);
      expect(result.errors ?? []).toEqual([]);
      expect(result.valid).toBe(true);
      // And the validator does refuse what is not a document.
      expect(validateOpenApi({ openapi: '3.1.0', paths: {} }).valid).toBe(false);
    });

    it("when read, then Meta's webhook and the operations routes are described too", () => {
      for (const key of OUTSIDE_V1) {
        const op = operation(key);
        expect({ key, described: typeof op?.description }).toEqual({ key, described: 'string' });
        const security = key === 'GET /metrics' ? [{}, { metricsToken: [] }] : [];
        expect({ key, security: op.security }).toEqual({ key, security });
      }
      expect(operation('POST /webhooks/meta').responses['401'].content['application/json'].examples).toHaveProperty('invalid_signature');
      expect(Object.keys(operation('GET /readyz').responses)).toEqual(expect.arrayContaining(['200', '503']));
      expect(Object.keys(operation('GET /metrics').responses['200'].content)).toEqual(['text/plain']);
    });

    it('when any operation is read, then it has a description, X-Request-Id on every response and a 500', () => {
      for (const [path, item] of Object.entries<Record<string, any>>(document.paths)) {
        for (const [method, op] of Object.entries<any>(item)) {
          const key = `${method.toUpperCase()} ${path}`;
          expect({ key, description: typeof op.description === 'string' && op.description.length > 20 }).toEqual({ key, description: true });
          for (const [status, response] of Object.entries<any>(op.responses)) {
            expect({ key, status, header: response.headers?.['X-Request-Id'] }).toEqual({ key, status, header: { $ref: '#/components/headers/X-Request-Id' } });
          }
          if (key !== 'GET /readyz') expect({ key, has500: '500' in op.responses }).toEqual({ key, has500: true });
        }
      }
    });

    it('when a /v1 route is read, then its responses document the rate-limit headers and its 429 Retry-After', () => {
      const op = operation('GET /v1/me');
      expect(Object.keys(op.responses['200'].headers)).toEqual(['X-Request-Id', 'RateLimit', 'RateLimit-Policy']);
      expect(op.responses['429'].headers['Retry-After']).toEqual({ $ref: '#/components/headers/Retry-After' });
      expect(Object.keys(document.components.headers).sort()).toEqual(['RateLimit', 'RateLimit-Policy', 'Retry-After', 'X-Request-Id']);
    });

    it('when a route takes a body, then 400 invalid_json, 413 and 415 are documented with an example of each code', () => {
      const op = operation('POST /v1/agents');
      expect(Object.keys(op.responses['400'].content['application/json'].examples)).toEqual(['validation_error', 'invalid_json']);
      expect(op.responses['413'].content['application/json'].examples).toHaveProperty('payload_too_large');
      expect(op.responses['415'].content['application/json'].examples).toHaveProperty('unsupported_media_type');
      expect(operation('GET /v1/me').responses['415']).toBeUndefined();
    });

    it('when the error code is read, then it is an enum of the whole catalogue, each code explained', () => {
      const code = document.components.schemas.ErrorCode;
      expect(code.enum).toEqual(Object.keys(ERROR_STATUS));
      for (const name of code.enum) expect(code.description).toContain(`\`${name}\` (${ERROR_STATUS[name as keyof typeof ERROR_STATUS]})`);
      expect(document.components.schemas.Error.properties.error.properties.code).toEqual({ $ref: '#/components/schemas/ErrorCode' });
      expect(document.components.schemas.Error.example.error.code).toBe('not_found');
    });

    it('when the agent body is read, then it carries the bounds its validating schema enforces', () => {
      for (const key of ['POST /v1/agents', 'PATCH /v1/agents/{id}']) {
        const { properties } = bodySchema(key);
        expect(properties.temperature).toEqual(expect.objectContaining({ type: 'number', minimum: 0, maximum: 2 }));
        expect(properties.debounce_ms).toEqual(expect.objectContaining({ type: 'integer', minimum: 0, maximum: 30000 }));
        expect(properties.max_tokens).toEqual(expect.objectContaining({ type: 'integer', minimum: 1, maximum: 16384 }));
        expect(properties.history_limit).toEqual(expect.objectContaining({ type: 'integer', minimum: 1, maximum: 200 }));
        expect(properties.lead_fields.items.properties.type.enum).toEqual(['string', 'number', 'boolean', 'enum']);
      }
      const channel = bodySchema('POST /v1/phone-numbers').properties.channel;
      expect(channel.enum).toEqual(['whatsapp', 'instagram']);
      expect(bodySchema('POST /v1/users/{id}/credits').properties.amount).toEqual(expect.objectContaining({ type: 'integer', minimum: 1 }));
    });

    describe('and the validation behind it', () => {
      let tenant: TestTenant;
      beforeAll(async () => {
        tenant = await createTestTenant();
      });

      it('when a body crosses a documented bound, then the API refuses it naming that field, and accepts the bound itself', async () => {
        const { properties } = bodySchema('POST /v1/agents');
        for (const field of ['temperature', 'debounce_ms', 'max_tokens', 'history_limit']) {
          const { maximum } = properties[field];
          const over = await request(app)
            .post('/v1/agents')
            .set(tenant.auth)
            .send({ name: 'Bounds', system_prompt: 'Be brief.', [field]: maximum + 1 });
          expect({ field, status: over.status, code: over.body.error?.code, paths: over.body.error?.details?.map((d: { path: string }) => d.path) }).toEqual({
            field,
            status: 400,
            code: 'validation_error',
            paths: [field],
          });
          const at = await request(app)
            .post('/v1/agents')
            .set(tenant.auth)
            .send({ name: 'Bounds', system_prompt: 'Be brief.', [field]: maximum });
          expect({ field, status: at.status }).toEqual({ field, status: 201 });
          expect(at.body[field]).toBe(maximum);
        }
      });

      it('when the document marks a body closed (additionalProperties false), then the API refuses an unknown field', async () => {
        expect(bodySchema('POST /v1/agents').additionalProperties).toBe(false);
        const res = await request(app).post('/v1/agents').set(tenant.auth).send({ name: 'Closed', system_prompt: 'Be brief.', colour: 'red' });
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('validation_error');
      });
    });
  });

  describe('GET /docs', () => {
    it('when opened, then Swagger UI HTML is served', async () => {
      const res = await request(app).get('/docs/');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toContain('swagger-ui');
    });

    it('when opened without the trailing slash, then it still leads to the UI', async () => {
      const res = await request(app).get('/docs').redirects(1);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.text).toContain('swagger-ui');
    });

    it('when the UI starts, then it loads this very document from /openapi.json', async () => {
      const res = await request(app).get('/docs/swagger-ui-init.js');
      expect(res.status).toBe(200);
      expect(res.text).toContain('/openapi.json');
    });
  });
});
