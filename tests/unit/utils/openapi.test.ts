/**
 * The OpenAPI building blocks on their own: the error schema, the headers and the error
 * responses every route declares, and the document generated from the registry (its validity
 * against the OpenAPI schema and every route of the real app: tests/integration/openapi.test.ts).
 */
import { z } from 'zod';
import { errorResponses, errorSchema, openapiDocument, openapiRegistry, responseHeaders } from '../../../src/utils/openapi';
import { ERROR_STATUS } from '../../../src/utils/errors';
import { version } from '../../../package.json';

type ErrorResponse = ReturnType<typeof errorResponses>[string];

/** The JSON body a response declares (errorResponses never uses references). */
const jsonOf = (response: ErrorResponse | undefined) =>
  response!.content!['application/json'] as { schema: unknown; examples: Record<string, { value: unknown }> };

describe('responseHeaders', () => {
  it('when not rate limited, then X-Request-Id alone, as a reference to the shared component', () => {
    expect(responseHeaders({ rateLimited: false })).toEqual({ 'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' } });
  });

  it('when rate limited, then the RateLimit headers too; Retry-After only when asked', () => {
    expect(Object.keys(responseHeaders({ rateLimited: true }))).toEqual(['X-Request-Id', 'RateLimit', 'RateLimit-Policy']);
    expect(Object.keys(responseHeaders({ rateLimited: false, retryAfter: true }))).toEqual(['X-Request-Id', 'Retry-After']);
  });
});

describe('errorSchema', () => {
  it('when a body has the contract’s shape, then it parses; details are optional', () => {
    expect(errorSchema.safeParse({ error: { code: 'not_found', message: 'gone', request_id: 'r' } }).success).toBe(true);
    expect(errorSchema.safeParse({ error: { code: 'validation_error', message: 'bad', details: [{ path: 'a', message: 'b' }], request_id: 'r' } }).success).toBe(true);
  });

  it('when the code is not in the catalogue or the request id is missing, then it does not parse', () => {
    expect(errorSchema.safeParse({ error: { code: 'teapot', message: 'x', request_id: 'r' } }).success).toBe(false);
    expect(errorSchema.safeParse({ error: { code: 'not_found', message: 'x' } }).success).toBe(false);
  });
});

describe('errorResponses', () => {
  it('when codes share a status, then one response for that status listing each code with an example', () => {
    const responses = errorResponses(['validation_error', 'invalid_json', 'not_found'], { rateLimited: false });

    expect(Object.keys(responses)).toEqual(['400', '404']);
    const badRequest = responses['400']!;
    expect(badRequest.description).toMatch(/^validation_error: .+; invalid_json: .+/);
    const json = jsonOf(badRequest);
    expect(json.schema).toBe(errorSchema);
    expect(Object.keys(json.examples)).toEqual(['validation_error', 'invalid_json']);
    expect(json.examples['invalid_json']).toMatchObject({ value: { error: { code: 'invalid_json' } } });
  });

  it('when codes come in any order, then the statuses are listed ascending', () => {
    expect(Object.keys(errorResponses(['internal_error', 'rate_limited', 'unauthorized'], { rateLimited: true }))).toEqual(['401', '429', '500']);
  });

  it('when 429 is among them, then it alone carries Retry-After; rate limiting adds the RateLimit headers to all', () => {
    const responses = errorResponses(['rate_limited', 'forbidden'], { rateLimited: true });

    expect(Object.keys(responses['429']!.headers as object)).toContain('Retry-After');
    expect(Object.keys(responses['403']!.headers as object)).toEqual(['X-Request-Id', 'RateLimit', 'RateLimit-Policy']);
  });

  it('when every code of the catalogue is given, then every example parses as the error schema', () => {
    const codes = Object.keys(ERROR_STATUS) as Array<keyof typeof ERROR_STATUS>;

    for (const response of Object.values(errorResponses(codes, { rateLimited: true }))) {
      for (const example of Object.values(jsonOf(response).examples)) {
        expect(errorSchema.safeParse(example.value).success).toBe(true);
      }
    }
  });
});

describe('openapiDocument', () => {
  // Registered before the first document is generated: the document is built once, then kept.
  openapiRegistry.registerPath({
    method: 'get',
    path: '/unit-test/{id}',
    summary: 'A route of this test',
    request: { params: z.object({ id: z.string() }) },
    responses: { 200: { description: 'ok' } },
  });

  it('when generated, then OpenAPI 3.1 with the package version, both bearer schemes and the shared headers', () => {
    const document = openapiDocument() as {
      openapi: string;
      info: { version: string };
      components: { securitySchemes: Record<string, { scheme: string }>; headers: Record<string, unknown>; schemas: Record<string, unknown> };
    };

    expect(document.openapi).toBe('3.1.0');
    expect(document.info.version).toBe(version);
    expect(document.components.securitySchemes).toMatchObject({ operatorKey: { scheme: 'bearer' }, tenantKey: { scheme: 'bearer' } });
    expect(Object.keys(document.components.headers)).toEqual(expect.arrayContaining(['X-Request-Id', 'RateLimit', 'RateLimit-Policy', 'Retry-After']));
  });

  it('when a path was registered, then the document has it', () => {
    expect((openapiDocument() as { paths: Record<string, unknown> }).paths).toHaveProperty(['/unit-test/{id}', 'get']);
  });

  it('when asked twice, then the same document (generated once)', () => {
    expect(openapiDocument()).toBe(openapiDocument());
  });
});
