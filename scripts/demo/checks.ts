/**
 * The demo's verdicts, computed from the transcripts it read back through the API (never from
 * what the scenes believed happened), so a run that only claimed success fails its checks.
 */
import { SCRIPT } from './cast';
import { secs } from './progress';
import type { DemoCheck, DemoResult, Transcript, TranscriptMessage } from './result';

/** The agent's messages that answer `externalId`: those after it, up to the next customer message. */
export function agentRepliesAfter(transcript: Transcript, externalId: string): TranscriptMessage[] {
  const index = transcript.messages.findIndex((m) => m.direction === 'inbound' && m.externalId === externalId);
  if (index < 0) return [];
  const replies: TranscriptMessage[] = [];
  for (const message of transcript.messages.slice(index + 1)) {
    if (message.direction === 'inbound') break;
    if (message.author === 'agent') replies.push(message);
  }
  return replies;
}

export const DELIVERED_STATUSES = ['sent', 'delivered', 'read'];

export function computeChecks(result: DemoResult): DemoCheck[] {
  const { scenes, transcripts, credits, lead } = result;
  const checks: DemoCheck[] = [];
  const add = (name: string, passed: boolean, detail: string) => checks.push({ name, passed, detail });
  const find = (externalId: string | undefined) => transcripts.find((t) => t.messages.some((m) => m.externalId === externalId && m.direction === 'inbound'));
  const repliesTo = (externalId: string | undefined) => {
    const transcript = externalId ? find(externalId) : undefined;
    return transcript && externalId ? agentRepliesAfter(transcript, externalId) : [];
  };
  if (result.error !== undefined && transcripts.length === 0) {
    add('the demo ran to the end', false, result.error);
    return checks;
  }

  const first = repliesTo(scenes.firstQuestion);
  add('the first question got exactly one reply', first.length === 1, `${first.length} agent message(s) after it`);

  const burstReplies = repliesTo(scenes.burst?.at(-1));
  const burstGaps = (scenes.burst ?? []).slice(0, -1).reduce((n, id) => n + repliesTo(id).length, 0);
  const burstText = (burstReplies[0]?.text ?? '').toLowerCase();
  const allWords = SCRIPT.burst.every((text) => text.toLowerCase().split(/\s+/).every((word) => burstText.includes(word)));
  add(
    'the burst of 3 messages got one reply that takes all of them into account',
    burstReplies.length === 1 && burstGaps === 0 && allWords,
    `${burstReplies.length} reply after the burst, ${burstGaps} in between, all words quoted: ${allWords}`,
  );

  const copies = transcripts.flatMap((t) => t.messages).filter((m) => m.externalId === scenes.duplicate && m.direction === 'inbound').length;
  const duplicateReplies = repliesTo(scenes.duplicate);
  add('the message Meta delivered twice was stored once and answered once', copies === 1 && duplicateReplies.length === 1, `${copies} stored, ${duplicateReplies.length} reply`);

  const firstStatus = first[0]?.status;
  add('the first reply’s status reached "read"', firstStatus === 'read', `status ${firstStatus ?? 'none'}`);

  const instagram = repliesTo(scenes.instagram);
  add(
    'the Instagram customer got a reply',
    instagram.length === 1 && DELIVERED_STATUSES.includes(instagram[0]!.status),
    `${instagram.length} reply, ${instagram[0]?.status ?? 'none'}`,
  );

  const benTranscript = find(scenes.benWhilePaused);
  const human = benTranscript?.messages.find((m) => m.author === 'human');
  const paused = scenes.benWhilePaused ? repliesTo(scenes.benWhilePaused) : [];
  const pausedStatus = benTranscript?.messages.find((m) => m.externalId === scenes.benWhilePaused)?.status;
  add(
    "after the human took over, the customer's next message got no bot reply",
    human !== undefined && DELIVERED_STATUSES.includes(human.status) && paused.length === 0 && pausedStatus === 'ignored',
    `human message ${human?.status ?? 'missing'}; customer message ${pausedStatus ?? 'missing'} with ${paused.length} bot reply`,
  );
  const resumed = repliesTo(scenes.benAfterResume);
  add('after resuming, the bot answered again', resumed.length === 1, `${resumed.length} reply`);

  const handoff = repliesTo(scenes.caraHandoff);
  const handoffStatus = find(scenes.caraHandoff)?.messages.find((m) => m.externalId === scenes.caraHandoff)?.status;
  add('a handoff keyword paused the bot: no reply to it', handoff.length === 0 && handoffStatus === 'ignored', `${handoffStatus ?? 'missing'}, ${handoff.length} bot reply`);
  const handedBack = repliesTo(scenes.caraAfterHandBack);
  add('after the hand-back, the bot answered the customer again', handedBack.length === 1, `${handedBack.length} reply`);

  // The confirmation is the agent's, but free: no model call, no charge.
  const optOutConfirmations = repliesTo(scenes.optOut);
  add(
    'the customer who opted out got one confirmation and nothing else',
    optOutConfirmations.length === 1 && DELIVERED_STATUSES.includes(optOutConfirmations[0]!.status) && find(scenes.optOut)?.messages.at(-1)?.author === 'agent',
    `${optOutConfirmations.length} confirmation, ${optOutConfirmations[0]?.status ?? 'none'}`,
  );

  const outbound = transcripts.flatMap((t) => t.messages).filter((m) => m.direction === 'outbound');
  add(
    "Meta's Graph API got exactly one send per outbound message",
    result.graphTextSends === outbound.length,
    `${result.graphTextSends} text sends for ${outbound.length} outbound messages`,
  );

  if (credits) {
    const agentReplies = outbound.filter((m) => m.author === 'agent').length - optOutConfirmations.length;
    const replyCharges = credits.entries.filter((e) => e.reason === 'reply').length;
    add('credits were charged, one ledger entry per reply', credits.charged > 0 && replyCharges === agentReplies, `${credits.charged} credits; ${replyCharges} reply charges for ${agentReplies} replies`);
    add('the balance equals the sum of the ledger', credits.balance === credits.ledgerSum, `${credits.balance} vs ${credits.ledgerSum}`);
  } else add('credits were read back', false, 'no ledger');

  if (lead.status === 'unavailable') add('lead extraction: the extraction worker is not available, notice printed', true, lead.reason);
  else add('a lead was extracted from the conversation', lead.status === 'extracted', lead.status === 'timeout' ? `none within ${secs(lead.waitedMs)}` : lead.status);

  if (result.events) {
    const events = result.events;
    const verified = events.filter((e) => e.verified).length;
    const ids = new Set(events.map((e) => e.id)).size;
    add(
      'the business received its events, each signed and verified with the documented verifier',
      events.length > 0 && verified === events.length && events.some((e) => e.type === 'message.answered'),
      `${events.length} events (${ids} distinct), ${verified} verified`,
    );
  }

  add('the product stopped cleanly (supervisor exit 0)', result.supervisorExitCode === 0, `exit ${String(result.supervisorExitCode)}`);
  return checks;
}
