import { z } from 'zod';
import { creditsSection, modelPrices } from '../../../src/config/credits';

describe('credits config section', () => {
  it('when nothing is set, then 1000 credits per 1K tokens and no per-model prices apply', () => {
    expect(z.object(creditsSection.shape).parse({})).toEqual({ CREDITS_PER_1K_TOKENS: 1000, MODEL_PRICES: {} });
  });

  it('when MODEL_PRICES is valid JSON, then each model has its input and output price', () => {
    expect(modelPrices.parse('{"a":{"input":1.5,"output":0}}')).toEqual({ a: { input: 1.5, output: 0 } });
  });

  it('when MODEL_PRICES is not JSON or a price is wrong, then the message says where', () => {
    expect(modelPrices.safeParse('{').error?.issues[0]?.message).toMatch(/^must be JSON/);
    expect(modelPrices.safeParse('{"a":{"input":-1,"output":1}}').error?.issues[0]?.message).toMatch(/^a\.input: /);
  });

  it('when credits per 1K tokens are negative, then they are refused', () => {
    expect(z.object(creditsSection.shape).safeParse({ CREDITS_PER_1K_TOKENS: '-1' }).success).toBe(false);
  });
});
