/**
 * `/v1/agents`: a tenant's AI agents (CONTRACT §3). Archived agents are hidden from the list
 * unless asked for, readable by id, unchangeable, and cannot be linked.
 */
import { Router } from 'express';
import { z } from 'zod';
import { defineRoute } from '../middleware/validation';
import { tenantOf } from '../middleware/auth';
import { pageQuery, type Page } from '../utils/pagination';
import type { Agent, AgentChanges } from '../models/Agent';
import * as agentService from '../services/agentService';

const TAG = 'Agents';

/** The only shape an agent leaves the API in. `lead_fields: null` means the defaults. */
export function toAgentJson(agent: Agent) {
  return {
    id: agent.id,
    name: agent.name,
    system_prompt: agent.systemPrompt,
    model: agent.model,
    temperature: agent.temperature,
    max_tokens: agent.maxTokens,
    history_limit: agent.historyLimit,
    max_prompt_tokens: agent.maxPromptTokens,
    debounce_ms: agent.debounceMs,
    lead_fields: agent.leadFields,
    fallback_message: agent.fallbackMessage,
    resume_after_minutes: agent.resumeAfterMinutes,
    handoff_keywords: agent.handoffKeywords,
    opt_out_keywords: agent.optOutKeywords,
    opt_in_keywords: agent.optInKeywords,
    opt_out_message: agent.optOutMessage,
    archived_at: agent.archivedAt?.toISOString() ?? null,
    created_at: agent.createdAt.toISOString(),
    updated_at: agent.updatedAt.toISOString(),
  };
}

const defaultFieldNames = agentService.DEFAULT_LEAD_FIELDS.map((field) => field.name).join(', ');
const leadFieldsDescription = `Fields the lead extraction fills; null for the defaults (${defaultFieldNames})`;

/** The settings shared by create and update, each with the range the database enforces. */
const fields = {
  name: z.string().trim().min(1).max(200),
  system_prompt: z.string().min(1).max(32_000).refine((value) => value.trim().length > 0, 'must not be blank'),
  model: z.string().trim().min(1).max(200).describe('OpenAI model; defaults to the platform default (OPENAI_MODEL)'),
  // The column is numeric(3,2): more decimals are rounded to two.
  temperature: z.number().min(0).max(2),
  max_tokens: z.number().int().min(1).max(16_384),
  history_limit: z.number().int().min(1).max(200).describe('How many earlier messages the model sees'),
  max_prompt_tokens: z
    .number()
    .int()
    .min(500)
    .max(1_000_000)
    .describe('Most prompt tokens a reply sends the model (estimated as characters / 4); the oldest history is left out first, the system prompt always goes. Default 8000'),
  debounce_ms: z.number().int().min(0).max(30_000).describe('Messages this close together get one reply'),
  lead_fields: agentService.leadFieldsSchema.nullable().describe(leadFieldsDescription),
  fallback_message: z.string().min(1).max(4096).nullable().describe('Sent free when the tenant has no credits'),
  resume_after_minutes: z
    .number()
    .int()
    .min(1)
    .max(43_200)
    .nullable()
    .describe('A conversation a human paused (by writing) resumes by itself after this many minutes without another human message; each human message restarts the clock. null (the default): only POST …/resume resumes it'),
  handoff_keywords: agentService.keywordsSchema.describe(
    'A customer message equal to one of these (ignoring case and surrounding spaces) pauses the bot (paused_by "keyword") until resumed; the message gets no reply. Default []',
  ),
  opt_out_keywords: agentService.keywordsSchema.describe(
    'A customer message equal to one of these (ignoring case and surrounding spaces) opts the customer out on the number: no bot reply, human messages and templates are 409 opted_out, and one confirmation (opt_out_message) is sent free. Default ["STOP", "UNSUBSCRIBE"]',
  ),
  opt_in_keywords: agentService.keywordsSchema.describe('A customer message equal to one of these opts an opted-out customer back in; it is answered as usual. Default ["START"]'),
  opt_out_message: z
    .string()
    .min(1)
    .max(4096)
    .nullable()
    .describe('The confirmation an opted-out customer gets, once, free; null: "You are unsubscribed and will get no more messages from us here. Reply START to subscribe again." (the first opt-in keyword)'),
};

const createBody = z.strictObject({
  name: fields.name,
  system_prompt: fields.system_prompt,
  model: fields.model.optional(),
  temperature: fields.temperature.optional(),
  max_tokens: fields.max_tokens.optional(),
  history_limit: fields.history_limit.optional(),
  max_prompt_tokens: fields.max_prompt_tokens.optional(),
  debounce_ms: fields.debounce_ms.optional(),
  lead_fields: fields.lead_fields.optional(),
  fallback_message: fields.fallback_message.optional(),
  resume_after_minutes: fields.resume_after_minutes.optional(),
  handoff_keywords: fields.handoff_keywords.optional(),
  opt_out_keywords: fields.opt_out_keywords.optional(),
  opt_in_keywords: fields.opt_in_keywords.optional(),
  opt_out_message: fields.opt_out_message.optional(),
});

const updateBody = createBody
  .partial()
  .refine((body) => Object.values(body).some((value) => value !== undefined), { message: 'give at least one field to change' });

const agentResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  system_prompt: z.string(),
  model: z.string(),
  temperature: z.number(),
  max_tokens: z.number().int(),
  history_limit: z.number().int(),
  max_prompt_tokens: z.number().int(),
  debounce_ms: z.number().int(),
  lead_fields: z.array(agentService.leadFieldSchema).nullable(),
  fallback_message: z.string().nullable(),
  resume_after_minutes: z.number().int().nullable(),
  handoff_keywords: z.array(z.string()),
  opt_out_keywords: z.array(z.string()),
  opt_in_keywords: z.array(z.string()),
  opt_out_message: z.string().nullable(),
  archived_at: z.iso.datetime().nullable(),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
});

const listQuery = pageQuery.extend({
  // Not z.coerce.boolean(): that reads "false" as true.
  include_archived: z
    .enum(['true', 'false'])
    .default('false')
    .transform((value) => value === 'true'),
});

const pageResponse = z.object({ data: z.array(agentResponse), next_cursor: z.string().nullable() });

const toPageJson = (page: Page<Agent>) => ({ data: page.data.map(toAgentJson), next_cursor: page.next_cursor });

const idParams = z.object({ id: z.uuid() });

type AgentBody = z.infer<typeof updateBody>;

/** snake_case body → the model's camelCase changes, keeping "not given" (undefined) apart from null. */
function toChanges(body: AgentBody): AgentChanges {
  const changes: AgentChanges = {
    name: body.name,
    systemPrompt: body.system_prompt,
    model: body.model,
    temperature: body.temperature,
    maxTokens: body.max_tokens,
    historyLimit: body.history_limit,
    maxPromptTokens: body.max_prompt_tokens,
    debounceMs: body.debounce_ms,
    leadFields: body.lead_fields,
    fallbackMessage: body.fallback_message,
    resumeAfterMinutes: body.resume_after_minutes,
    handoffKeywords: body.handoff_keywords,
    optOutKeywords: body.opt_out_keywords,
    optInKeywords: body.opt_in_keywords,
    optOutMessage: body.opt_out_message,
  };
  return Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined)) as AgentChanges;
}

export const agentsRouter = Router();

// Paths are relative to the `/v1` mount in routes.ts.
defineRoute(
  agentsRouter,
  {
    method: 'post',
    path: '/agents',
    summary: 'Create an agent',
    tag: TAG,
    auth: 'tenant',
    body: createBody,
    status: 201,
    response: agentResponse,
  },
  async ({ req, body }) =>
    toAgentJson(await agentService.createAgent(tenantOf(req), { ...toChanges(body), name: body.name, systemPrompt: body.system_prompt })),
);

defineRoute(
  agentsRouter,
  {
    method: 'get',
    path: '/agents',
    summary: 'List agents, newest first (archived ones with include_archived=true)',
    tag: TAG,
    auth: 'tenant',
    query: listQuery,
    response: pageResponse,
  },
  async ({ req, query }) =>
    toPageJson(
      await agentService.listAgents(tenantOf(req), { limit: query.limit, cursor: query.cursor, includeArchived: query.include_archived }),
    ),
);

defineRoute(
  agentsRouter,
  {
    method: 'get',
    path: '/agents/:id',
    summary: 'Get an agent (archived ones too)',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: agentResponse,
    errors: ['not_found'],
  },
  async ({ req, params }) => toAgentJson(await agentService.getAgent(tenantOf(req), params.id)),
);

defineRoute(
  agentsRouter,
  {
    method: 'patch',
    path: '/agents/:id',
    summary: 'Change an agent (null resets lead_fields to the defaults and clears fallback_message)',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    body: updateBody,
    response: agentResponse,
    errors: ['not_found', 'conflict'],
  },
  async ({ req, params, body }) => toAgentJson(await agentService.updateAgent(tenantOf(req), params.id, toChanges(body))),
);

defineRoute(
  agentsRouter,
  {
    method: 'post',
    path: '/agents/:id/archive',
    summary: "Archive an agent: unlinks it everywhere and archives those numbers' active conversations",
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: agentResponse,
    errors: ['not_found'],
  },
  async ({ req, params }) => toAgentJson((await agentService.archiveAgent(tenantOf(req), params.id)).agent),
);
