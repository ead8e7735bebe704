/**
 * `/v1/phone-numbers`: a tenant's WhatsApp numbers and Instagram accounts, and the agent each
 * is linked to (CONTRACT §3). The access token goes in, encrypted, and never comes back out.
 */
import { Router } from 'express';
import { z } from 'zod';
import { defineRoute } from '../middleware/validation';
import { tenantOf } from '../middleware/auth';
import { pageQuery, type Page } from '../utils/pagination';
import { CHANNELS, type PhoneNumber } from '../models/PhoneNumber';
import * as phoneNumberService from '../services/phoneNumberService';

const TAG = 'Phone numbers';

/** The only shape a phone number leaves the API in: no token, no tenant id. */
export function toPhoneNumberJson(phoneNumber: PhoneNumber) {
  return {
    id: phoneNumber.id,
    channel: phoneNumber.channel,
    external_id: phoneNumber.externalId,
    display_name: phoneNumber.displayName,
    agent_id: phoneNumber.agentId,
    created_at: phoneNumber.createdAt.toISOString(),
  };
}

const phoneNumberResponse = z.object({
  id: z.uuid(),
  channel: z.enum(CHANNELS),
  external_id: z.string(),
  display_name: z.string().nullable(),
  agent_id: z.uuid().nullable(),
  created_at: z.iso.datetime(),
});

const pageResponse = z.object({ data: z.array(phoneNumberResponse), next_cursor: z.string().nullable() });

const toPageJson = (page: Page<PhoneNumber>) => ({ data: page.data.map(toPhoneNumberJson), next_cursor: page.next_cursor });

const idParams = z.object({ id: z.uuid() });

// Same rule as the column's CHECK, so a bad id is a 400 naming the field rather than a 500.
const externalId = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1–64 characters of letters, digits, ".", "_" or "-"')
  .describe("WhatsApp phone_number_id or Instagram account id, as in Meta's webhooks");
const displayName = z.string().trim().min(1).max(200).nullable();
const accessToken = z.string().min(1).max(4096).describe('Graph API access token; stored encrypted, never returned');

const createBody = z.strictObject({
  channel: z.enum(CHANNELS),
  external_id: externalId,
  display_name: displayName.optional(),
  access_token: accessToken,
});

const updateBody = z
  .strictObject({
    display_name: displayName.optional(),
    access_token: accessToken.optional(),
  })
  .refine((body) => body.display_name !== undefined || body.access_token !== undefined, {
    message: 'give display_name and/or access_token',
  });

const linkBody = z.strictObject({ agent_id: z.uuid() });

export const phoneNumbersRouter = Router();

// Paths are relative to the `/v1` mount in routes.ts.
defineRoute(
  phoneNumbersRouter,
  {
    method: 'post',
    path: '/phone-numbers',
    summary: 'Register a WhatsApp number or Instagram account',
    tag: TAG,
    auth: 'tenant',
    body: createBody,
    status: 201,
    response: phoneNumberResponse,
    errors: ['conflict', 'account_verification_failed', 'unavailable'],
    description:
      'The access token is verified with Graph first (WhatsApp: GET /{phone_number_id}; Instagram: GET /me, whose user_id must be external_id): ' +
      "422 account_verification_failed with Graph's reason when Graph does not let it act for that account, 503 when Graph cannot be reached; nothing is stored then.",
  },
  async ({ req, body }) =>
    toPhoneNumberJson(
      await phoneNumberService.createPhoneNumber(tenantOf(req), {
        channel: body.channel,
        externalId: body.external_id,
        displayName: body.display_name,
        accessToken: body.access_token,
      }),
    ),
);

defineRoute(
  phoneNumbersRouter,
  {
    method: 'get',
    path: '/phone-numbers',
    summary: 'List phone numbers, newest first',
    tag: TAG,
    auth: 'tenant',
    query: pageQuery,
    response: pageResponse,
  },
  async ({ req, query }) => toPageJson(await phoneNumberService.listPhoneNumbers(tenantOf(req), query)),
);

defineRoute(
  phoneNumbersRouter,
  {
    method: 'get',
    path: '/phone-numbers/:id',
    summary: 'Get a phone number',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: phoneNumberResponse,
    errors: ['not_found'],
  },
  async ({ req, params }) => toPhoneNumberJson(await phoneNumberService.getPhoneNumber(tenantOf(req), params.id)),
);

defineRoute(
  phoneNumbersRouter,
  {
    method: 'patch',
    path: '/phone-numbers/:id',
    summary: 'Change the display name and/or the access token',
    description: 'A new access token is verified with Graph as on registration (422 / 503); the old one stays until it passes.',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    body: updateBody,
    response: phoneNumberResponse,
    errors: ['not_found', 'account_verification_failed', 'unavailable'],
  },
  async ({ req, params, body }) =>
    toPhoneNumberJson(
      await phoneNumberService.updatePhoneNumber(tenantOf(req), params.id, {
        displayName: body.display_name,
        accessToken: body.access_token,
      }),
    ),
);

defineRoute(
  phoneNumbersRouter,
  {
    method: 'delete',
    path: '/phone-numbers/:id',
    summary: 'Delete a phone number (its conversations are archived and stay readable)',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    status: 204,
    errors: ['not_found'],
  },
  async ({ req, params }) => {
    await phoneNumberService.deletePhoneNumber(tenantOf(req), params.id);
  },
);

defineRoute(
  phoneNumbersRouter,
  {
    method: 'put',
    path: '/phone-numbers/:id/agent',
    summary: "Link an agent; a different agent archives the number's active conversations",
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    body: linkBody,
    response: phoneNumberResponse,
    errors: ['not_found', 'conflict'],
  },
  async ({ req, params, body }) =>
    toPhoneNumberJson((await phoneNumberService.linkAgent(tenantOf(req), params.id, body.agent_id)).phoneNumber),
);

// 200 with the number (agent_id null) rather than 204: the same answer shape as linking.
defineRoute(
  phoneNumbersRouter,
  {
    method: 'delete',
    path: '/phone-numbers/:id/agent',
    summary: 'Unlink the agent; inbound messages are then stored but not answered',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: phoneNumberResponse,
    errors: ['not_found'],
  },
  async ({ req, params }) => toPhoneNumberJson((await phoneNumberService.unlinkAgent(tenantOf(req), params.id)).phoneNumber),
);
