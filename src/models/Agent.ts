/**
 * Agents: a tenant's AI configurations (prompt, model, sampling, debounce, lead fields).
 * Archived agents stay readable by id (old conversations name them) but cannot be changed or
 * linked. Every function is tenant-first and filters on `user_id`.
 */
import { db, type Queryable } from '../utils/database';

export type LeadFieldType = 'string' | 'number' | 'boolean' | 'enum';

/** One field the extraction pulls out of a conversation. `values` exists iff `type` is enum. */
export interface LeadField {
  name: string;
  description: string;
  type: LeadFieldType;
  values?: string[];
}

export interface Agent {
  id: string;
  userId: string;
  name: string;
  systemPrompt: string;
  model: string;
  temperature: number;
  maxTokens: number;
  historyLimit: number;
  /** The most prompt tokens a reply may send (estimated: services/chatPrompt.ts); the oldest history goes first. */
  maxPromptTokens: number;
  debounceMs: number;
  /** null: the default fields (see `agentService.effectiveLeadFields`). */
  leadFields: LeadField[] | null;
  fallbackMessage: string | null;
  /** A conversation a human paused resumes after this many minutes without a human message; null: never by itself. */
  resumeAfterMinutes: number | null;
  /** A customer message equal to one of these (ignoring case and surrounding spaces) pauses the bot. */
  handoffKeywords: string[];
  /** A customer message equal to one of these opts the customer out on the number. */
  optOutKeywords: string[];
  /** A customer message equal to one of these opts an opted-out customer back in. */
  optInKeywords: string[];
  /** The one confirmation an opted-out customer gets; null: a default that names the first opt-in keyword. */
  optOutMessage: string | null;
  archivedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Every setting of an agent, fully specified (the service applies defaults). */
export type NewAgent = Omit<Agent, 'id' | 'userId' | 'archivedAt' | 'createdAt' | 'updatedAt'>;

export type AgentChanges = Partial<NewAgent>;

type AgentRow = Omit<Agent, 'temperature'> & { temperature: string | number };

const COLUMNS = `id, user_id AS "userId", name, system_prompt AS "systemPrompt", model, temperature,
  max_tokens AS "maxTokens", history_limit AS "historyLimit", max_prompt_tokens AS "maxPromptTokens", debounce_ms AS "debounceMs",
  lead_fields AS "leadFields", fallback_message AS "fallbackMessage",
  resume_after_minutes AS "resumeAfterMinutes", handoff_keywords AS "handoffKeywords",
  opt_out_keywords AS "optOutKeywords", opt_in_keywords AS "optInKeywords", opt_out_message AS "optOutMessage", archived_at AS "archivedAt",
  created_at AS "createdAt", updated_at AS "updatedAt"`;

// pg returns numeric as a string to avoid float surprises; numeric(3,2) fits a double exactly enough.
const toAgent = (row: AgentRow): Agent => ({ ...row, temperature: Number(row.temperature) });

/**
 * Column for each changeable field. Only these names ever reach the SQL text, so building the
 * SET list from them cannot inject anything.
 */
const CHANGEABLE: { [K in keyof NewAgent]-?: string } = {
  name: 'name',
  systemPrompt: 'system_prompt',
  model: 'model',
  temperature: 'temperature',
  maxTokens: 'max_tokens',
  historyLimit: 'history_limit',
  maxPromptTokens: 'max_prompt_tokens',
  debounceMs: 'debounce_ms',
  leadFields: 'lead_fields',
  fallbackMessage: 'fallback_message',
  resumeAfterMinutes: 'resume_after_minutes',
  handoffKeywords: 'handoff_keywords',
  optOutKeywords: 'opt_out_keywords',
  optInKeywords: 'opt_in_keywords',
  optOutMessage: 'opt_out_message',
};

// jsonb parameters go in as text: pg would send a JS array as a Postgres array, not JSON.
const toParam = (key: keyof NewAgent, value: unknown): unknown =>
  key === 'leadFields' && value !== null ? JSON.stringify(value) : value;

export async function insertAgent(userId: string, input: NewAgent, client: Queryable = db): Promise<Agent> {
  const { rows } = await client.query<AgentRow>(
    `INSERT INTO agents (user_id, name, system_prompt, model, temperature, max_tokens, history_limit, debounce_ms,
                         lead_fields, fallback_message, max_prompt_tokens, resume_after_minutes, handoff_keywords,
                         opt_out_keywords, opt_in_keywords, opt_out_message)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15, $16)
     RETURNING ${COLUMNS}`,
    [
      userId,
      input.name,
      input.systemPrompt,
      input.model,
      input.temperature,
      input.maxTokens,
      input.historyLimit,
      input.debounceMs,
      toParam('leadFields', input.leadFields),
      input.fallbackMessage,
      input.maxPromptTokens,
      input.resumeAfterMinutes,
      input.handoffKeywords,
      input.optOutKeywords,
      input.optInKeywords,
      input.optOutMessage,
    ],
  );
  return toAgent(rows[0]!);
}

/**
 * One agent of the tenant, archived or not, or null. `lock: 'share'` keeps it from being
 * archived or changed until the transaction ends (what linking needs); `'update'` is for writers.
 */
export async function findAgent(
  userId: string,
  id: string,
  client: Queryable = db,
  options: { lock?: 'update' | 'share' } = {},
): Promise<Agent | null> {
  const lock = options.lock === 'update' ? 'FOR UPDATE' : options.lock === 'share' ? 'FOR SHARE' : '';
  const { rows } = await client.query<AgentRow>(`SELECT ${COLUMNS} FROM agents WHERE user_id = $1 AND id = $2 ${lock}`, [
    userId,
    id,
  ]);
  return rows[0] ? toAgent(rows[0]) : null;
}

/**
 * A page of the tenant's agents, newest first, strictly after the `afterId` row; up to
 * `limit + 1` rows so the caller can tell whether another page exists.
 */
export async function listAgents(
  userId: string,
  options: { limit: number; afterId?: string | undefined; includeArchived: boolean },
  client: Queryable = db,
): Promise<Agent[]> {
  const { rows } = await client.query<AgentRow>(
    `SELECT ${COLUMNS} FROM agents
     WHERE user_id = $1 AND ($2 OR archived_at IS NULL)
       AND ($3::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM agents WHERE user_id = $1 AND id = $3))
     ORDER BY created_at DESC, id DESC
     LIMIT $4`,
    [userId, options.includeArchived, options.afterId ?? null, options.limit + 1],
  );
  return rows.map(toAgent);
}

/**
 * Applies `changes` to an agent that is not archived; null when the tenant has no such
 * unarchived agent (the caller tells "missing" from "archived" apart).
 */
export async function updateAgent(userId: string, id: string, changes: AgentChanges, client: Queryable = db): Promise<Agent | null> {
  const params: unknown[] = [userId, id];
  const sets: string[] = [];
  for (const key of Object.keys(CHANGEABLE) as (keyof NewAgent)[]) {
    if (changes[key] === undefined) continue;
    params.push(toParam(key, changes[key]));
    sets.push(`${CHANGEABLE[key]} = $${params.length}${key === 'leadFields' ? '::jsonb' : ''}`);
  }
  sets.push('updated_at = now()');
  const { rows } = await client.query<AgentRow>(
    `UPDATE agents SET ${sets.join(', ')}
     WHERE user_id = $1 AND id = $2 AND archived_at IS NULL
     RETURNING ${COLUMNS}`,
    params,
  );
  return rows[0] ? toAgent(rows[0]) : null;
}

/**
 * Marks an agent archived; null when the tenant has no such agent that is not archived yet.
 * The UPDATE takes the agent's row lock, which waits for any link holding it FOR SHARE.
 */
export async function markAgentArchived(userId: string, id: string, client: Queryable = db): Promise<Agent | null> {
  const { rows } = await client.query<AgentRow>(
    `UPDATE agents SET archived_at = now(), updated_at = now()
     WHERE user_id = $1 AND id = $2 AND archived_at IS NULL
     RETURNING ${COLUMNS}`,
    [userId, id],
  );
  return rows[0] ? toAgent(rows[0]) : null;
}
