/**
 * Phone numbers and their agent link.
 *
 * The rule every link change follows: whenever a number's `agent_id` changes, its active
 * conversations are archived in the same transaction, under the number's row lock. So an
 * active conversation always belongs to the agent the number is linked to now (or to none),
 * and the next customer message opens a fresh conversation (CONTRACT §4.8). Reasons:
 * `agent_relinked` (link to a different agent, including from "no agent"), `agent_unlinked`,
 * `phone_number_deleted`, and `agent_archived` (agentService).
 */
import { randomUUID } from 'node:crypto';
import { withTransaction } from '../utils/database';
import { encryptSecret } from '../utils/encryption';
import { AppError, conflict, notFound } from '../utils/errors';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';
import * as PhoneNumbers from '../models/PhoneNumber';
import type { PhoneNumber } from '../models/PhoneNumber';
import type { Channel } from '../models/types';
import { findAgent } from '../models/Agent';
import { archiveActiveConversations } from '../models/Conversation';
import { verifyAccount, type AccountVerifier } from './metaGraphService';
import { forgetNumbers } from './cachedLookups';

export interface CreatePhoneNumberInput {
  channel: Channel;
  externalId: string;
  displayName?: string | null | undefined;
  /** Plain; encrypted here and never stored, returned or logged as is. */
  accessToken: string;
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  const pgError = error as { code?: unknown; constraint?: unknown } | null;
  return pgError?.code === '23505' && pgError.constraint === constraint;
}

/**
 * Graph must let the token act for exactly this account before we store it (CONTRACT §4.10):
 * otherwise any tenant could claim a competitor's public account id and receive its customers.
 * 422 with Graph's reason when it does not, 503 when Graph gives no verdict; never the token.
 */
async function requireOwnership(channel: Channel, externalId: string, accessToken: string, verify: AccountVerifier): Promise<void> {
  let verdict;
  try {
    verdict = await verify({ channel, accountId: externalId, accessToken });
  } catch (error) {
    throw new AppError('unavailable', `Graph could not be asked whether the token may act for ${channel} account ${externalId}; try again`, undefined, { cause: error });
  }
  if (!verdict.ok) {
    throw new AppError('account_verification_failed', `Graph does not let this token act for ${channel} account ${externalId}: ${verdict.reason}`);
  }
}

/**
 * Registers a number for the tenant with its token encrypted, once Graph has vouched for the
 * token (`requireOwnership`). 409 when any tenant (this one included) already has the account
 * live; the message does not say which.
 */
export async function createPhoneNumber(userId: string, input: CreatePhoneNumberInput, verify: AccountVerifier = verifyAccount): Promise<PhoneNumber> {
  await requireOwnership(input.channel, input.externalId, input.accessToken, verify);
  const id = randomUUID();
  const identity = { id, userId, channel: input.channel, externalId: input.externalId };
  let created: PhoneNumber;
  try {
    created = await PhoneNumbers.insertPhoneNumber(userId, {
      id,
      channel: input.channel,
      externalId: input.externalId,
      displayName: input.displayName ?? null,
      accessTokenEncrypted: encryptSecret(input.accessToken, PhoneNumbers.accessTokenContext(id)),
    });
  } catch (error) {
    // The unique index decides, not a prior SELECT: two tenants racing for one account cannot both win.
    if (isUniqueViolation(error, PhoneNumbers.EXTERNAL_ID_UNIQUE_INDEX)) {
      // A retry after a 503 below lands here: forget the account's route again, best effort, so
      // a webhook never keeps finding it unknown until the TTL.
      await forgetNumbers([identity]).catch(() => undefined);
      throw conflict(`This ${input.channel} account is already registered`);
    }
    throw error;
  }
  // Committed: webhooks for the account, which may have been cached as unknown, route to it now.
  await forgetNumbers([identity]);
  return created;
}

/** A page of the tenant's live numbers, newest first. */
export async function listPhoneNumbers(
  userId: string,
  options: PageRequest,
): Promise<Page<PhoneNumber>> {
  const afterId = options.cursor === undefined ? undefined : decodeCursor<string>(options.cursor, 'uuid');
  const rows = await PhoneNumbers.listPhoneNumbers(userId, { limit: options.limit, afterId });
  return toPage(rows, options.limit, (phoneNumber) => phoneNumber.id);
}

/** One live number of the tenant; 404 for unknown, deleted or another tenant's. */
export async function getPhoneNumber(userId: string, phoneNumberId: string): Promise<PhoneNumber> {
  const phoneNumber = await PhoneNumbers.findPhoneNumber(userId, phoneNumberId);
  if (!phoneNumber) throw notFound('Phone number');
  return phoneNumber;
}

export interface UpdatePhoneNumberInput {
  /** null clears it. */
  displayName?: string | null | undefined;
  /** Plain; replaces the stored token (e.g. after Meta rotated it), once Graph vouches for it. */
  accessToken?: string | undefined;
}

export async function updatePhoneNumber(
  userId: string,
  phoneNumberId: string,
  input: UpdatePhoneNumberInput,
  verify: AccountVerifier = verifyAccount,
): Promise<PhoneNumber> {
  if (input.accessToken !== undefined) {
    const current = await getPhoneNumber(userId, phoneNumberId);
    await requireOwnership(current.channel, current.externalId, input.accessToken, verify);
  }
  const updated = await PhoneNumbers.updatePhoneNumber(userId, phoneNumberId, {
    ...(input.displayName !== undefined ? { displayName: input.displayName } : {}),
    ...(input.accessToken !== undefined
      ? { accessTokenEncrypted: encryptSecret(input.accessToken, PhoneNumbers.accessTokenContext(phoneNumberId)) }
      : {}),
  });
  if (!updated) throw notFound('Phone number');
  // A new token: turns in every process send with it from now on.
  if (input.accessToken !== undefined) await forgetNumbers([updated]);
  return updated;
}

/**
 * Soft-deletes a number: it stops routing webhooks at once, its agent link goes, and its active
 * conversations are archived (`phone_number_deleted`) but stay readable. 404 when not live.
 */
export async function deletePhoneNumber(userId: string, phoneNumberId: string): Promise<void> {
  const deleted = await withTransaction(async (tx) => {
    const locked = await PhoneNumbers.findPhoneNumber(userId, phoneNumberId, tx, { lock: 'update' });
    if (!locked) throw notFound('Phone number');
    await archiveActiveConversations(userId, phoneNumberId, 'phone_number_deleted', tx);
    await PhoneNumbers.softDeletePhoneNumber(userId, phoneNumberId, tx);
    return locked;
  });
  // Committed: no process routes the account to it or sends from it any more.
  await forgetNumbers([deleted]);
}

/** The outcome of a link change. */
export interface LinkResult {
  phoneNumber: PhoneNumber;
  /** False when the number was already in the requested state (nothing written). */
  changed: boolean;
  archivedConversations: number;
}

/**
 * Links an agent to a number. Linking the agent already linked is a no-op; linking any other
 * agent (or linking where none was) archives the number's active conversations
 * (`agent_relinked`) in the same transaction as the link change.
 * 404: the number or the agent is not the tenant's; 409: the agent is archived.
 *
 * Concurrency: parallel links to one number serialise on its row lock (FOR UPDATE), so the
 * last to commit wins and each change archives exactly the conversations opened before it.
 * The agent is held FOR SHARE first (lock order agent → number), so a concurrent archive of
 * it either completes before (we see it archived) or waits and then unlinks what we linked.
 */
export async function linkAgent(userId: string, phoneNumberId: string, agentId: string): Promise<LinkResult> {
  return forgettingChange(await withTransaction(async (tx): Promise<LinkResult> => {
    // Unlocked first look, only so a missing number is reported before a missing agent.
    if (!(await PhoneNumbers.findPhoneNumber(userId, phoneNumberId, tx))) throw notFound('Phone number');
    const agent = await findAgent(userId, agentId, tx, { lock: 'share' });
    if (!agent) throw notFound('Agent');
    if (agent.archivedAt) throw conflict('An archived agent cannot be linked');

    const locked = await PhoneNumbers.findPhoneNumber(userId, phoneNumberId, tx, { lock: 'update' });
    // Deleted between the first look and the lock.
    if (!locked) throw notFound('Phone number');
    if (locked.agentId === agentId) return { phoneNumber: locked, changed: false, archivedConversations: 0 };

    const archivedConversations = await archiveActiveConversations(userId, phoneNumberId, 'agent_relinked', tx);
    const phoneNumber = await PhoneNumbers.setPhoneNumberAgent(userId, phoneNumberId, agentId, tx);
    return { phoneNumber: phoneNumber!, changed: true, archivedConversations };
  }));
}

/**
 * After a committed link change: the number's route and turn entry are forgotten everywhere.
 * Also when nothing changed: that is how a retry after a 503 (Redis not told) repairs it.
 */
async function forgettingChange(result: LinkResult): Promise<LinkResult> {
  await forgetNumbers([result.phoneNumber]);
  return result;
}

/**
 * Unlinks the number's agent: inbound messages are then stored but not answered. Its active
 * conversations are archived (`agent_unlinked`) so a later link starts fresh. Unlinking a
 * number without an agent is a no-op; 404 when the number is not the tenant's.
 */
export async function unlinkAgent(userId: string, phoneNumberId: string): Promise<LinkResult> {
  return forgettingChange(await withTransaction(async (tx): Promise<LinkResult> => {
    const locked = await PhoneNumbers.findPhoneNumber(userId, phoneNumberId, tx, { lock: 'update' });
    if (!locked) throw notFound('Phone number');
    if (locked.agentId === null) return { phoneNumber: locked, changed: false, archivedConversations: 0 };

    const archivedConversations = await archiveActiveConversations(userId, phoneNumberId, 'agent_unlinked', tx);
    const phoneNumber = await PhoneNumbers.setPhoneNumberAgent(userId, phoneNumberId, null, tx);
    return { phoneNumber: phoneNumber!, changed: true, archivedConversations };
  }));
}
