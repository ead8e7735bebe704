/**
 * Tenant event endpoints (CONTRACT §3 `/v1/webhook-endpoints`): register, list, read, delete,
 * rotate the secret, read deliveries and redeliver one. Paths are relative to `/v1`.
 */
import { Router } from 'express';
import { z } from 'zod';
import { defineRoute } from '../middleware/validation';
import { tenantOf } from '../middleware/auth';
import { pageQuery } from '../utils/pagination';
import * as webhookEndpointService from '../services/webhookEndpointService';
import { TENANT_EVENT_TYPES } from '../models/TenantEvent';
import type { WebhookDelivery, WebhookEndpoint } from '../models/WebhookEndpoint';

export const webhookEndpointsRouter = Router();

const TAG = 'Tenant events';

const idParams = z.object({ id: z.uuid() });
const deliveryParams = z.object({ id: z.uuid(), deliveryId: z.uuid() });
const timestamp = z.iso.datetime();

const endpointJson = z.object({
  id: z.uuid(),
  url: z.string(),
  events: z.array(z.enum(TENANT_EVENT_TYPES)),
  status: z.enum(['enabled', 'disabled']),
  disabled_at: timestamp.nullable(),
  disabled_reason: z.string().nullable().meta({ description: 'Why deliveries stopped: the endpoint failed for a day. Redelivering a delivery enables it again.' }),
  failing_since: timestamp.nullable().meta({ description: 'Start of the current run of failed attempts; null while deliveries succeed' }),
  created_at: timestamp,
});

const deliveryJson = z.object({
  id: z.uuid(),
  event_id: z.uuid(),
  event_type: z.string(),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number().int(),
  last_status_code: z.number().int().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: timestamp.nullable(),
  delivered_at: timestamp.nullable(),
  created_at: timestamp,
});

const pageOf = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });

const iso = (date: Date | null) => (date ? date.toISOString() : null);

function toEndpointJson(endpoint: WebhookEndpoint): z.infer<typeof endpointJson> {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: endpoint.events as z.infer<typeof endpointJson>['events'],
    status: endpoint.disabledAt ? 'disabled' : 'enabled',
    disabled_at: iso(endpoint.disabledAt),
    disabled_reason: endpoint.disabledReason,
    failing_since: iso(endpoint.failingSince),
    created_at: endpoint.createdAt.toISOString(),
  };
}

function toDeliveryJson(delivery: WebhookDelivery): z.infer<typeof deliveryJson> {
  return {
    id: delivery.id,
    event_id: delivery.eventId,
    event_type: delivery.eventType,
    status: delivery.status,
    attempts: delivery.attempts,
    last_status_code: delivery.lastStatusCode,
    last_error: delivery.lastError,
    next_attempt_at: iso(delivery.nextAttemptAt),
    delivered_at: iso(delivery.deliveredAt),
    created_at: delivery.createdAt.toISOString(),
  };
}

defineRoute(
  webhookEndpointsRouter,
  {
    method: 'post',
    path: '/webhook-endpoints',
    summary: 'Register an endpoint for tenant events; the signing secret is shown once',
    description:
      'The URL must use https in production and must not resolve to a private, loopback or link-local address unless WEBHOOK_ALLOW_PRIVATE_URLS; it is checked again at each delivery.',
    tag: TAG,
    auth: 'tenant',
    body: z.strictObject({
      url: z.string().min(8).max(2048),
      events: z.array(z.enum(TENANT_EVENT_TYPES)).min(1).max(TENANT_EVENT_TYPES.length),
    }),
    status: 201,
    response: endpointJson.extend({ secret: z.string().meta({ description: 'Signs X-Signature; shown only in this response' }) }),
  },
  async ({ req, body }) => {
    const { endpoint, secret } = await webhookEndpointService.createEndpoint(tenantOf(req), body);
    return { ...toEndpointJson(endpoint), secret };
  },
);

defineRoute(
  webhookEndpointsRouter,
  {
    method: 'get',
    path: '/webhook-endpoints',
    summary: "List the tenant's event endpoints, newest first",
    tag: TAG,
    auth: 'tenant',
    query: pageQuery,
    response: pageOf(endpointJson),
  },
  async ({ req, query }) => {
    const page = await webhookEndpointService.listEndpoints(tenantOf(req), query);
    return { data: page.data.map(toEndpointJson), next_cursor: page.next_cursor };
  },
);

defineRoute(
  webhookEndpointsRouter,
  {
    method: 'get',
    path: '/webhook-endpoints/:id',
    summary: 'Get an event endpoint',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: endpointJson,
    errors: ['not_found'],
  },
  async ({ req, params }) => toEndpointJson(await webhookEndpointService.getEndpoint(tenantOf(req), params.id)),
);

defineRoute(
  webhookEndpointsRouter,
  {
    method: 'delete',
    path: '/webhook-endpoints/:id',
    summary: 'Delete an event endpoint and its deliveries',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    status: 204,
    errors: ['not_found'],
  },
  async ({ req, params }) => {
    await webhookEndpointService.deleteEndpoint(tenantOf(req), params.id);
  },
);

defineRoute(
  webhookEndpointsRouter,
  {
    method: 'post',
    path: '/webhook-endpoints/:id/rotate-secret',
    summary: 'Replace the signing secret; the old one also signs for 24 h',
    description: 'For 24 h X-Signature carries two v1= values, one per secret, so receivers can switch without losing a delivery.',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    status: 201,
    response: z.object({ secret: z.string() }),
    errors: ['not_found'],
  },
  async ({ req, params }) => ({ secret: await webhookEndpointService.rotateSecret(tenantOf(req), params.id) }),
);

defineRoute(
  webhookEndpointsRouter,
  {
    method: 'get',
    path: '/webhook-endpoints/:id/deliveries',
    summary: "List an endpoint's deliveries, newest first",
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    query: pageQuery,
    response: pageOf(deliveryJson),
    errors: ['not_found'],
  },
  async ({ req, params, query }) => {
    const page = await webhookEndpointService.listDeliveries(tenantOf(req), params.id, query);
    return { data: page.data.map(toDeliveryJson), next_cursor: page.next_cursor };
  },
);

defineRoute(
  webhookEndpointsRouter,
  {
    method: 'post',
    path: '/webhook-endpoints/:id/deliveries/:deliveryId/redeliver',
    summary: 'Deliver an event again now',
    description: 'The delivery becomes pending with a fresh 24 h of retries; a disabled endpoint is enabled again.',
    tag: TAG,
    auth: 'tenant',
    params: deliveryParams,
    status: 202,
    response: deliveryJson,
    errors: ['not_found'],
  },
  async ({ req, params }) => toDeliveryJson(await webhookEndpointService.redeliver(tenantOf(req), params.id, params.deliveryId)),
);
