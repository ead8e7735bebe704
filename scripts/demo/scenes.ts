/**
 * The scenes: a business set up through the REST API, then its customers, played with signed
 * webhooks in Meta's shapes, each scene a numbered step that waits for what a person would see
 * (a reply delivered, a status read). Then the lead, and everything read back as the business
 * would read it.
 */
import { instagramTextWebhook, newWamid, postSignedWebhook, whatsappStatusWebhook, whatsappTextWebhook, type WhatsAppStatus } from '../simulate';
import { ADMIN_API_KEY, ANA, BEN, CARA, DAN, DEBOUNCE_MS, HANDOFF_KEYWORDS, RESUME_AFTER_MINUTES, EXTRACTION_IDLE_SECONDS, INSTAGRAM_ACCOUNT, INSTAGRAM_CUSTOMER, META_APP_SECRET, SCRIPT, WHATSAPP_NUMBER } from './cast';
import { ApiClient, toTranscript, type ApiConversation, type ApiExtraction, type ApiLedgerEntry, type ApiMessage } from './api';
import { DELIVERED_STATUSES } from './checks';
import { standinAccessToken } from '../../tests/fixtures/standins/graphStandin';
import { Aborted, clip, describeError, secs, sleep, waitUntil, type Progress } from './progress';
import type { CreditsReport, DemoScenes, LeadReport, Transcript } from './result';

interface Tenant {
  userId: string;
  apiKey: string;
  whatsappId: string;
  instagramId: string;
}

/** The business, as its customers and its dashboard reach it: the helpers every scene uses. */
export class Shop {
  constructor(
    readonly api: ApiClient,
    readonly tenant: Tenant,
    private readonly baseUrl: string,
    readonly signal: AbortSignal | undefined,
  ) {}

  async sendWebhook(body: string): Promise<number> {
    if (this.signal?.aborted) throw new Aborted();
    const answer = await postSignedWebhook(this.baseUrl, body, META_APP_SECRET).catch((error: Error) => {
      if (this.signal?.aborted) throw new Aborted();
      throw new Error(`POST /webhooks/meta: ${describeError((error as { cause?: unknown }).cause ?? error)}`);
    });
    if (answer.status !== 200) throw new Error(`the webhook answered ${answer.status}: ${clip(answer.body, 200)}`);
    return answer.status;
  }

  /** A WhatsApp customer writes; resolves with the message's wamid. */
  async customerSays(customer: { waId: string; name: string }, text: string, messageId = newWamid()): Promise<string> {
    await this.sendWebhook(whatsappTextWebhook({ phoneNumberId: WHATSAPP_NUMBER, from: customer.waId, name: customer.name, text, id: messageId }));
    return messageId;
  }

  messagesOf(conversationId: string): Promise<ApiMessage[]> {
    return this.api.all<ApiMessage>(`/v1/conversations/${conversationId}/messages`, this.tenant.apiKey);
  }

  conversationOf(phoneNumberId: string, customer: string): Promise<ApiConversation> {
    return waitUntil(
      `the conversation with ${customer}`,
      async () => {
        const list = await this.api.all<ApiConversation>(`/v1/conversations?phone_number_id=${phoneNumberId}&is_active=true`, this.tenant.apiKey);
        return list.find((c) => c.customer.external_id === customer);
      },
      10_000,
      this.signal,
    );
  }

  /** The agent's reply to the customer message `externalId`, once Meta has accepted it. */
  replyTo(conversationId: string, externalId: string): Promise<ApiMessage> {
    return waitUntil(
      `the agent's reply to ${externalId}`,
      async () => {
        const messages = await this.messagesOf(conversationId);
        const index = messages.findIndex((m) => m.external_id === externalId && m.direction === 'inbound');
        const inbound = messages[index];
        if (!inbound) return undefined;
        if (['failed', 'insufficient_credits'].includes(inbound.status)) {
          throw new Error(`the customer's message ended ${inbound.status}${inbound.error ? ` (${inbound.error.code}: ${inbound.error.message})` : ''}`);
        }
        const reply = messages.slice(index + 1).find((m) => m.author === 'agent');
        if (reply?.status === 'failed') throw new Error(`the reply failed: ${reply.error?.code} ${reply.error?.message}`);
        return reply && DELIVERED_STATUSES.includes(reply.status) ? reply : undefined;
      },
      20_000,
      this.signal,
    );
  }
}

/** A tenant with credits, an agent, a WhatsApp number and an Instagram account, all through the API. */
export async function openTheShop(progress: Progress, baseUrl: string, signal: AbortSignal | undefined): Promise<Shop> {
  const api = new ApiClient(baseUrl, signal);
  const tenant = await progress.step(
    'Set up a business through the REST API: tenant with credits, agent, WhatsApp number, Instagram account',
    async (): Promise<Tenant> => {
      const created = await api.post<{ user: { id: string }; api_key: string }>('/v1/users', ADMIN_API_KEY, {
        name: 'Demo Shop',
        email: 'demo@example.com',
        credits: 10_000,
      });
      const key = created.api_key;
      const agent = await api.post<{ id: string }>('/v1/agents', key, {
        name: 'Shop assistant',
        system_prompt: 'You are the friendly shop assistant of Demo Shop, a small bag store. Answer briefly.',
        debounce_ms: DEBOUNCE_MS,
        fallback_message: 'Thanks for your message! A member of our team will get back to you shortly.',
        handoff_keywords: HANDOFF_KEYWORDS,
        resume_after_minutes: RESUME_AFTER_MINUTES,
      });
      const whatsapp = await api.post<{ id: string }>('/v1/phone-numbers', key, {
        channel: 'whatsapp',
        external_id: WHATSAPP_NUMBER,
        display_name: 'Demo Shop WhatsApp',
        // Verified with the Graph stand-in before it is stored, as Graph would verify a real one.
        access_token: standinAccessToken('whatsapp', WHATSAPP_NUMBER),
      });
      const instagram = await api.post<{ id: string }>('/v1/phone-numbers', key, {
        channel: 'instagram',
        external_id: INSTAGRAM_ACCOUNT,
        display_name: '@demoshop',
        access_token: standinAccessToken('instagram', INSTAGRAM_ACCOUNT),
      });
      for (const number of [whatsapp, instagram]) {
        await api.call('PUT', `/v1/phone-numbers/${number.id}/agent`, key, { body: { agent_id: agent.id } });
      }
      return { userId: created.user.id, apiKey: key, whatsappId: whatsapp.id, instagramId: instagram.id };
    },
    () => `"Demo Shop" with 10000 credits; agent "Shop assistant" (debounce ${DEBOUNCE_MS} ms) on WhatsApp ${WHATSAPP_NUMBER} and Instagram ${INSTAGRAM_ACCOUNT}`,
  );
  return new Shop(api, tenant, baseUrl, signal);
}

/** Ana's conversation, for the lead. */
export interface AnaConversation {
  conversation: ApiConversation;
}

/** The customers' scenes, in order; each records its message ids in `scenes`. */
export async function playCustomers(progress: Progress, shop: Shop, scenes: Partial<DemoScenes>): Promise<AnaConversation> {
  const ana = await progress.step(
    'Ana asks a question on WhatsApp (a signed webhook, as Meta sends it)',
    async () => {
      scenes.firstQuestion = await shop.customerSays(ANA, SCRIPT.firstQuestion);
      const conversation = await shop.conversationOf(shop.tenant.whatsappId, ANA.waId);
      const reply = await shop.replyTo(conversation.id, scenes.firstQuestion);
      return { conversation, reply };
    },
    ({ reply }) => `webhook 200; the agent answered: "${clip(reply.text)}"`,
  );

  await progress.step(
    "Meta reports the reply delivered, then read (its wamid read back from the API's external_id)",
    async () => {
      const wamid = ana.reply.external_id!;
      const status = (value: WhatsAppStatus) =>
        shop.sendWebhook(whatsappStatusWebhook({ phoneNumberId: WHATSAPP_NUMBER, wamid, status: value, recipientId: ANA.waId }));
      await status('delivered');
      await status('read');
      // Meta does not promise order: a late "delivered" must not take the message back.
      await status('delivered');
      return waitUntil(
        'the reply to be read',
        async () => (await shop.messagesOf(ana.conversation.id)).find((m) => m.id === ana.reply.id && m.status === 'read'),
        5_000,
        shop.signal,
      );
    },
    (reply) => `${clip(reply.external_id, 28)} is "${reply.status}" (a late "delivered" did not move it back)`,
  );

  await progress.step(
    `Ana sends 3 messages in quick succession (the agent waits ${DEBOUNCE_MS} ms for quiet)`,
    async () => {
      const began = Date.now();
      scenes.burst = [];
      for (const [index, text] of SCRIPT.burst.entries()) {
        // Quick typing; the gaps stay far below the debounce even on a loaded machine.
        if (index > 0) await sleep(150, shop.signal);
        scenes.burst.push(await shop.customerSays(ANA, text));
      }
      const spread = Date.now() - began;
      const reply = await shop.replyTo(ana.conversation.id, scenes.burst.at(-1)!);
      return { spread, reply };
    },
    ({ spread, reply }) => `3 messages within ${secs(spread)} → one reply: "${clip(reply.text, 70)}"`,
  );

  await progress.step(
    'Meta delivers Ana’s next message twice (a retry of the same webhook)',
    async () => {
      scenes.duplicate = newWamid();
      const body = whatsappTextWebhook({ phoneNumberId: WHATSAPP_NUMBER, from: ANA.waId, name: ANA.name, text: SCRIPT.duplicate, id: scenes.duplicate });
      // Both at once, as Meta's retries can be: the database, not timing, makes it one message.
      await Promise.all([shop.sendWebhook(body), shop.sendWebhook(body)]);
      return shop.replyTo(ana.conversation.id, scenes.duplicate);
    },
    (reply) => `both deliveries answered 200; stored once, one reply: "${clip(reply.text, 60)}"`,
  );

  await progress.step(
    'A customer writes to the shop on Instagram',
    async () => {
      const body = instagramTextWebhook({ accountId: INSTAGRAM_ACCOUNT, igsid: INSTAGRAM_CUSTOMER, text: SCRIPT.instagram });
      scenes.instagram = (JSON.parse(body) as { entry: Array<{ messaging: Array<{ message: { mid: string } }> }> }).entry[0]!.messaging[0]!.message.mid;
      await shop.sendWebhook(body);
      const conversation = await shop.conversationOf(shop.tenant.instagramId, INSTAGRAM_CUSTOMER);
      return shop.replyTo(conversation.id, scenes.instagram);
    },
    (reply) => `the agent answered on Instagram: "${clip(reply.text)}"`,
  );

  const ben = await progress.step(
    'Ben asks for a refund on WhatsApp; the bot answers first',
    async () => {
      scenes.benQuestion = await shop.customerSays(BEN, SCRIPT.benQuestion);
      const conversation = await shop.conversationOf(shop.tenant.whatsappId, BEN.waId);
      const reply = await shop.replyTo(conversation.id, scenes.benQuestion);
      return { conversation, reply };
    },
    ({ reply }) => `the agent answered: "${clip(reply.text)}"`,
  );

  await progress.step(
    'A person at the shop takes over: POST /v1/conversations/:id/messages',
    async () => {
      const human = await shop.api.post<ApiMessage>(`/v1/conversations/${ben.conversation.id}/messages`, shop.tenant.apiKey, { text: SCRIPT.human });
      const conversation = await shop.api.get<ApiConversation>(`/v1/conversations/${ben.conversation.id}`, shop.tenant.apiKey);
      if (!conversation.bot_paused) throw new Error('the conversation is not paused after a human wrote');
      return waitUntil(
        "the human's message to go out",
        async () => (await shop.messagesOf(ben.conversation.id)).find((m) => m.id === human.id && DELIVERED_STATUSES.includes(m.status)),
        10_000,
        shop.signal,
      );
    },
    (human) => `202; the bot is paused; Maria's message was ${human.status} through WhatsApp`,
  );

  await progress.step(
    'Ben writes again while a human has the conversation',
    async () => {
      scenes.benWhilePaused = await shop.customerSays(BEN, SCRIPT.benWhilePaused);
      // Filed is decided: a message filed while the bot is paused is stored `ignored`, never
      // answered. (That no reply follows it is checked at the end, after the next one's reply.)
      const { messages, index } = await waitUntil(
        "Ben's message to be filed",
        async () => {
          const messages = await shop.messagesOf(ben.conversation.id);
          const index = messages.findIndex((m) => m.external_id === scenes.benWhilePaused);
          return index >= 0 && messages[index]!.status !== 'pending' ? { messages, index } : undefined;
        },
        10_000,
        shop.signal,
      );
      const botReplies = messages.slice(index + 1).filter((m) => m.author === 'agent');
      if (botReplies.length > 0) throw new Error(`the bot answered a paused conversation: "${clip(botReplies[0]!.text)}"`);
      return messages[index]!.status;
    },
    (status) => `stored as "${status}": the bot will not answer it`,
  );

  await progress.step(
    'The shop hands back to the bot (POST /v1/conversations/:id/resume); Ben asks one more thing',
    async () => {
      await shop.api.post(`/v1/conversations/${ben.conversation.id}/resume`, shop.tenant.apiKey);
      scenes.benAfterResume = await shop.customerSays(BEN, SCRIPT.benAfterResume);
      return shop.replyTo(ben.conversation.id, scenes.benAfterResume);
    },
    (reply) => `the bot is back: "${clip(reply.text)}"`,
  );

  await handoffAndHandBack(progress, shop, scenes);
  await optOut(progress, shop, scenes);
  return ana;
}

/** Waits until the customer message `externalId` is filed (no longer pending); returns it and the conversation's messages. */
async function filed(shop: Shop, conversationId: string, externalId: string): Promise<{ message: ApiMessage; messages: ApiMessage[] }> {
  return waitUntil(
    `message ${externalId} to be filed`,
    async () => {
      const messages = await shop.messagesOf(conversationId);
      const message = messages.find((m) => m.external_id === externalId);
      return message && message.status !== 'pending' ? { message, messages } : undefined;
    },
    10_000,
    shop.signal,
  );
}

/** Cara asks for a person with a handoff keyword; a person answers; the shop hands back to the bot. */
async function handoffAndHandBack(progress: Progress, shop: Shop, scenes: Partial<DemoScenes>): Promise<void> {
  const cara = await progress.step(
    `Cara asks for a person: "${SCRIPT.caraHandoff.trim()}" is one of the agent's handoff_keywords`,
    async () => {
      scenes.caraHandoff = await shop.customerSays(CARA, SCRIPT.caraHandoff);
      const conversation = await shop.conversationOf(shop.tenant.whatsappId, CARA.waId);
      const { message } = await filed(shop, conversation.id, scenes.caraHandoff);
      const now = await shop.api.get<ApiConversation>(`/v1/conversations/${conversation.id}`, shop.tenant.apiKey);
      if (now.paused_by !== 'keyword') throw new Error(`the keyword did not pause the bot (paused_by ${String(now.paused_by)})`);
      return { conversation: now, status: message.status };
    },
    ({ conversation, status }) => `stored "${status}", no bot reply; bot_paused ${conversation.bot_paused}, paused_by "${conversation.paused_by}"`,
  );

  await progress.step(
    `A person answers Cara; the agent's resume_after_minutes (${RESUME_AFTER_MINUTES}) sets when the bot would take back by itself`,
    async () => {
      await shop.api.post<ApiMessage>(`/v1/conversations/${cara.conversation.id}/messages`, shop.tenant.apiKey, { text: SCRIPT.caraHuman });
      const now = await shop.api.get<ApiConversation>(`/v1/conversations/${cara.conversation.id}`, shop.tenant.apiKey);
      if (now.paused_by !== 'human' || !now.resumes_at) throw new Error(`expected a human's pause with a resume time, got ${now.paused_by} / ${String(now.resumes_at)}`);
      return now;
    },
    (now) => `paused_by "${now.paused_by}", resumes_at ${now.resumes_at} (each human message restarts the clock)`,
  );

  await progress.step(
    'The shop hands back to the bot now (POST /v1/conversations/:id/resume); Cara asks something',
    async () => {
      const resumed = await shop.api.post<ApiConversation>(`/v1/conversations/${cara.conversation.id}/resume`, shop.tenant.apiKey);
      scenes.caraAfterHandBack = await shop.customerSays(CARA, SCRIPT.caraAfterHandBack);
      return { resumed, reply: await shop.replyTo(cara.conversation.id, scenes.caraAfterHandBack) };
    },
    ({ resumed, reply }) => `paused_by ${String(resumed.paused_by)}, resumes_at ${String(resumed.resumes_at)}; the bot answered: "${clip(reply.text, 60)}"`,
  );
}

/** Dan texts STOP: opted out on the number, one free confirmation, and the shop can no longer write to him. */
async function optOut(progress: Progress, shop: Shop, scenes: Partial<DemoScenes>): Promise<void> {
  await progress.step(
    'Dan texts STOP: he is opted out on this number and gets one confirmation, free',
    async () => {
      scenes.optOut = await shop.customerSays(DAN, SCRIPT.danOptOut);
      const conversation = await shop.conversationOf(shop.tenant.whatsappId, DAN.waId);
      const confirmation = await waitUntil(
        'the opt-out confirmation to go out',
        async () => {
          const messages = await shop.messagesOf(conversation.id);
          const index = messages.findIndex((m) => m.external_id === scenes.optOut);
          const reply = index < 0 ? undefined : messages.slice(index + 1).find((m) => m.author === 'agent');
          return reply && DELIVERED_STATUSES.includes(reply.status) ? reply : undefined;
        },
        10_000,
        shop.signal,
      );
      const refused = await shop.api.call<{ error: { code: string } }>('POST', `/v1/conversations/${conversation.id}/messages`, shop.tenant.apiKey, {
        body: { text: SCRIPT.shopToDan },
        expect: [409],
      });
      const now = await shop.api.get<ApiConversation>(`/v1/conversations/${conversation.id}`, shop.tenant.apiKey);
      if (!now.opted_out) throw new Error('the conversation does not show opted_out');
      return { confirmation, refused: refused.body.error.code };
    },
    ({ confirmation, refused }) => `"${clip(confirmation.text, 70)}"; opted_out true; the shop's own message is 409 ${refused}`,
  );
}

/** Asks for Ana's lead and waits for one that saw her whole conversation; a timeout is reported, not thrown. */
export async function extractLead(progress: Progress, shop: Shop, ana: AnaConversation, timeoutMs: number): Promise<LeadReport> {
  const began = Date.now();
  try {
    return await progress.step(
      `Extract Ana's lead: POST /v1/conversations/:id/extract, then poll GET …/extraction (idle extraction after ${EXTRACTION_IDLE_SECONDS} s may come first)`,
      async (): Promise<LeadReport> => {
        const lastSequenceNo = (await shop.messagesOf(ana.conversation.id)).at(-1)?.sequence_no ?? 0;
        await shop.api.post(`/v1/conversations/${ana.conversation.id}/extract`, shop.tenant.apiKey);
        const extraction = await waitUntil(
          'the extraction',
          async () => {
            const answer = await shop.api.call<ApiExtraction>('GET', `/v1/conversations/${ana.conversation.id}/extraction`, shop.tenant.apiKey, { expect: [200, 404] });
            // Only one that saw the whole conversation counts as Ana's lead.
            return answer.status === 200 && answer.body.up_to_sequence_no >= lastSequenceNo ? answer.body : undefined;
          },
          timeoutMs,
          shop.signal,
        );
        return { status: 'extracted', conversationId: extraction.conversation_id, fields: extraction.fields, summary: extraction.summary, extractedAt: extraction.extracted_at };
      },
      (lead) => (lead.status === 'extracted' ? `${Object.keys(lead.fields).length} fields extracted` : lead.status),
    );
  } catch (error) {
    // A missing lead is a failed check, not a reason to hide the transcripts and credits.
    if (shop.signal?.aborted) throw error;
    return { status: 'timeout', waitedMs: Date.now() - began };
  }
}

/** What the business sees: every conversation's transcript, and the ledger with its balance. */
export function readBack(progress: Progress, shop: Shop): Promise<{ transcripts: Transcript[]; credits: CreditsReport }> {
  return progress.step(
    'Read everything back through the API: conversations, messages, ledger, balance',
    async () => {
      const conversations = await shop.api.all<ApiConversation>('/v1/conversations', shop.tenant.apiKey);
      conversations.sort((a, b) => a.created_at.localeCompare(b.created_at));
      const transcripts = await Promise.all(conversations.map(async (c) => toTranscript(c, await shop.messagesOf(c.id))));
      // Idle extractions may still be charging: read the ledger between two equal balances,
      // so the two describe the same moment.
      const balance = () => shop.api.get<{ credit_balance: number }>('/v1/me', shop.tenant.apiKey).then((me) => me.credit_balance);
      const { ledger, steady } = await waitUntil(
        'a steady credit balance',
        async () => {
          const before = await balance();
          const entries = await shop.api.all<ApiLedgerEntry>('/v1/credits/ledger', shop.tenant.apiKey);
          const after = await balance();
          return before === after ? { ledger: entries, steady: after } : undefined;
        },
        10_000,
        shop.signal,
      );
      const entries = ledger.reverse().map((e) => ({ amount: e.amount, reason: e.reason, messageId: e.message_id, conversationId: e.conversation_id, createdAt: e.created_at }));
      const credits: CreditsReport = {
        balance: steady,
        ledgerSum: entries.reduce((sum, e) => sum + e.amount, 0),
        charged: -entries.filter((e) => e.amount < 0).reduce((sum, e) => sum + e.amount, 0),
        entries,
      };
      return { transcripts, credits };
    },
    ({ transcripts, credits }) => `${transcripts.length} conversations, ${credits.entries.length} ledger entries`,
  );
}
