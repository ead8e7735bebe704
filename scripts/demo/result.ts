/** What a demo run returns: the data a person reads in the transcript and a test asserts on. */

export interface TranscriptMessage {
  sequenceNo: number;
  direction: 'inbound' | 'outbound';
  author: 'customer' | 'agent' | 'human';
  text: string | null;
  status: string;
  externalId: string | null;
  error?: { code: string; message: string | null };
}

export interface Transcript {
  conversationId: string;
  channel: 'whatsapp' | 'instagram';
  customer: { externalId: string; name: string | null };
  botPaused: boolean;
  messages: TranscriptMessage[];
}

export interface CreditsReport {
  balance: number;
  ledgerSum: number;
  /** Credits taken by charges (a positive number). */
  charged: number;
  entries: Array<{ amount: number; reason: string; messageId: string | null; conversationId: string | null; createdAt: string }>;
}

export type LeadReport =
  | { status: 'extracted'; conversationId: string; fields: Record<string, unknown>; summary: string | null; extractedAt: string }
  | { status: 'unavailable'; reason: string }
  | { status: 'timeout'; waitedMs: number }
  | { status: 'not_reached' };

/** The tenant events the business's receiver got, in arrival order. */
export type EventsReport = Array<{
  id: string;
  type: string;
  createdAt: string;
  channel: string | null;
  customer: string | null;
  /** The documented verifier accepted its X-Signature. */
  verified: boolean;
}>;

export interface DemoCheck {
  name: string;
  passed: boolean;
  detail: string;
}

/** The customers' message ids, so a reader (or a test) can find each scene in the transcripts. */
export interface DemoScenes {
  whatsappPhoneNumberId: string;
  firstQuestion: string;
  burst: string[];
  duplicate: string;
  instagram: string;
  benQuestion: string;
  benWhilePaused: string;
  benAfterResume: string;
  /** Cara's handoff keyword, and her message after the shop handed back to the bot. */
  caraHandoff: string;
  caraAfterHandBack: string;
  /** Dan's STOP. */
  optOut: string;
}

export interface DemoResult {
  ok: boolean;
  /** What failed, when something did. */
  error?: string;
  elapsedMs: number;
  database: string;
  redisPrefix: string;
  logFile: string;
  extractionAvailable: boolean;
  scenes: Partial<DemoScenes>;
  transcripts: Transcript[];
  credits: CreditsReport | null;
  lead: LeadReport;
  /** Tenant events the business's receiver got; absent when the run stopped before. */
  events?: EventsReport;
  /** Text messages Meta's Graph API (the stand-in) accepted. */
  graphTextSends: number;
  supervisorExitCode: number | null | undefined;
  checks: DemoCheck[];
}

export interface DemoOptions {
  /** Where the transcript goes, one line at a time; default stdout. */
  log?: (line: string) => void;
  /** Aborting stops the scenes and goes straight to the clean-up (Ctrl-C). */
  signal?: AbortSignal;
  /** How long to wait for the lead before reporting it missing. */
  extractionTimeoutMs?: number;
}
