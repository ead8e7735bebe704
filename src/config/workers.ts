/** Background workers: how many, how busy, their leases, heartbeats, sweeps and retries. */
import { defineSection, integer } from './parsers';

export const workersSection = defineSection({
  shape: {
    EXTRACTION_IDLE_SECONDS: integer(1, 30 * 24 * 3600).default(600),
    MESSAGE_WORKERS: integer(0, 64).default(1),
    EXTRACTION_WORKERS: integer(0, 64).default(1),
    /** `npm start` scales message workers between MESSAGE_WORKERS and this, on the queue's backlog. */
    MESSAGE_WORKERS_MAX: integer(0, 64).default(4),
    /** How often workers heartbeat; one silent for 6 beats is stuck (the supervisor replaces it). */
    WORKER_HEARTBEAT_MS: integer(50, 600_000).default(5_000),
    /** How often the supervisor reads the backlog and the heartbeats to scale and to find stuck workers. */
    SUPERVISOR_CHECK_MS: integer(50, 600_000).default(5_000),
    WORKER_CONCURRENCY: integer(1, 10_000).default(50),
    /** A worker's hold on a conversation and on a stream entry; a dead worker's work is taken over after it. */
    WORKER_LEASE_MS: integer(200, 600_000).default(30_000),
    /** A worker process answers GET /healthz here, from its heartbeat (orchestrators' liveness); unset, none: `npm start` runs several workers on one host. */
    WORKER_HEALTH_PORT: integer(1, 65535).optional(),
    /** How often a worker looks for accepted messages that nobody is answering (lost nudges). */
    SWEEPER_INTERVAL_MS: integer(100, 3_600_000).default(15_000),
    /**
     * A send whose worker died (or got no answer) between Graph and our record is in doubt: it
     * waits this long for Meta's status (WhatsApp, by biz_opaque_callback_data) or echo
     * (Instagram) to say it went out, before it is sent again (CONTRACT §2).
     */
    SEND_IN_DOUBT_GRACE_MS: integer(0, 600_000).default(15_000),
    /**
     * A customer message older than this (by Meta's timestamp) when it could first be answered is
     * kept `stale`, unanswered and uncharged; a queued bot reply to it is cancelled (Meta's 24 h
     * window). Transient failures are retried for as long as this allows (CONTRACT §2, guarantee 12).
     */
    STALE_MESSAGE_SECONDS: integer(1, 30 * 24 * 3600).default(86_400),
    /** First back-off after a transient model or Graph failure of a turn; doubled per failure in a row, with jitter. */
    RETRY_BACKOFF_BASE_MS: integer(1, 600_000).default(1_000),
    /** The longest back-off between two tries of a turn that failed transiently (a hint from Meta or OpenAI may ask longer). */
    RETRY_BACKOFF_MAX_MS: integer(10, 3_600_000).default(60_000),
    /** Turns a message may take (each a model call with its own retries) before it is failed. */
    MESSAGE_MAX_ATTEMPTS: integer(1, 100).default(8),
  },
});
