/**
 * Filing with the inbox model mocked: which conversation the worker is told to serve, and how
 * refused rows are reported. file_inbox itself runs against Postgres in tests/integration/inbox.test.ts.
 */
import * as inbox from '../../../src/models/Inbox';
import { fileWaitingMessages } from '../../../src/services/inboxService';
import { logger } from '../../../src/utils/logger';
import { CONVERSATION, CUSTOMER, NUMBER } from '../../fixtures/rows';

jest.mock('../../../src/models/Inbox');

const model = jest.mocked(inbox);
const key = { userId: '11111111-1111-4111-8111-111111111111', phoneNumberId: NUMBER, customerId: CUSTOMER };

beforeEach(() => {
  jest.resetAllMocks();
  jest.restoreAllMocks();
});

describe('fileWaitingMessages', () => {
  it('when messages are filed, then the customer\'s key goes to file_inbox and the conversation they went to comes back, with nothing logged', async () => {
    const error = jest.spyOn(logger, 'error');
    model.fileInbox.mockResolvedValue({ conversationId: CONVERSATION, filed: 2, dropped: 0, refused: 0 });

    await expect(fileWaitingMessages(key)).resolves.toBe(CONVERSATION);
    expect(model.fileInbox).toHaveBeenCalledWith(key);
    expect(error).not.toHaveBeenCalled();
  });

  it('when the customer has no conversation, then it is null', async () => {
    model.fileInbox.mockResolvedValue({ conversationId: null, filed: 0, dropped: 1, refused: 0 });

    await expect(fileWaitingMessages(key)).resolves.toBeNull();
  });

  it('when the database refuses rows, then the rest still name their conversation and the refusal is logged with the number, never the customer', async () => {
    const error = jest.spyOn(logger, 'error');
    model.fileInbox.mockResolvedValue({ conversationId: CONVERSATION, filed: 1, dropped: 0, refused: 2 });

    await expect(fileWaitingMessages(key)).resolves.toBe(CONVERSATION);
    expect(error).toHaveBeenCalledWith({ phone_number_id: NUMBER, refused: 2 }, expect.stringContaining('refused'));
    expect(JSON.stringify(error.mock.calls)).not.toContain(CUSTOMER);
  });

  it('when the database is down, then the error reaches the worker', async () => {
    model.fileInbox.mockRejectedValue(new Error('Connection terminated'));

    await expect(fileWaitingMessages(key)).rejects.toThrow('Connection terminated');
  });
});
