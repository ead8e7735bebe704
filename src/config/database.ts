/** Postgres: where it is, how many connections, how long a statement may run, migrations at start. */
import { defineSection, flag, integer, url } from './parsers';

export const databaseSection = defineSection({
  shape: {
    DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/multichannel_agent'),
    // Sized for WORKER_CONCURRENCY turns sharing one pool; Postgres allows 100 connections by default.
    DATABASE_POOL_SIZE: integer(1, 200).default(20),
    /** Longest a statement of the API or a worker may run before Postgres cancels it; 0 = no limit. */
    DATABASE_STATEMENT_TIMEOUT_MS: integer(0, 3_600_000).default(30_000),
    MIGRATE_ON_START: flag.default(true),
  },
});
