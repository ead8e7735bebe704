/**
 * Conversations and their messages (CONTRACT §3, tenant key): read them, write as a human,
 * and switch the bot off and on. Paths are relative to the `/v1` mount in routes.ts.
 */
import { Router } from 'express';
import { z } from 'zod';
import { defineRoute } from '../middleware/validation';
import { tenantOf } from '../middleware/auth';
import { pageQuery } from '../utils/pagination';
import * as conversationService from '../services/conversationService';
import * as messageService from '../services/messageService';
import { extractionStates, type ConversationExtractionState } from '../services/extractionQueryService';
import type { Conversation } from '../models/Conversation';
import type { Message } from '../models/Message';

export const conversationsRouter = Router();

const TAG = 'Conversations';

const idParams = z.object({ id: z.uuid() });

const timestamp = z.iso.datetime();

const conversationJson = z.object({
  id: z.uuid(),
  phone_number_id: z.uuid(),
  agent_id: z.uuid().nullable(),
  channel: z.enum(['whatsapp', 'instagram']),
  customer: z.object({ external_id: z.string(), name: z.string().nullable() }),
  is_active: z.boolean(),
  bot_paused: z.boolean(),
  paused_by: z.enum(['human', 'api', 'keyword']).nullable().meta({
    description: 'Who paused the bot: human (a human wrote from the business side), api (POST …/pause), keyword (the customer sent one of the agent’s handoff_keywords); null while the bot answers',
  }),
  resumes_at: timestamp.nullable().meta({
    description: "When the bot resumes by itself: a human's pause, the agent's resume_after_minutes after the last human message (each one restarts the clock); null otherwise",
  }),
  last_message_at: timestamp.nullable(),
  created_at: timestamp,
  archived_at: timestamp.nullable(),
  archive_reason: z.enum(['agent_relinked', 'agent_unlinked', 'agent_archived', 'phone_number_deleted']).nullable(),
  opted_out: z.boolean().meta({
    description: 'The customer opted out on this number (sent one of the agent’s opt_out_keywords; an opt_in_keywords message reverses it): no bot reply, and a human message or template is 409 opted_out',
  }),
  window_expires_at: timestamp.nullable().meta({
    description: "End of the customer-service window: the customer's newest message + 24 h (null before any). Past it a human's free text is 409 window_closed, the bot sends no free text, and only a template (POST …/template) may go",
  }),
  extraction_status: z.enum(['none', 'due', 'postponed', 'done']).meta({
    description: 'none: no extraction and none due; due: requested, or idle for EXTRACTION_IDLE_SECONDS, and a worker runs it shortly; postponed: see extraction_postponed; done: an extraction exists and none is due',
  }),
  extraction_postponed: z
    .object({
      reason: z.enum(['insufficient_credits', 'openai_not_configured', 'extraction_failed']),
      message: z.string(),
      retry_at: timestamp,
    })
    .nullable()
    .meta({ description: 'Why the extraction waits, when extraction_status is postponed; null otherwise' }),
});

const messageJson = z.object({
  id: z.uuid(),
  sequence_no: z.number().int(),
  direction: z.enum(['inbound', 'outbound']),
  author: z.enum(['customer', 'agent', 'human']),
  type: z.string(),
  text: z.string().nullable(),
  status: z.enum(['pending', 'answered', 'ignored', 'insufficient_credits', 'stale', 'queued', 'sent', 'delivered', 'read', 'cancelled', 'failed']),
  external_id: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string().nullable() }).optional(),
  created_at: timestamp,
});

const pageOf = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item), next_cursor: z.string().nullable() });

/** Query strings carry text: only the words `true` and `false` are booleans here. */
const booleanFlag = z.enum(['true', 'false']).transform((value) => value === 'true');

const listQuery = pageQuery.extend({
  phone_number_id: z.uuid().optional(),
  agent_id: z.uuid().optional(),
  is_active: booleanFlag.optional(),
});

const iso = (date: Date | null) => (date ? date.toISOString() : null);

function toConversationJson(conversation: Conversation, extraction: ConversationExtractionState | undefined): z.infer<typeof conversationJson> {
  const postponed = extraction?.postponed;
  return {
    id: conversation.id,
    phone_number_id: conversation.phoneNumberId,
    agent_id: conversation.agentId,
    channel: conversation.channel,
    customer: { external_id: conversation.customerExternalId, name: conversation.customerName },
    is_active: conversation.isActive,
    bot_paused: conversation.botPaused,
    paused_by: conversation.pausedBy,
    resumes_at: iso(conversation.resumesAt),
    last_message_at: iso(conversation.lastMessageAt),
    created_at: conversation.createdAt.toISOString(),
    archived_at: iso(conversation.archivedAt),
    archive_reason: conversation.archiveReason,
    opted_out: conversation.optedOut,
    window_expires_at: iso(conversation.windowExpiresAt),
    extraction_status: extraction?.status ?? 'none',
    extraction_postponed: postponed ? { reason: postponed.reason, message: postponed.message, retry_at: postponed.retryAt.toISOString() } : null,
  };
}

/** Conversations as the API shows them, each with where its lead extraction stands. */
async function withExtraction(userId: string, conversations: Conversation[]): Promise<Array<z.infer<typeof conversationJson>>> {
  const states = await extractionStates(userId, conversations.map((c) => c.id));
  return conversations.map((c) => toConversationJson(c, states.get(c.id)));
}

function toMessageJson(message: Message): z.infer<typeof messageJson> {
  return {
    id: message.id,
    sequence_no: message.sequenceNo,
    direction: message.direction,
    author: message.author,
    type: message.type,
    text: message.text,
    status: message.status,
    external_id: message.externalId,
    // Only failed (or otherwise annotated) messages carry an error; the rest omit the key.
    ...(message.errorCode !== null ? { error: { code: message.errorCode, message: message.errorMessage } } : {}),
    created_at: message.createdAt.toISOString(),
  };
}

defineRoute(
  conversationsRouter,
  {
    method: 'get',
    path: '/conversations',
    summary: 'List conversations, newest first',
    tag: TAG,
    auth: 'tenant',
    query: listQuery,
    response: pageOf(conversationJson),
  },
  async ({ req, query }) => {
    const { limit, cursor, phone_number_id, agent_id, is_active } = query;
    const page = await conversationService.listConversations(
      tenantOf(req),
      { phoneNumberId: phone_number_id, agentId: agent_id, isActive: is_active },
      { limit, cursor },
    );
    return { data: await withExtraction(tenantOf(req), page.data), next_cursor: page.next_cursor };
  },
);

defineRoute(
  conversationsRouter,
  {
    method: 'get',
    path: '/conversations/:id',
    summary: 'Get a conversation',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: conversationJson,
    errors: ['not_found'],
  },
  async ({ req, params }) => (await withExtraction(tenantOf(req), [await conversationService.getConversation(tenantOf(req), params.id)]))[0],
);

defineRoute(
  conversationsRouter,
  {
    method: 'get',
    path: '/conversations/:id/messages',
    summary: "List a conversation's messages in sequence order",
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    query: pageQuery,
    response: pageOf(messageJson),
    errors: ['not_found'],
  },
  async ({ req, params, query }) => {
    const page = await messageService.listMessages(tenantOf(req), params.id, query);
    return { data: page.data.map(toMessageJson), next_cursor: page.next_cursor };
  },
);

defineRoute(
  conversationsRouter,
  {
    method: 'post',
    path: '/conversations/:id/messages',
    summary: "Queue a human's message to the customer; pauses the bot for this conversation",
    description:
      "409 window_closed when the customer's 24-hour window is closed (see window_expires_at; send a template instead), 409 opted_out when the customer opted out, 409 conflict when the conversation is archived.",
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    body: z.strictObject({ text: z.string().min(1).max(4096) }),
    status: 202,
    response: messageJson,
    errors: ['not_found', 'conflict', 'window_closed', 'opted_out'],
  },
  async ({ req, params, body }) => toMessageJson(await messageService.sendHumanMessage(tenantOf(req), params.id, body.text)),
);

defineRoute(
  conversationsRouter,
  {
    method: 'post',
    path: '/conversations/:id/pause',
    summary: 'Stop the bot answering this conversation',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: conversationJson,
    errors: ['not_found'],
  },
  async ({ req, params }) => (await withExtraction(tenantOf(req), [await conversationService.pauseConversation(tenantOf(req), params.id)]))[0],
);

defineRoute(
  conversationsRouter,
  {
    method: 'post',
    path: '/conversations/:id/resume',
    summary: 'Let the bot answer this conversation again',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: conversationJson,
    errors: ['not_found'],
  },
  async ({ req, params }) => (await withExtraction(tenantOf(req), [await conversationService.resumeConversation(tenantOf(req), params.id)]))[0],
);

/** Meta's template fields: a name of lowercase letters, digits and underscores, and a locale code. */
const templateBody = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9_]{1,512}$/, 'must be the name of an approved template: lowercase letters, digits and _')
    .describe("The approved template's name, as in WhatsApp Manager"),
  language: z
    .string()
    .regex(/^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$/, 'must be a template language code such as en or en_US')
    .describe("The template's language code (Meta's language.code), e.g. en_US"),
  components: z
    .array(z.looseObject({ type: z.string().min(1).max(40) }))
    .max(20)
    .optional()
    .describe("Meta's components with their parameters (header, body, button), passed to Meta as given"),
});

defineRoute(
  conversationsRouter,
  {
    method: 'post',
    path: '/conversations/:id/template',
    summary: 'Queue a WhatsApp template message to the customer (allowed outside the 24-hour window)',
    description:
      "Sent through the same path and statuses as any message (Meta's type: \"template\"); Meta's refusal (an unknown template, wrong parameters) fails the message with Meta's code. Does not pause the bot. 400 on an Instagram conversation; 409 opted_out when the customer opted out; 409 conflict when archived.",
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    body: templateBody,
    status: 202,
    response: messageJson,
    errors: ['not_found', 'conflict', 'opted_out'],
  },
  async ({ req, params, body }) => toMessageJson(await messageService.sendTemplate(tenantOf(req), params.id, body)),
);

defineRoute(
  conversationsRouter,
  {
    method: 'post',
    path: '/conversations/:id/retry',
    summary: 'Try failed messages again: inbound back to pending, outbound back to queued',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    status: 202,
    response: z.object({ data: z.array(messageJson).describe('the messages tried again, in their new status') }),
    errors: ['not_found', 'conflict'],
  },
  async ({ req, params }) => ({ data: (await messageService.retryFailed(tenantOf(req), params.id)).map(toMessageJson) }),
);
