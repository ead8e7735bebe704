/**
 * `defineRoute` declares one endpoint once: its zod schemas validate the request, and the same
 * schemas describe it in the OpenAPI document. Handlers receive parsed, typed input and return
 * the response body; Express 5 forwards their rejections to the error handler.
 */
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import type { ZodType } from 'zod';
import { errorResponses, openapiRegistry, responseHeaders } from '../utils/openapi';
import { AppError, validationError, type ErrorCode, type ErrorDetail } from '../utils/errors';
import { hasUnstorableText } from '../utils/storableText';
import { requireAdmin, requireTenant } from './auth';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteInput<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  req: Request;
  res: Response;
}

export interface RouteSpec<B, Q, P> {
  method: Method;
  /** Express-style path below API_PREFIX, e.g. `/agents/:id`. */
  path: string;
  summary: string;
  /** More than the summary: what it does and what to know; who may call it is added. */
  description?: string;
  tag: string;
  /** Who may call it: the operator's key, a tenant's key, or anyone (handler checks itself). */
  auth: 'admin' | 'tenant' | 'none';
  body?: ZodType<B>;
  query?: ZodType<Q>;
  params?: ZodType<P>;
  status?: number;
  response?: ZodType;
  /** Error codes worth documenting beyond the ones auth and validation always add. */
  errors?: ErrorCode[];
}

/**
 * The REST API reads JSON only: a body of another type (or of none named) is a 415 saying so,
 * rather than a validation error about fields the JSON parser never read. Bodiless requests pass.
 */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  const length = Number(req.get('content-length') ?? 0);
  const hasBody = req.get('transfer-encoding') !== undefined || length > 0;
  if (hasBody && !req.is('application/json')) {
    const given = req.get('content-type');
    throw new AppError('unsupported_media_type', `The request body must be JSON (Content-Type: application/json); got ${given ? given : 'no Content-Type'}`);
  }
  next();
};

/** routes.ts mounts every router built with defineRoute under this prefix. */
export const API_PREFIX = '/v1';

const toOpenApiPath = (path: string) => `${API_PREFIX}${path}`.replace(/:([A-Za-z_]+)/g, '{$1}');

/** Who may call a route, said in its description. */
const AUDIENCE: Record<RouteSpec<unknown, unknown, unknown>['auth'], string> = {
  admin: 'Operator key (ADMIN_API_KEY) only; a tenant key gets 403.',
  tenant: "A tenant's key only; the operator key gets 403, and another tenant's ids answer 404, never 403.",
  none: 'No key needed.',
};

function register(spec: RouteSpec<unknown, unknown, unknown>): void {
  const status = spec.status ?? 200;
  const codes = new Set<ErrorCode>(spec.errors ?? []);
  if (spec.auth !== 'none') {
    codes.add('unauthorized');
    codes.add('forbidden');
    codes.add('rate_limited');
  }
  if (spec.body || spec.query || spec.params) codes.add('validation_error');
  if (spec.body) {
    codes.add('invalid_json');
    codes.add('payload_too_large');
    codes.add('unsupported_media_type');
  }
  codes.add('internal_error');
  const headers = responseHeaders({ rateLimited: true });
  const success = spec.response
    ? { description: 'Success', headers, content: { 'application/json': { schema: spec.response } } }
    : { description: status === 204 ? 'Done; no body' : 'Success', headers };
  openapiRegistry.registerPath({
    method: spec.method,
    path: toOpenApiPath(spec.path),
    summary: spec.summary,
    description: [spec.description, AUDIENCE[spec.auth]].filter(Boolean).join('\n\n'),
    tags: [spec.tag],
    security: spec.auth === 'none' ? [] : [spec.auth === 'admin' ? { operatorKey: [] } : { tenantKey: [] }],
    request: {
      ...(spec.params ? { params: spec.params as never } : {}),
      ...(spec.query ? { query: spec.query as never } : {}),
      ...(spec.body ? { body: { required: true, content: { 'application/json': { schema: spec.body } } } } : {}),
    },
    responses: { [status]: success, ...errorResponses(codes, { rateLimited: true }) },
  });
}

/**
 * Notes the full route pattern while the router's baseUrl is still set: once a guard or the
 * handler fails, Express has restored baseUrl by the time the response finishes, and the
 * metrics label would lose its `/v1` prefix.
 */
const rememberRoute: RequestHandler = (req, _res, next) => {
  req.routePattern = `${req.baseUrl}${String(req.route?.path ?? '')}`;
  next();
};

/** The most fields a refusal names; a hostile body can hold thousands. */
const MAX_UNSTORABLE_DETAILS = 10;

/**
 * Where a request's strings (keys included) hold text Postgres cannot store (a NUL, a lone
 * surrogate: utils/storableText.ts), named like zod's paths. Walked with a stack of its own, so
 * a deeply nested body cannot overflow the call stack.
 */
function unstorableFields(input: unknown): ErrorDetail[] {
  const found: ErrorDetail[] = [];
  const stack: Array<[unknown, string]> = [[input, '']];
  while (stack.length > 0 && found.length < MAX_UNSTORABLE_DETAILS) {
    const [value, path] = stack.pop()!;
    const refuse = (at: string) => found.push({ path: at, message: 'contains a NUL character or an unpaired UTF-16 surrogate' });
    if (typeof value === 'string') {
      if (hasUnstorableText(value)) refuse(path);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        const at = path === '' ? key : `${path}.${key}`;
        if (hasUnstorableText(key)) refuse(at);
        else stack.push([item, at]);
      }
    }
  }
  return found;
}

export function defineRoute<B = undefined, Q = undefined, P = undefined>(
  router: Router,
  spec: RouteSpec<B, Q, P>,
  handler: (input: RouteInput<B, Q, P>) => Promise<unknown> | unknown,
): void {
  register(spec as RouteSpec<unknown, unknown, unknown>);
  const guards: RequestHandler[] = spec.auth === 'admin' ? [requireAdmin] : spec.auth === 'tenant' ? [requireTenant] : [];
  router[spec.method](spec.path, rememberRoute, ...guards, async (req: Request, res: Response, _next: NextFunction) => {
    // Before any schema: text the database would refuse is the caller's error (400), never a
    // 500 from deep inside a query, whatever field or route it reaches.
    const unstorable = [req.params, req.query, req.body].flatMap(unstorableFields);
    if (unstorable.length > 0) throw validationError(unstorable);
    // Params first: an unknown id is a 404-worthy problem only once it is a well-formed id.
    const params = (spec.params ? spec.params.parse(req.params) : undefined) as P;
    const query = (spec.query ? spec.query.parse(req.query) : undefined) as Q;
    const body = (spec.body ? spec.body.parse(req.body ?? {}) : undefined) as B;
    const result = await handler({ body, query, params, req, res });
    if (res.headersSent) return;
    const status = spec.status ?? 200;
    if (status === 204 || result === undefined) res.status(status).end();
    else res.status(status).json(result);
  });
}
