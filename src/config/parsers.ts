/**
 * Building blocks shared by the config sections: the value parsers several sections use, and the
 * shape of a section. No module here reads `process.env`; index.ts parses it once.
 */
import { z } from 'zod';

export const integer = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const flag = z.enum(['true', 'false', '1', '0']).transform((value) => value === 'true' || value === '1');

export const url = (protocols: string[]) =>
  z.string().refine((value) => {
    try {
      return protocols.includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, `must be a URL (${protocols.join(' or ')})`);

/** The raw environment as index.ts hands it to sections: unset and empty are both `undefined`. */
export type RawEnvironment = Readonly<Record<string, string | undefined>>;

/**
 * One section of the configuration: the variables it reads (a zod shape, so index.ts can merge
 * every section into one schema and parse once), the secrets among them that production
 * refuses to default, and checks across values that a single variable's schema cannot make.
 */
export interface ConfigSection<Shape extends z.ZodRawShape> {
  readonly shape: Shape;
  /** Secret → its public development value; with NODE_ENV=production the secret is required. */
  readonly devSecrets?: Readonly<Partial<Record<keyof Shape & string, string>>>;
  /** Problems as `NAME: invalid (why)`, never echoing a value; `production` is NODE_ENV=production. */
  readonly check?: (source: RawEnvironment, production: boolean) => string[];
}

/** Identity with the type spelled once: keeps each section's shape precise for `z.infer`. */
export const defineSection = <Shape extends z.ZodRawShape>(section: ConfigSection<Shape>): ConfigSection<Shape> => section;
