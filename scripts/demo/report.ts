/** What the demo prints after the scenes: the conversations, the credits, the lead, the checks. */
import { clip, INTERRUPTED, secs } from './progress';
import type { DemoResult, Transcript } from './result';

export function customerLabel(transcript: Pick<Transcript, 'channel' | 'customer'>): string {
  const channel = transcript.channel === 'whatsapp' ? 'WhatsApp' : 'Instagram';
  const who = transcript.customer.name ?? `customer ${transcript.customer.externalId}`;
  return `${channel} · ${who}${transcript.customer.name ? ` (${transcript.customer.externalId})` : ''}`;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.replace(/\s+/g, ' ').trim().split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines;
}

function printTranscript(log: (line: string) => void, transcript: Transcript): void {
  const header = `── ${customerLabel(transcript)} ${transcript.botPaused ? '· bot paused ' : ''}`;
  log('');
  log(`  ${header}${'─'.repeat(Math.max(3, 88 - header.length))}`);
  const width = 64;
  for (const message of transcript.messages) {
    const error = message.error ? ` (${message.error.code})` : '';
    const lines = wrap(message.text ?? `[${message.direction}]`, width);
    lines.forEach((line, index) => {
      // The status sits on the first line, right of the text column.
      if (index === 0) log(`    ${message.author.padEnd(9)} ${line.padEnd(width)}  ${message.status}${error}`);
      else log(`    ${''.padEnd(9)} ${line}`);
    });
  }
}

export function printReport(log: (line: string) => void, result: DemoResult): void {
  log('');
  log('Conversations (GET /v1/conversations/:id/messages; status on the right)');
  for (const transcript of result.transcripts) printTranscript(log, transcript);

  const credits = result.credits;
  if (credits) {
    const labels = new Map(result.transcripts.map((t) => [t.conversationId, customerLabel(t)]));
    log('');
    log('Credits (GET /v1/credits/ledger, oldest first; 1 credit = 1 token at CREDITS_PER_1K_TOKENS=1000)');
    for (const entry of credits.entries) {
      const amount = `${entry.amount > 0 ? '+' : ''}${entry.amount}`;
      const what = entry.conversationId ? (labels.get(entry.conversationId) ?? entry.conversationId) : 'opening credits';
      log(`    ${amount.padStart(7)}  ${entry.reason.padEnd(11)} ${what}`);
    }
    log(`    charged ${credits.charged} credits in ${credits.entries.filter((e) => e.amount < 0).length} entries; balance ${credits.balance}, sum of the ledger ${credits.ledgerSum}`);
  }

  if (result.events) {
    log('');
    log('Events the business received (POST to its endpoint; signature checked with documentation/examples/verify-webhook.js)');
    const labels = new Map(result.transcripts.map((t) => [`${t.channel}:${t.customer.externalId}`, customerLabel(t)]));
    for (const event of result.events) {
      const who = event.customer ? (labels.get(`${event.channel}:${event.customer}`) ?? event.customer) : 'the account';
      log(`    ${event.verified ? '✓' : '✗'} ${event.type.padEnd(22)} ${who}`);
    }
  }

  log('');
  const lead = result.lead;
  if (lead.status === 'extracted') {
    const owner = result.transcripts.find((t) => t.conversationId === lead.conversationId);
    log(`Lead (GET /v1/conversations/:id/extraction, ${owner ? customerLabel(owner) : lead.conversationId})`);
    for (const [field, value] of Object.entries(lead.fields)) log(`    ${field.padEnd(10)} ${value === null ? '—' : clip(String(value), 100)}`);
    if (lead.summary && !('summary' in lead.fields)) log(`    ${'summary'.padEnd(10)} ${clip(lead.summary, 100)}`);
  } else if (lead.status === 'unavailable') {
    log(`Lead: the extraction worker is not available in this build (${lead.reason}), so no lead was extracted.`);
  } else if (lead.status === 'timeout') {
    log(`Lead: no extraction arrived within ${secs(lead.waitedMs)}; see ${result.logFile}`);
  }
}

export function printChecks(log: (line: string) => void, result: DemoResult): void {
  log('');
  log('Checks');
  for (const check of result.checks) log(`    ${check.passed ? '✓' : '✗'} ${check.name} (${check.detail})`);
}

export function printEpilogue(log: (line: string) => void, result: DemoResult): void {
  log('');
  const passed = result.checks.filter((check) => check.passed).length;
  if (!result.ok) {
    // The failing step and the product's last words are printed above; no tour after a failure.
    const verdict = result.error === INTERRUPTED ? 'Demo interrupted' : 'Demo FAILED';
    log(`${verdict} after ${secs(result.elapsedMs)} (${passed}/${result.checks.length} checks passed).`);
    return;
  }
  log(`Demo finished in ${secs(result.elapsedMs)}: ${passed}/${result.checks.length} checks passed. Product logs: ${result.logFile}`);
  log('');
  log('Go further, with real accounts:');
  log('  1. cp .env.example .env and set OPENAI_API_KEY; the other secrets have development defaults, and are required only with NODE_ENV=production');
  log('  2. npm start            (API on PORT, default 3000, with its workers)');
  log('  3. npm run seed         (a demo tenant with an API key), or POST /v1/users with your ADMIN_API_KEY');
  log("  4. In Meta's app dashboard, point the webhook at https://<your host>/webhooks/meta with your META_VERIFY_TOKEN");
  log('     and subscribe to messages; register your numbers with POST /v1/phone-numbers and their real access tokens');
  log('  5. Play a customer without a phone: npm run simulate -- --to <Meta phone_number_id, the number\'s external_id> --from 15550001111 --text "Hi"');
  log('  Or keep it offline: npm run start:offline runs the product against these stand-ins (see documentation/examples/)');
  log('  API reference: http://127.0.0.1:3000/docs (and /openapi.json)');
}
