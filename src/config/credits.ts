/** What a turn costs: the flat price per 1K tokens and optional per-model prices. */
import { z } from 'zod';
import { defineSection, integer } from './parsers';

const price = z.number().finite().min(0).max(1_000_000_000);

/** `MODEL_PRICES`: a JSON object of model name → credits per 1K input and output tokens. */
export const modelPrices = z.string().transform((value, ctx) => {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be JSON: {"<model>": {"input": <credits per 1K>, "output": <credits per 1K>}}' });
    return z.NEVER;
  }
  const parsed = z.record(z.string().min(1), z.object({ input: price, output: price }).strict()).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    ctx.addIssue({ code: 'custom', message: `${issue.path.join('.') || 'value'}: ${issue.message}` });
    return z.NEVER;
  }
  return parsed.data as Readonly<Record<string, { readonly input: number; readonly output: number }>>;
});

export const creditsSection = defineSection({
  shape: {
    CREDITS_PER_1K_TOKENS: integer(0, 1_000_000_000).default(1000),
    /**
     * Per-model prices, JSON `{ "<model>": { "input": <credits per 1K prompt tokens>, "output": <credits
     * per 1K completion tokens> } }`; when set, agents may use only these models (CONTRACT §2).
     */
    MODEL_PRICES: modelPrices.default({}),
  },
});
