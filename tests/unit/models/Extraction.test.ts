/**
 * The extraction model with a fake database: what each read and write sends (tenant first, the
 * fields as JSON text, only the filters given), the claim bookkeeping's parameters and its
 * true/false answers. What the statements do (anti-join, SKIP LOCKED claims, states) runs
 * against Postgres in tests/integration/extractionWorker.test.ts and extractionsApi.test.ts.
 */
import {
  claimDueConversations,
  clearNoCreditsPostponement,
  extendExtractionClaim,
  findExtractionStates,
  findLatestExtraction,
  insertExtraction,
  listLatestExtractions,
  postponeExtraction,
  releaseExtractionClaim,
  settleExtraction,
  type Extraction,
  type ExtractionClaim,
} from '../../../src/models/Extraction';
import * as database from '../../../src/utils/database';
import { answer, fakeDatabaseOf, itScopesEveryStatementToTheTenant, paramsOf, resetFakeDatabase } from '../../fixtures/fakeDatabase';
import { AGENT, AT, CONVERSATION, EXTRACTION, extractionRow, NUMBER, USER } from '../../fixtures/rows';

jest.mock('../../../src/utils/database', () => jest.requireActual('../../fixtures/fakeDatabase').fakeDatabaseModule());

const fake = fakeDatabaseOf(database);

const extraction = extractionRow();
/** What storing it takes: the row without what the database adds. */
const { id, userId, phoneNumberId, createdAt, ...fields }: Extraction = extraction;
const claim: ExtractionClaim = { conversationId: CONVERSATION, userId: USER, token: 'worker-1:abc', requested: true, failures: 0 };
const touched = { rows: [], rowCount: 1 };

beforeEach(() => resetFakeDatabase(fake));

describe('every tenant-owned statement', () => {
  itScopesEveryStatementToTheTenant(fake.db, USER, [
    { name: 'insertExtraction', call: (client) => insertExtraction(USER, fields, client), rows: [extraction] },
    { name: 'findLatestExtraction', call: (client) => findLatestExtraction(USER, CONVERSATION, client) },
    { name: 'listLatestExtractions', call: (client) => listLatestExtractions(USER, { phoneNumberId: NUMBER, since: AT }, { limit: 5, afterId: EXTRACTION }, client) },
    { name: 'extendExtractionClaim', call: (client) => extendExtractionClaim(claim, 30_000, client) },
    { name: 'settleExtraction', call: (client) => settleExtraction(USER, CONVERSATION, { token: claim.token, upToSequenceNo: 9 }, client) },
    { name: 'postponeExtraction', call: (client) => postponeExtraction(claim, { delayMs: 1000, countFailure: true }, client) },
    { name: 'releaseExtractionClaim', call: (client) => releaseExtractionClaim(claim, client) },
    { name: 'clearNoCreditsPostponement', call: (client) => clearNoCreditsPostponement(USER, client) },
    { name: 'findExtractionStates', call: (client) => findExtractionStates(USER, [CONVERSATION], 60, client) },
  ]);
});

describe('insertExtraction', () => {
  it('when a result is stored, then its fields go as JSON text after the tenant and the stored row comes back', async () => {
    answer(fake.db, [extraction]);

    await expect(insertExtraction(USER, fields)).resolves.toEqual(extraction);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, AGENT, '{"name":"Ana","size":38}', 'Wants shoes', 9, 'gpt-test', 100, 20]);
  });
});

describe('findLatestExtraction', () => {
  it('when the conversation has extractions, then the newest comes back', async () => {
    answer(fake.db, [extraction]);

    await expect(findLatestExtraction(USER, CONVERSATION)).resolves.toEqual(extraction);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION]);
  });

  it('when it has none (or is another tenant\'s), then it is null', async () => {
    await expect(findLatestExtraction(USER, CONVERSATION)).resolves.toBeNull();
  });
});

describe('listLatestExtractions', () => {
  it('when no filter is given, then only the tenant and one row more than the limit are sent', async () => {
    answer(fake.db, [extraction]);

    await expect(listLatestExtractions(USER, {}, { limit: 20 })).resolves.toEqual([extraction]);
    expect(paramsOf(fake.db)).toEqual([USER, 21]);
  });

  it('when the filters and a cursor are given, then each is sent once, in order, before the limit', async () => {
    await listLatestExtractions(USER, { phoneNumberId: NUMBER, since: AT }, { limit: 2, afterId: EXTRACTION });

    expect(paramsOf(fake.db)).toEqual([USER, NUMBER, AT, EXTRACTION, 3]);
  });
});

describe('claimDueConversations', () => {
  const options = { claimant: 'worker-1', limit: 10, leaseMs: 30_000, idleSeconds: 60, requestsOnly: false };

  it('when idle conversations count too, then the idle time is sent with the claimant, limit and lease, and the claims come back', async () => {
    answer(fake.db, [claim]);

    await expect(claimDueConversations(options)).resolves.toEqual([claim]);
    expect(paramsOf(fake.db)).toEqual(['worker-1', 10, 30_000, 60]);
  });

  it('when only requests count, then the idle time is not sent', async () => {
    await claimDueConversations({ ...options, requestsOnly: true });

    expect(paramsOf(fake.db)).toEqual(['worker-1', 10, 30_000]);
  });
});

describe('extendExtractionClaim', () => {
  it('when the claim still holds, then it is true and the claim\'s token and lease are sent', async () => {
    answer(fake.db, touched);

    await expect(extendExtractionClaim(claim, 45_000)).resolves.toBe(true);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, claim.token, 45_000]);
  });

  it('when the claim was taken over, then it is false', async () => {
    await expect(extendExtractionClaim(claim, 45_000)).resolves.toBe(false);
  });
});

describe('settleExtraction', () => {
  it('when a worker settles under its claim, then the token is sent after the sequence number', async () => {
    answer(fake.db, touched);

    await expect(settleExtraction(USER, CONVERSATION, { token: claim.token, upToSequenceNo: 9 })).resolves.toBe(true);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 9, claim.token]);
  });

  it('when it is settled without a claim, then no token is sent', async () => {
    answer(fake.db, touched);

    await expect(settleExtraction(USER, CONVERSATION, { token: null, upToSequenceNo: 9 })).resolves.toBe(true);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, 9]);
  });

  it('when the claim no longer holds, then it is false', async () => {
    await expect(settleExtraction(USER, CONVERSATION, { token: claim.token, upToSequenceNo: 9 })).resolves.toBe(false);
  });
});

describe('postponeExtraction', () => {
  it('when a claim is postponed, then the delay and whether it counts as a failure are sent', async () => {
    answer(fake.db, touched);

    await expect(postponeExtraction(claim, { delayMs: 5000, countFailure: false })).resolves.toBe(true);
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, claim.token, 5000, false]);
  });

  it('when the claim no longer holds, then it is false', async () => {
    await expect(postponeExtraction(claim, { delayMs: 5000, countFailure: true })).resolves.toBe(false);
  });
});

describe('releaseExtractionClaim', () => {
  it('when a claim is released, then only its own token can release it', async () => {
    await expect(releaseExtractionClaim(claim)).resolves.toBeUndefined();
    expect(paramsOf(fake.db)).toEqual([USER, CONVERSATION, claim.token]);
  });
});

describe('findExtractionStates', () => {
  it('when states are read, then the ids and the idle time are sent and the rows come back as is', async () => {
    const state = { conversationId: CONVERSATION, status: 'postponed', retryAt: AT, failures: 2, creditBalance: 0 };
    answer(fake.db, [state]);

    await expect(findExtractionStates(USER, [CONVERSATION], 60)).resolves.toEqual([state]);
    expect(paramsOf(fake.db)).toEqual([USER, [CONVERSATION], 60]);
  });
});
