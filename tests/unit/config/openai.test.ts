import { z } from 'zod';
import { openaiSection } from '../../../src/config/openai';

const parse = (env: Record<string, string>) => z.object(openaiSection.shape).safeParse(env);

describe('openai config section', () => {
  it('when nothing is set, then OpenAI itself, gpt-4o-mini and a 30 s timeout apply, with no key', () => {
    expect(parse({}).data).toEqual({ OPENAI_BASE_URL: 'https://api.openai.com/v1', OPENAI_MODEL: 'gpt-4o-mini', OPENAI_TIMEOUT_MS: 30_000 });
  });

  it('when a compatible API is given, then its address, model and key are kept', () => {
    expect(parse({ OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_MODEL: 'local', OPENAI_API_KEY: 'sk-x' }).data).toMatchObject({
      OPENAI_BASE_URL: 'http://127.0.0.1:9/v1',
      OPENAI_MODEL: 'local',
      OPENAI_API_KEY: 'sk-x',
    });
  });

  it('when the timeout is below 100 ms or the address not http(s), then each is refused by name', () => {
    expect(parse({ OPENAI_TIMEOUT_MS: '99', OPENAI_BASE_URL: 'file:///x' }).error?.issues.map((issue) => issue.path[0]).sort()).toEqual([
      'OPENAI_BASE_URL',
      'OPENAI_TIMEOUT_MS',
    ]);
  });
});
