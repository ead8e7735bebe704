/** Tenant events: the processes that deliver them and where their endpoints may point. */
import { defineSection, flag, integer } from './parsers';

export const eventsSection = defineSection({
  shape: {
    /** Processes `npm start` runs that deliver tenant events (`npm run start:worker -- events`). */
    EVENT_WORKERS: integer(0, 64).default(1),
    /**
     * Whether tenant event endpoints may resolve to private, loopback or link-local addresses.
     * Unset: true in development and tests, false in production (index.ts resolves it).
     */
    WEBHOOK_ALLOW_PRIVATE_URLS: flag.optional(),
  },
});
