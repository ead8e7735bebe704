/**
 * Tenants, their keys and credits (CONTRACT §3): the operator's `/v1/users…` endpoints and the
 * tenant's own `/v1/me` and `/v1/credits/ledger`. Mounted under `/v1` by routes.ts.
 */
import { Router } from 'express';
import { z } from 'zod';
import { defineRoute } from '../middleware/validation';
import { tenantOf } from '../middleware/auth';
import { pageQuery } from '../utils/pagination';
import * as userService from '../services/userService';
import * as creditService from '../services/creditService';
import type { User } from '../services/userService';
import type { CreditEntry } from '../services/creditService';

export const usersRouter = Router();

// ---- schemas: the same objects validate requests and describe them in /openapi.json ----

const credits = z.int().min(0).max(creditService.MAX_CREDIT_AMOUNT);

const createUserBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  email: z.email().max(320),
  credits: credits.optional(),
});

const topUpBody = z.strictObject({
  amount: z.int().min(1).max(creditService.MAX_CREDIT_AMOUNT),
  /** Why the credits were added; kept on the ledger entry as its description. */
  reason: z.string().trim().min(1).max(500).optional(),
});

const userParams = z.object({ id: z.uuid() });
const keyParams = z.object({ id: z.uuid(), keyId: z.uuid() });

const userJson = z.object({
  id: z.uuid(),
  name: z.string(),
  email: z.string(),
  credit_balance: z.int(),
  created_at: z.iso.datetime(),
});

const meJson = userJson.omit({ created_at: true }).extend({
  credits_held: z.int().describe('credits reserved for model calls in flight (released or settled to the actual cost when each ends)'),
});

const entryJson = z.object({
  id: z.uuid(),
  amount: z.int().describe('negative = charge'),
  reason: z.enum(['top_up', 'reply', 'extraction', 'transcription', 'refund', 'adjustment']),
  description: z.string().nullable(),
  message_id: z.uuid().nullable().describe('the outbound message a reply charge paid for, or a refund gives back for'),
  conversation_id: z.uuid().nullable(),
  created_at: z.iso.datetime(),
});

const page = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });

// ---- mapping: rows to the contract's snake_case JSON ----

const toUserJson = (user: User) => ({
  id: user.id,
  name: user.name,
  email: user.email,
  credit_balance: user.creditBalance,
  created_at: user.createdAt.toISOString(),
});

const toEntryJson = (entry: CreditEntry) => ({
  id: entry.id,
  amount: entry.amount,
  reason: entry.reason,
  description: entry.description,
  message_id: entry.messageId,
  conversation_id: entry.conversationId,
  created_at: entry.createdAt.toISOString(),
});

// ---- operator ----

defineRoute(
  usersRouter,
  {
    method: 'post',
    path: '/users',
    summary: 'Create a tenant with its first API key (shown once) and opening credits',
    tag: 'Users',
    auth: 'admin',
    body: createUserBody,
    status: 201,
    response: z.object({ user: userJson, api_key: z.string(), api_key_id: z.uuid() }),
    errors: ['conflict'],
  },
  async ({ body }) => {
    const { user, apiKey } = await userService.createUser(body);
    return { user: toUserJson(user), api_key: apiKey.apiKey, api_key_id: apiKey.id };
  },
);

defineRoute(
  usersRouter,
  {
    method: 'get',
    path: '/users',
    summary: 'List tenants, newest first',
    tag: 'Users',
    auth: 'admin',
    query: pageQuery,
    response: page(userJson),
  },
  async ({ query }) => {
    const result = await userService.listUsers(query);
    return { data: result.data.map(toUserJson), next_cursor: result.next_cursor };
  },
);

defineRoute(
  usersRouter,
  {
    method: 'get',
    path: '/users/:id',
    summary: 'One tenant with its credit balance',
    tag: 'Users',
    auth: 'admin',
    params: userParams,
    response: userJson,
    errors: ['not_found'],
  },
  async ({ params }) => toUserJson(await userService.getUser(params.id)),
);

defineRoute(
  usersRouter,
  {
    method: 'post',
    path: '/users/:id/api-keys',
    summary: 'Issue another API key for a tenant (shown once)',
    tag: 'Users',
    auth: 'admin',
    params: userParams,
    status: 201,
    response: z.object({ id: z.uuid(), api_key: z.string() }),
    errors: ['not_found'],
  },
  async ({ params }) => {
    const issued = await userService.createApiKey(params.id);
    return { id: issued.id, api_key: issued.apiKey };
  },
);

defineRoute(
  usersRouter,
  {
    method: 'delete',
    path: '/users/:id/api-keys/:keyId',
    summary: 'Revoke a tenant API key; it stops working at once',
    tag: 'Users',
    auth: 'admin',
    params: keyParams,
    status: 204,
    errors: ['not_found'],
  },
  async ({ params }) => {
    await userService.revokeApiKey(params.id, params.keyId);
  },
);

defineRoute(
  usersRouter,
  {
    method: 'post',
    path: '/users/:id/credits',
    summary: 'Top up a tenant’s credits',
    tag: 'Users',
    auth: 'admin',
    params: userParams,
    body: topUpBody,
    status: 201,
    response: z.object({ credit_balance: z.int(), entry: entryJson }),
    errors: ['not_found'],
  },
  async ({ params, body }) => {
    const { balance, entry } = await creditService.topUpAndWake(params.id, body.amount, body.reason);
    return { credit_balance: balance, entry: toEntryJson(entry) };
  },
);

// ---- tenant ----

defineRoute(
  usersRouter,
  {
    method: 'get',
    path: '/me',
    summary: 'The calling tenant and its credit balance',
    tag: 'Account',
    auth: 'tenant',
    response: meJson,
  },
  async ({ req }) => {
    const user = await userService.getMe(tenantOf(req));
    return { id: user.id, name: user.name, email: user.email, credit_balance: user.creditBalance, credits_held: user.creditsHeld };
  },
);

defineRoute(
  usersRouter,
  {
    method: 'get',
    path: '/credits/ledger',
    summary: 'The calling tenant’s credit ledger, newest first',
    tag: 'Account',
    auth: 'tenant',
    query: pageQuery,
    response: page(entryJson),
  },
  async ({ req, query }) => {
    const result = await creditService.listLedger(tenantOf(req), query);
    return { data: result.data.map(toEntryJson), next_cursor: result.next_cursor };
  },
);
