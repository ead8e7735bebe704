/**
 * The cast and the set of the demo: the shop's accounts, its customers, what they say, and the
 * stand-in model's voice. Everything the scenes and the checks agree on lives here.
 */
import { trailingUserText, type ChatRequestBody } from '../../tests/fixtures/standins/openaiStandin';

/** The product's development defaults, set explicitly so a developer's `.env` cannot change them. */
export const ADMIN_API_KEY = 'dev-admin-key';
export const META_APP_SECRET = 'dev-app-secret';

export const DEBOUNCE_MS = 1_500;
export const MODEL_LATENCY_MS = 300;
export const EXTRACTION_IDLE_SECONDS = 3;
/**
 * Test suites FLUSHDB Redis database 0 (and the benches use 12); a logical database of the
 * demo's own keeps a concurrent `npm test` from wiping its streams mid-run.
 */
export const DEMO_REDIS_DB = 11;

/** The ids of the shared Meta fixtures, so the demo's webhooks look like the real samples. */
export const WHATSAPP_NUMBER = '109876543210123';
export const INSTAGRAM_ACCOUNT = '17841455500000001';

export const ANA = { waId: '15550001111', name: 'Ana Silva' };
export const BEN = { waId: '15550002222', name: 'Ben Carter' };
export const CARA = { waId: '15550003333', name: 'Cara Diaz' };
export const DAN = { waId: '15550004444', name: 'Dan Evans' };
/** The agent's handoff_keywords: a customer message equal to one asks for a person. */
export const HANDOFF_KEYWORDS = ['talk to a human', 'human'];
/** The agent's resume_after_minutes: a human's pause ends by itself after this long without a human message. */
export const RESUME_AFTER_MINUTES = 30;
export const INSTAGRAM_CUSTOMER = '6021000000000011';

export const SCRIPT = {
  firstQuestion: 'Hi! Do you have the blue tote bag in stock?',
  burst: ["I'd like to order two", 'one of them in navy blue', 'and can you deliver to Lisbon?'],
  duplicate: 'My name is Ana Silva, my email is ana.silva@example.com and my phone is +351 912 345 678',
  instagram: 'Hi! Is the blue tote bag still available?',
  benQuestion: 'Hello, my bag arrived with a broken strap. Can I get a refund?',
  human: "Hi Ben, this is Maria from Demo Shop. I'm so sorry! I'll arrange your refund myself today.",
  benWhilePaused: 'Thank you Maria, that is very kind!',
  benAfterResume: 'One more thing: do you deliver on Saturdays?',
  caraHandoff: '  Talk to a HUMAN ',
  caraHuman: "Hi Cara, I'm Leo from Demo Shop. The bot will take it from here; just ask!",
  caraAfterHandBack: 'Great, do you deliver to Porto?',
  danOptOut: 'STOP',
  shopToDan: 'Hi Dan, we have a new collection!',
};

/**
 * The stand-in model's voice: a deterministic shop assistant that quotes what the customer just
 * said (every message since its last answer, so a debounced burst shows up whole) and adds a
 * canned line for what it recognises.
 */
export function shopAssistantReply(request: ChatRequestBody): string {
  const said = trailingUserText(request.messages ?? []).replace(/\s+/g, ' ').trim();
  const lower = said.toLowerCase();
  const name = /\b[Mm]y name is\s+(\p{Lu}\p{L}+)/u.exec(said)?.[1];
  const parts = [name ? `Nice to meet you, ${name}!` : 'Hi, thanks for writing to Demo Shop!'];
  // Instagram takes 1000 bytes a message: keep the quote short enough for any channel.
  parts.push(`You said: "${said.length > 300 ? `${said.slice(0, 297)}...` : said}".`);
  if (/\b(tote|bag|stock|available)\b/.test(lower) && !/\brefund\b/.test(lower)) parts.push('Yes, the blue tote bag is in stock at €29.');
  if (/\b(order|buy|reserve)\b/.test(lower)) parts.push('I can reserve them for you right away.');
  if (/\b(deliver|delivery|ship|shipping)\b/.test(lower)) parts.push('We deliver in 2–3 working days, Saturdays included.');
  if (/\b(refund|return|broken|damaged)\b/.test(lower)) parts.push('I am sorry to hear that; a colleague will take care of it.');
  if (name) parts.push('I have noted your details.');
  if (parts.length === 2) parts.push('How else can I help?');
  return parts.join(' ');
}
