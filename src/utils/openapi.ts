/**
 * The OpenAPI document is generated from the very zod schemas that validate requests: every
 * route registers itself here when it is defined (middleware/validation.ts), so the document
 * cannot drift from the code.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type ResponseConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { version } from '../../package.json';
import { ERROR_STATUS, type ErrorCode } from './errors';

export const openapiRegistry = new OpenAPIRegistry();

/** What each error code means to a caller: the catalogue (utils/errors.ts), explained once. */
const ERROR_MEANINGS: Record<ErrorCode, string> = {
  validation_error: 'a parameter or body field is wrong; `details` names each one',
  invalid_json: 'the body is not valid JSON',
  unauthorized: 'no key, or a key that is unknown or revoked',
  invalid_signature: "Meta's X-Hub-Signature-256 is missing or does not match",
  forbidden: 'the key is valid but not for this route (operator key on tenant routes, or the reverse)',
  not_found: "no such route or resource (another tenant's ids included)",
  conflict: 'the request clashes with the current state',
  window_closed: "free text outside the customer's 24-hour window (no customer message in the last 24 hours): only a template may go",
  opted_out: 'the customer opted out (sent an opt_out_keywords word) on this number: nothing is sent until they opt in',
  payload_too_large: 'the body is over BODY_LIMIT',
  unsupported_media_type: 'a body was sent without Content-Type: application/json',
  account_verification_failed: "Graph does not let the access token act for that account; the message gives Graph's reason",
  rate_limited: 'over RATE_LIMIT_PER_MINUTE for this key; wait Retry-After seconds',
  internal_error: 'something failed on our side; nothing more is said (see the logs, by request_id)',
  unavailable: 'Postgres, Redis or Graph cannot be reached now; try again',
};

const ERROR_CODES = Object.keys(ERROR_STATUS) as [ErrorCode, ...ErrorCode[]];

/** CONTRACT §3's error shape: one component, referenced by every error response. */
export const errorSchema = z
    .object({
      error: z.object({
        code: z.enum(ERROR_CODES).meta({
          id: 'ErrorCode',
          description: ERROR_CODES.map((code) => `\`${code}\` (${ERROR_STATUS[code]}): ${ERROR_MEANINGS[code]}`).join('; '),
        }),
        message: z.string().meta({ description: 'For people: what went wrong and, where it helps, what to do' }),
        details: z
          .array(z.object({ path: z.string(), message: z.string() }))
          .optional()
          .meta({ description: 'validation_error only: one entry per problem, `path` in dotted form' }),
        request_id: z.string().meta({ description: 'The X-Request-Id of this request, to find it in the logs' }),
      }),
    })
    .meta({
      id: 'Error',
      description: 'Every error, whatever the route',
      example: { error: { code: 'not_found', message: 'Agent not found', request_id: '3f2c9a7e-5b1d-4e8a-9c0f-2a6b7d8e9f10' } },
    });

openapiRegistry.registerComponent('headers', 'X-Request-Id', {
  description: "The caller's X-Request-Id if it sent a tame one (1-128 of A-Z a-z 0-9 . _ : -), else a generated UUID; on every log line of the request",
  schema: { type: 'string', example: '3f2c9a7e-5b1d-4e8a-9c0f-2a6b7d8e9f10' },
});
openapiRegistry.registerComponent('headers', 'RateLimit', {
  description: 'IETF draft-7 rate-limit state of this key: `limit=600, remaining=599, reset=60`',
  schema: { type: 'string', example: 'limit=600, remaining=599, reset=60' },
});
openapiRegistry.registerComponent('headers', 'RateLimit-Policy', {
  description: 'The policy: RATE_LIMIT_PER_MINUTE requests per 60-second window',
  schema: { type: 'string', example: '600;w=60' },
});
openapiRegistry.registerComponent('headers', 'Retry-After', {
  description: 'Seconds to wait before trying again',
  schema: { type: 'integer', example: 42 },
});

const header = (name: string) => ({ $ref: `#/components/headers/${name}` });

/** Headers every response carries; `rateLimited` adds those of the /v1 limiter. */
export function responseHeaders(options: { rateLimited: boolean; retryAfter?: boolean }) {
  return {
    'X-Request-Id': header('X-Request-Id'),
    ...(options.rateLimited ? { RateLimit: header('RateLimit'), 'RateLimit-Policy': header('RateLimit-Policy') } : {}),
    ...(options.retryAfter ? { 'Retry-After': header('Retry-After') } : {}),
  };
}

/**
 * The error responses for `codes`, grouped by status: each references the one error schema,
 * lists the codes it may carry, and shows an example of each.
 */
export function errorResponses(codes: Iterable<ErrorCode>, options: { rateLimited: boolean }): Record<string, ResponseConfig> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERROR_STATUS[code], [...(byStatus.get(ERROR_STATUS[code]) ?? []), code]);
  const responses: Record<string, ResponseConfig> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[String(status)] = {
      description: list.map((code) => `${code}: ${ERROR_MEANINGS[code]}`).join('; '),
      headers: responseHeaders({ rateLimited: options.rateLimited, retryAfter: status === 429 }),
      content: {
        'application/json': {
          schema: errorSchema,
          examples: Object.fromEntries(
            list.map((code) => [
              code,
              { value: { error: { code, message: ERROR_MEANINGS[code], request_id: '3f2c9a7e-5b1d-4e8a-9c0f-2a6b7d8e9f10' } } },
            ]),
          ),
        },
      },
    };
  }
  return responses;
}

// Two schemes, both bearer keys, so a client can tell from the document which key a route takes.
openapiRegistry.registerComponent('securitySchemes', 'operatorKey', {
  type: 'http',
  scheme: 'bearer',
  description: 'The operator key (ADMIN_API_KEY): /v1/users routes',
});
openapiRegistry.registerComponent('securitySchemes', 'tenantKey', {
  type: 'http',
  scheme: 'bearer',
  description: "A tenant's API key, made with POST /v1/users or POST /v1/users/:id/api-keys",
});

let document: object | undefined;

export function openapiDocument(): object {
  document ??= new OpenApiGeneratorV31(openapiRegistry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Multi-channel AI agent API',
      version,
      description: 'Tenants manage WhatsApp numbers, Instagram accounts, agents and conversations; operators manage tenants.',
    },
    servers: [{ url: '/' }],
  });
  return document;
}
