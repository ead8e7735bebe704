/**
 * What the end-to-end benches (pipeline, chaos) stand on: a throwaway database, a Redis key
 * prefix, and the OpenAI and Graph stand-ins in the bench's own process, each undone by
 * `cleanup`. Apart from lib.ts because the stand-ins load product code that lib.ts keeps out.
 */
import { startOpenAIStandin, type OpenAIStandin } from '../fixtures/standins/openaiStandin';
import { startGraphStandin, type GraphStandin } from '../fixtures/standins/graphStandin';
import { benchRedis, createBenchDatabase, deleteKeysWithPrefix, randomTag, type BenchDatabase, type Cleanup } from './lib';

export interface BenchStage {
  /** Every Redis key of the run starts with it (deleted at the end). */
  prefix: string;
  /** The product processes' own prefix, under `prefix`. */
  appPrefix: string;
  database: BenchDatabase;
  redis: ReturnType<typeof benchRedis>;
  openai: OpenAIStandin;
  graph: GraphStandin;
}

export async function startBenchStage(cleanup: Cleanup, databasePrefix: string, redisUrl: string): Promise<BenchStage> {
  const prefix = `bench:${randomTag()}:`;
  const database = await createBenchDatabase(databasePrefix);
  cleanup.add(`drop database ${database.name}`, () => database.drop());
  const redis = benchRedis(redisUrl);
  cleanup.add('close Redis', () => redis.quit());
  cleanup.add(`delete Redis keys ${prefix}*`, () => deleteKeysWithPrefix(redis, prefix));
  const openai = await startOpenAIStandin();
  cleanup.add('close the OpenAI stand-in', () => openai.close());
  const graph = await startGraphStandin();
  cleanup.add('close the Graph stand-in', () => graph.close());
  return { prefix, appPrefix: `${prefix}app:`, database, redis, openai, graph };
}
