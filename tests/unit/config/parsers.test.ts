import { z } from 'zod';
import { defineSection, flag, integer, url } from '../../../src/config/parsers';

describe('config parsers', () => {
  it('when an integer is given as text within bounds, then it is a number; outside or fractional, refused', () => {
    expect(integer(1, 10).parse('7')).toBe(7);
    expect(integer(1, 10).safeParse('0').success).toBe(false);
    expect(integer(1, 10).safeParse('11').success).toBe(false);
    expect(integer(1, 10).safeParse('2.5').success).toBe(false);
    expect(integer(1, 10).safeParse('seven').success).toBe(false);
  });

  it('when a flag is true/false/1/0, then it is a boolean; anything else is refused', () => {
    expect(flag.parse('true')).toBe(true);
    expect(flag.parse('1')).toBe(true);
    expect(flag.parse('false')).toBe(false);
    expect(flag.parse('0')).toBe(false);
    expect(flag.safeParse('yes').success).toBe(false);
  });

  it('when a URL has an allowed protocol, then it is kept; another protocol or no URL is refused naming the protocols', () => {
    const postgres = url(['postgres:', 'postgresql:']);
    expect(postgres.parse('postgresql://db:5432/x')).toBe('postgresql://db:5432/x');
    const refused = postgres.safeParse('http://db');
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toBe('must be a URL (postgres: or postgresql:)');
    expect(postgres.safeParse('not a url').success).toBe(false);
  });

  it('when a section is defined, then it is returned as given (its shape stays typed for z.infer)', () => {
    const section = defineSection({ shape: { X: integer(0, 1).default(0) } });
    expect(z.object(section.shape).parse({})).toEqual({ X: 0 });
  });
});
