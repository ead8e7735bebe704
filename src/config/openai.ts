/** The model provider: key, address (any OpenAI-compatible API), default model, timeout. */
import { z } from 'zod';
import { defineSection, integer, url } from './parsers';

export const openaiSection = defineSection({
  shape: {
    OPENAI_API_KEY: z.string().min(1).optional(),
    OPENAI_BASE_URL: url(['http:', 'https:']).default('https://api.openai.com/v1'),
    OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
    OPENAI_TIMEOUT_MS: integer(100, 600_000).default(30_000),
  },
});
