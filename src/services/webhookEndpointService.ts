/**
 * Tenant event endpoints (CONTRACT §3 `/v1/webhook-endpoints`): registering one (its URL
 * checked, its secret generated, shown once and stored encrypted), listing, deleting,
 * rotating the secret, and the deliveries made to it. Tenant first; another tenant's
 * endpoint is `not_found`.
 */
import { randomUUID } from 'node:crypto';
import * as endpoints from '../models/WebhookEndpoint';
import type { WebhookDelivery, WebhookEndpoint } from '../models/WebhookEndpoint';
import type { TenantEventType } from '../models/TenantEvent';
import { decryptSecret, encryptSecret, SecretDecryptionError } from '../utils/encryption';
import { notFound, validationError } from '../utils/errors';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';
import { checkUrl, configuredUrlPolicy, UnsafeUrlError, type UrlPolicy } from '../utils/urlSafety';
import { newSigningSecret } from '../utils/webhookSignature';

/** After a rotation the old secret signs too, so receivers can switch without losing a delivery. */
export const PREVIOUS_SECRET_VALID_MS = 24 * 3600 * 1000;

/** Where an endpoint's secret is encrypted: both columns hold "this endpoint's secret". */
export const secretContext = (endpointId: string) => `webhook_endpoints.secret:${endpointId}`;

/** Throws a 400 naming `url` when the URL may not receive events (form, https, private address). */
export async function assertUrlAllowed(url: string, policy: UrlPolicy = configuredUrlPolicy()): Promise<void> {
  try {
    await checkUrl(url, policy);
  } catch (error) {
    if (error instanceof UnsafeUrlError) throw validationError([{ path: 'url', message: error.message }]);
    throw error;
  }
}

/** Registers an endpoint; the secret comes back here and never again. */
export async function createEndpoint(
  userId: string,
  input: { url: string; events: TenantEventType[] },
  policy: UrlPolicy = configuredUrlPolicy(),
): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
  await assertUrlAllowed(input.url, policy);
  const id = randomUUID();
  const secret = newSigningSecret();
  const endpoint = await endpoints.insertEndpoint(userId, {
    id,
    url: input.url,
    events: [...new Set(input.events)],
    secretEncrypted: encryptSecret(secret, secretContext(id)),
  });
  return { endpoint, secret };
}

export async function listEndpoints(userId: string, page: PageRequest): Promise<Page<WebhookEndpoint>> {
  const afterId = page.cursor === undefined ? undefined : decodeCursor<string>(page.cursor, 'uuid');
  return toPage(await endpoints.listEndpoints(userId, { limit: page.limit, afterId }), page.limit, (row) => row.id);
}

export async function getEndpoint(userId: string, id: string): Promise<WebhookEndpoint> {
  const endpoint = await endpoints.findEndpoint(userId, id);
  if (!endpoint) throw notFound('Webhook endpoint');
  return endpoint;
}

export async function deleteEndpoint(userId: string, id: string): Promise<void> {
  if (!(await endpoints.deleteEndpoint(userId, id))) throw notFound('Webhook endpoint');
}

/** A new secret, shown once; the old one keeps signing (a second `v1=`) for 24 h. */
export async function rotateSecret(userId: string, id: string): Promise<string> {
  const secret = newSigningSecret();
  const rotated = await endpoints.replaceSecret(userId, id, encryptSecret(secret, secretContext(id)), PREVIOUS_SECRET_VALID_MS);
  if (!rotated) throw notFound('Webhook endpoint');
  return secret;
}

/** The secrets that sign for an endpoint now, current first (what the dispatcher signs with). */
export function signingSecrets(endpointId: string, stored: { secretEncrypted: string; previousSecretEncrypted: string | null }): string[] {
  const secrets = [decryptSecret(stored.secretEncrypted, secretContext(endpointId))];
  if (stored.previousSecretEncrypted !== null) {
    // The old secret only helps receivers that did not switch yet; one lost with its key (a
    // rotation after rotate-keys named it) must not stop the new secret from signing.
    try {
      secrets.push(decryptSecret(stored.previousSecretEncrypted, secretContext(endpointId)));
    } catch (error) {
      if (!(error instanceof SecretDecryptionError)) throw error;
    }
  }
  return secrets;
}

export async function listDeliveries(userId: string, endpointId: string, page: PageRequest): Promise<Page<WebhookDelivery>> {
  await getEndpoint(userId, endpointId);
  const afterSeq = page.cursor === undefined ? undefined : decodeCursor<number>(page.cursor, 'integer');
  return toPage(await endpoints.listDeliveries(userId, endpointId, { limit: page.limit, afterSeq }), page.limit, (row) => row.seq);
}

/** Sends a delivery again now (and enables its endpoint again if it was disabled). */
export async function redeliver(userId: string, endpointId: string, deliveryId: string): Promise<WebhookDelivery> {
  const delivery = await endpoints.redeliver(userId, endpointId, deliveryId);
  if (!delivery) throw notFound('Delivery');
  return delivery;
}
