import { z } from 'zod';
import { redisSection } from '../../../src/config/redis';

const parse = (env: Record<string, string>) => z.object(redisSection.shape).safeParse(env);

describe('redis config section', () => {
  it('when nothing is set, then one local server, the mca: prefix, one stream shard and a 300 s cache apply', () => {
    expect(parse({}).data).toEqual({ REDIS_URL: 'redis://127.0.0.1:6379/0', REDIS_KEY_PREFIX: 'mca:', STREAM_SHARDS: 1, CACHE_TTL_SECONDS: 300 });
  });

  it('when cluster nodes are listed, then they become host/port pairs; a malformed list is refused', () => {
    expect(parse({ REDIS_CLUSTER_NODES: 'a:7000,10.0.0.2:7001' }).data?.REDIS_CLUSTER_NODES).toEqual([
      { host: 'a', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
    ]);
    expect(parse({ REDIS_CLUSTER_NODES: 'a:7000, b' }).success).toBe(false);
  });

  it('when the prefix has a hash-tag brace, a URL is not Redis or the cache lifetime is 0, then each is refused by name', () => {
    const result = parse({ REDIS_KEY_PREFIX: 'x{', REDIS_URL: 'http://r', CACHE_TTL_SECONDS: '0' });
    expect(result.error?.issues.map((issue) => issue.path[0]).sort()).toEqual(['CACHE_TTL_SECONDS', 'REDIS_KEY_PREFIX', 'REDIS_URL']);
  });
});
