/** Meta's side: the app secret and verify token of the webhook, Graph's addresses, the webhook's queue. */
import { z } from 'zod';
import { defineSection, integer, url } from './parsers';

export const metaSection = defineSection({
  shape: {
    META_APP_SECRET: z.string().min(8, 'must be at least 8 characters'),
    META_VERIFY_TOKEN: z.string().min(8, 'must be at least 8 characters'),
    META_GRAPH_API_URL: url(['http:', 'https:']).default('https://graph.facebook.com'),
    INSTAGRAM_GRAPH_API_URL: url(['http:', 'https:']).default('https://graph.instagram.com'),
    META_GRAPH_API_VERSION: z.string().regex(/^v\d+\.\d+$/, 'must look like v25.0').default('v25.0'),
    /** Customer messages waiting to be written by the webhook; past it the webhook answers 503. */
    WEBHOOK_QUEUE_MAX: integer(1, 1_000_000).default(5_000),
  },
  devSecrets: {
    META_APP_SECRET: 'dev-app-secret',
    META_VERIFY_TOKEN: 'dev-verify-token',
  },
});
