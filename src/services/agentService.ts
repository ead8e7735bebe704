/**
 * Agents: creation with defaults, updates, archival, and the lead-field rules that both the
 * API and the extraction use. Archiving unlinks the agent everywhere in the same transaction,
 * archiving those numbers' active conversations, so no conversation stays active under an
 * agent that no longer answers.
 */
import { z } from 'zod';
import { config } from '../config';
import { withTransaction } from '../utils/database';
import { conflict, notFound, validationError } from '../utils/errors';
import { allowedModels } from './creditService';
import { decodeCursor, toPage, type Page, type PageRequest } from '../utils/pagination';
import * as Agents from '../models/Agent';
import type { Agent, AgentChanges, LeadField } from '../models/Agent';
import { unlinkAgentEverywhere } from '../models/PhoneNumber';
import { archiveActiveConversations } from '../models/Conversation';
import { forgetAgent, forgetNumbers } from './cachedLookups';

/** Mirrors the column defaults of `agents` (src/migrations/B008_baseline.sql, 010); `model` comes from config. */
export const AGENT_DEFAULTS = Object.freeze({
  temperature: 0.7,
  maxTokens: 512,
  historyLimit: 20,
  maxPromptTokens: 8000,
  debounceMs: 0,
  resumeAfterMinutes: null,
  handoffKeywords: [] as readonly string[],
  optOutKeywords: ['STOP', 'UNSUBSCRIBE'] as readonly string[],
  optInKeywords: ['START'] as readonly string[],
});

/** What an agent with `lead_fields: null` extracts (CONTRACT §3). */
export const DEFAULT_LEAD_FIELDS: readonly LeadField[] = Object.freeze([
  { name: 'name', description: "The customer's name", type: 'string' },
  { name: 'email', description: "The customer's email address", type: 'string' },
  { name: 'phone', description: "The customer's phone number", type: 'string' },
  { name: 'intent', description: 'What the customer wants, in a few words', type: 'string' },
  { name: 'summary', description: 'A short summary of the conversation', type: 'string' },
]);

/** The fields an extraction for this agent should produce: its own, or the defaults. */
export function effectiveLeadFields(agent: Pick<Agent, 'leadFields'>): readonly LeadField[] {
  return agent.leadFields ?? DEFAULT_LEAD_FIELDS;
}

export const LEAD_FIELD_NAME = /^[a-z][a-z0-9_]{0,62}$/;
export const MAX_LEAD_FIELDS = 30;

/** One lead field: `values` is required (non-empty, unique) for enums and forbidden otherwise. */
export const leadFieldSchema = z
  .strictObject({
    name: z.string().regex(LEAD_FIELD_NAME, 'must be snake_case: a lowercase letter, then up to 62 of a-z, 0-9, _'),
    description: z.string().min(1).max(500),
    type: z.enum(['string', 'number', 'boolean', 'enum']),
    values: z.array(z.string().min(1).max(200)).max(100).optional(),
  })
  .superRefine((field, ctx) => {
    if (field.type !== 'enum') {
      if (field.values !== undefined) ctx.addIssue({ code: 'custom', path: ['values'], message: 'only enum fields take values' });
      return;
    }
    if (!field.values || field.values.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['values'], message: 'an enum field needs at least one value' });
      return;
    }
    const seen = new Set<string>();
    field.values.forEach((value, index) => {
      if (seen.has(value)) ctx.addIssue({ code: 'custom', path: ['values', index], message: `duplicate value "${value}"` });
      seen.add(value);
    });
  });

/**
 * The list an agent extracts. At least one field: to go back to the defaults, send `null`.
 * Names are unique, so the extraction's result object has one key per field.
 */
export const leadFieldsSchema = z
  .array(leadFieldSchema)
  .min(1, 'send null for the default fields')
  .max(MAX_LEAD_FIELDS)
  .superRefine((fields, ctx) => {
    const seen = new Set<string>();
    fields.forEach((field, index) => {
      if (seen.has(field.name)) ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicate name "${field.name}"` });
      seen.add(field.name);
    });
  });

/**
 * A list of keywords a customer's whole message is compared with (ignoring case and surrounding
 * spaces; keyword_matches, R__conversations.sql): each a short phrase, none repeated.
 */
export const keywordsSchema = z
  .array(z.string().trim().min(1).max(100))
  .max(50)
  .superRefine((keywords, ctx) => {
    const seen = new Set<string>();
    keywords.forEach((keyword, index) => {
      const normalised = keyword.toLowerCase().replace(/\s+/g, ' ');
      if (seen.has(normalised)) ctx.addIssue({ code: 'custom', path: [index], message: `"${keyword}" is listed twice` });
      seen.add(normalised);
    });
  });

/** Input of `createAgent`; omitted settings take `AGENT_DEFAULTS` and `config.OPENAI_MODEL`. */
export interface CreateAgentInput {
  name: string;
  systemPrompt: string;
  model?: string | undefined;
  temperature?: number | undefined;
  maxTokens?: number | undefined;
  historyLimit?: number | undefined;
  maxPromptTokens?: number | undefined;
  debounceMs?: number | undefined;
  leadFields?: LeadField[] | null | undefined;
  fallbackMessage?: string | null | undefined;
  resumeAfterMinutes?: number | null | undefined;
  handoffKeywords?: string[] | undefined;
  optOutKeywords?: string[] | undefined;
  optInKeywords?: string[] | undefined;
  optOutMessage?: string | null | undefined;
  vision?: boolean | undefined;
}

/**
 * With `MODEL_PRICES` set, an agent may use only the models it prices (guarantee 14: every
 * model call has a known price); a 400 names the allowed ones.
 */
export function requireAllowedModel(model: string): void {
  const allowed = allowedModels();
  if (allowed && !allowed.includes(model)) {
    throw validationError([{ path: 'model', message: `must be one of: ${allowed.join(', ')}` }], `The model "${model}" is not available; allowed: ${allowed.join(', ')}`);
  }
}

export async function createAgent(userId: string, input: CreateAgentInput): Promise<Agent> {
  const model = input.model ?? config.OPENAI_MODEL;
  requireAllowedModel(model);
  return Agents.insertAgent(userId, {
    name: input.name,
    systemPrompt: input.systemPrompt,
    model,
    temperature: input.temperature ?? AGENT_DEFAULTS.temperature,
    maxTokens: input.maxTokens ?? AGENT_DEFAULTS.maxTokens,
    historyLimit: input.historyLimit ?? AGENT_DEFAULTS.historyLimit,
    maxPromptTokens: input.maxPromptTokens ?? AGENT_DEFAULTS.maxPromptTokens,
    debounceMs: input.debounceMs ?? AGENT_DEFAULTS.debounceMs,
    leadFields: input.leadFields ?? null,
    fallbackMessage: input.fallbackMessage ?? null,
    resumeAfterMinutes: input.resumeAfterMinutes ?? AGENT_DEFAULTS.resumeAfterMinutes,
    handoffKeywords: input.handoffKeywords ?? [...AGENT_DEFAULTS.handoffKeywords],
    optOutKeywords: input.optOutKeywords ?? [...AGENT_DEFAULTS.optOutKeywords],
    optInKeywords: input.optInKeywords ?? [...AGENT_DEFAULTS.optInKeywords],
    optOutMessage: input.optOutMessage ?? null,
    vision: input.vision ?? true,
  });
}

/** A page of agents, newest first; archived ones only when asked for. */
export async function listAgents(
  userId: string,
  options: PageRequest & { includeArchived?: boolean | undefined },
): Promise<Page<Agent>> {
  const afterId = options.cursor === undefined ? undefined : decodeCursor<string>(options.cursor, 'uuid');
  const rows = await Agents.listAgents(userId, { limit: options.limit, afterId, includeArchived: options.includeArchived ?? false });
  return toPage(rows, options.limit, (agent) => agent.id);
}

/** One agent, archived ones included (old conversations still name them); 404 otherwise. */
export async function getAgent(userId: string, agentId: string): Promise<Agent> {
  const agent = await Agents.findAgent(userId, agentId);
  if (!agent) throw notFound('Agent');
  return agent;
}

/**
 * Changes an agent. Undefined fields stay; `leadFields: null` and `fallbackMessage: null` reset
 * to the defaults / no fallback. 404 for an unknown agent, 409 for an archived one.
 */
export async function updateAgent(userId: string, agentId: string, changes: AgentChanges): Promise<Agent> {
  if (changes.model !== undefined) requireAllowedModel(changes.model);
  const updated = await Agents.updateAgent(userId, agentId, changes);
  if (updated) {
    // Committed: turns in every process read the changed agent from now on.
    await forgetAgent(userId, agentId);
    return updated;
  }
  // The UPDATE only touches unarchived agents; tell the two failures apart afterwards.
  const existing = await Agents.findAgent(userId, agentId);
  if (!existing) throw notFound('Agent');
  throw conflict('The agent is archived and can no longer be changed');
}

/** What `archiveAgent` did, for callers (and tests) that care beyond the agent itself. */
export interface ArchiveAgentResult {
  agent: Agent;
  unlinkedPhoneNumberIds: string[];
  archivedConversations: number;
}

/**
 * Archives an agent, unlinks it from every number and archives those numbers' active
 * conversations (reason `agent_archived`), all in one transaction. Archiving an archived agent
 * changes nothing and returns it (idempotent); 404 for an unknown agent.
 */
export async function archiveAgent(userId: string, agentId: string): Promise<ArchiveAgentResult> {
  const result = ({ agent, unlinked, archivedConversations }: { agent: Agent; unlinked: { id: string }[]; archivedConversations: number }) => ({
    agent,
    unlinkedPhoneNumberIds: unlinked.map((number) => number.id),
    archivedConversations,
  });
  const archived = await withTransaction(async (tx) => {
    // Taking the agent's row lock first (lock order: agent → number → conversations) makes a
    // concurrent link either finish before us, so we unlink it below, or wait and then see
    // the agent archived.
    const agent = await Agents.markAgentArchived(userId, agentId, tx);
    if (!agent) {
      const existing = await Agents.findAgent(userId, agentId, tx);
      if (!existing) throw notFound('Agent');
      return { agent: existing, unlinked: [], archivedConversations: 0 };
    }
    const unlinked = await unlinkAgentEverywhere(userId, agentId, tx);
    let archivedConversations = 0;
    for (const { id } of unlinked) {
      archivedConversations += await archiveActiveConversations(userId, id, 'agent_archived', tx);
    }
    return { agent, unlinked, archivedConversations };
  });
  // Committed: the agent and the numbers it left are forgotten by every process's cache (the
  // agent even when it was archived already: a retry after a 503 forgets it again).
  await forgetAgent(userId, agentId);
  await forgetNumbers(archived.unlinked.map((number) => ({ ...number, userId })));
  return result(archived);
}
