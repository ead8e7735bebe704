import { z } from 'zod';
import { metaSection } from '../../../src/config/meta';

const parse = (env: Record<string, string | undefined>) => z.object(metaSection.shape).safeParse(env);

describe('meta config section', () => {
  it('when only the development secrets are given, then Graph defaults and a 5,000-message webhook queue apply', () => {
    expect(parse({ ...metaSection.devSecrets }).data).toEqual({
      META_APP_SECRET: 'dev-app-secret',
      META_VERIFY_TOKEN: 'dev-verify-token',
      META_GRAPH_API_URL: 'https://graph.facebook.com',
      INSTAGRAM_GRAPH_API_URL: 'https://graph.instagram.com',
      META_GRAPH_API_VERSION: 'v25.0',
      WEBHOOK_QUEUE_MAX: 5_000,
    });
  });

  it('when the secrets are missing, then they are required (index.ts fills development values outside production)', () => {
    expect(parse({}).error?.issues.map((issue) => issue.path[0]).sort()).toEqual(['META_APP_SECRET', 'META_VERIFY_TOKEN']);
    expect(Object.keys(metaSection.devSecrets ?? {})).toEqual(['META_APP_SECRET', 'META_VERIFY_TOKEN']);
  });

  it('when the Graph version or address is malformed, then each is refused by name', () => {
    const result = parse({ ...metaSection.devSecrets, META_GRAPH_API_VERSION: '25', INSTAGRAM_GRAPH_API_URL: 'ftp://x' });
    expect(result.error?.issues.map((issue) => issue.path[0]).sort()).toEqual(['INSTAGRAM_GRAPH_API_URL', 'META_GRAPH_API_VERSION']);
  });
});
