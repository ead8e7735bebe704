/** The messages a reply sends the model, built from the agent's prompt and the conversation's history. */
import fc from 'fast-check';
import {
  TOKENS_PER_IMAGE,
  TOKENS_PER_MESSAGE,
  CUT_MARK,
  MAX_CUSTOMER_MESSAGE_CHARS,
  buildChatMessages,
  capCustomerText,
  estimatePromptTokens,
  estimateTokens,
} from '../../../src/services/chatPrompt';

describe('buildChatMessages', () => {
  const history = [
    { author: 'customer' as const, text: 'one' },
    { author: 'agent' as const, text: 'two' },
    { author: 'customer' as const, text: null },
    { author: 'human' as const, text: 'three' },
    { author: 'customer' as const, text: '   ' },
    { author: 'customer' as const, text: 'four' },
  ];

  it('when built, then the system prompt comes first and customer is user, agent and human are assistant', () => {
    expect(buildChatMessages({ systemPrompt: 'Be kind.', history, historyLimit: 10 })).toEqual([
      { role: 'system', content: 'Be kind.' },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'two' },
      { role: 'assistant', content: 'three' },
      { role: 'user', content: 'four' },
    ]);
  });

  it('when the history is longer than the limit, then only the last messages with text are kept, oldest first', () => {
    expect(buildChatMessages({ systemPrompt: 'Be kind.', history, historyLimit: 2 })).toEqual([
      { role: 'system', content: 'Be kind.' },
      { role: 'assistant', content: 'three' },
      { role: 'user', content: 'four' },
    ]);
  });

  it('when the limit is 0, then only the system prompt is sent', () => {
    expect(buildChatMessages({ systemPrompt: 'Be kind.', history, historyLimit: 0 })).toEqual([{ role: 'system', content: 'Be kind.' }]);
  });

  it('when a non-text message was rendered as "[image]", then it is kept and counts toward the limit', () => {
    const withImage = [...history, { author: 'customer' as const, text: '[image]' }];
    expect(buildChatMessages({ systemPrompt: 'Be kind.', history: withImage, historyLimit: 2 })).toEqual([
      { role: 'system', content: 'Be kind.' },
      { role: 'user', content: 'four' },
      { role: 'user', content: '[image]' },
    ]);
  });

  it('when the system prompt is blank, then no empty system turn is sent', () => {
    expect(buildChatMessages({ systemPrompt: ' ', history: [{ author: 'customer', text: 'hi' }], historyLimit: 5 })).toEqual([
      { role: 'user', content: 'hi' },
    ]);
  });

  describe('the prompt budget (max_prompt_tokens)', () => {
    // 40 characters: 10 tokens, plus 4 for the message's framing.
    const turn = (author: 'customer' | 'agent', n: number) => ({ author, text: `${String(n).padStart(2, '0')}${'x'.repeat(38)}` });
    const long = Array.from({ length: 10 }, (_, i) => turn(i % 2 === 0 ? 'customer' : 'agent', i));

    it('when tokens are estimated, then it is characters / 4 rounded up, plus 4 per message', () => {
      expect([estimateTokens(''), estimateTokens('abc'), estimateTokens('abcd'), estimateTokens('abcde')]).toEqual([0, 1, 1, 2]);
      expect(estimatePromptTokens([{ role: 'system', content: 'abcd' }, { role: 'user', content: 'abcde' }])).toBe(11);
    });

    it('when the history does not fit, then the oldest turns go first and the system prompt stays', () => {
      // System: 4 + 2 = 6 tokens; each turn 14; a budget of 6 + 3 * 14 + 13 fits three turns, not four.
      const messages = buildChatMessages({ systemPrompt: 'Be kind.', history: long, historyLimit: 50, maxPromptTokens: 6 + 3 * 14 + 13 });
      expect(messages.map((m) => m.content.slice(0, 2))).toEqual(['Be', '07', '08', '09']);
      expect(messages[0]).toEqual({ role: 'system', content: 'Be kind.' });
      expect(estimatePromptTokens(messages)).toBeLessThanOrEqual(6 + 3 * 14 + 13);
    });

    it('when even the newest message is over the budget, then the system prompt and the newest message still go', () => {
      const messages = buildChatMessages({ systemPrompt: 'S'.repeat(4000), history: long.slice(0, 9), historyLimit: 50, maxPromptTokens: 500 });
      expect(messages.map((m) => m.role)).toEqual(['system', 'user']);
      expect(messages[1]!.content.slice(0, 2)).toBe('08');
    });

    it('when any history is built, then it is a suffix of the history that fits the budget beyond its newest turn', () => {
      const message = fc.record({ author: fc.constantFrom('customer' as const, 'agent' as const, 'human' as const), text: fc.string({ maxLength: 300 }) });
      fc.assert(
        fc.property(fc.array(message, { maxLength: 40 }), fc.string({ maxLength: 200 }), fc.integer({ min: 500, max: 3000 }), (history, systemPrompt, budget) => {
          const messages = buildChatMessages({ systemPrompt, history, historyLimit: 200, maxPromptTokens: budget });
          const turns = messages.filter((m) => m.role !== 'system');
          const withText = history.filter((m) => m.text.trim() !== '');
          const expected = withText.slice(withText.length - turns.length).map((m) => (m.author === 'customer' ? capCustomerText(m.text) : m.text));
          if (JSON.stringify(turns.map((m) => m.content)) !== JSON.stringify(expected)) return false;
          if (systemPrompt.trim() !== '' && messages[0]?.content !== systemPrompt) return false;
          // Over budget only with the one turn that always goes.
          return turns.length <= 1 || estimatePromptTokens(messages) <= budget;
        }),
      );
    });
  });

  describe('a single customer message', () => {
    it(`when it is longer than ${MAX_CUSTOMER_MESSAGE_CHARS} characters, then the model sees its start, marked as cut; the agent's own turns are not cut`, () => {
      const huge = 'y'.repeat(4096);
      const messages = buildChatMessages({ systemPrompt: '', history: [{ author: 'agent', text: huge }, { author: 'customer', text: huge }], historyLimit: 5 });
      expect(messages[0]!.content).toBe(huge);
      expect(messages[1]!.content).toBe(`${'y'.repeat(MAX_CUSTOMER_MESSAGE_CHARS)}${CUT_MARK}`);
    });

    it('when the cut falls inside an emoji, then the whole emoji goes, never half of it', () => {
      const text = `${'a'.repeat(MAX_CUSTOMER_MESSAGE_CHARS - 1)}😀tail`;
      expect(capCustomerText(text)).toBe(`${'a'.repeat(MAX_CUSTOMER_MESSAGE_CHARS - 1)}${CUT_MARK}`);
      expect(capCustomerText('short')).toBe('short');
    });
  });
});

describe('images in the chat (issue 16)', () => {
  it('when a customer message carries an image, then it goes as a text part and a low-detail image part, counted at TOKENS_PER_IMAGE', () => {
    const messages = buildChatMessages({
      systemPrompt: 'S',
      history: [{ author: 'customer', text: '[photo] this one?', image: 'data:image/jpeg;base64,AAAA' }],
      historyLimit: 10,
    });
    expect(messages[1]).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: '[photo] this one?' },
        { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,AAAA', detail: 'low' } },
      ],
    });
    expect(estimatePromptTokens([messages[1]!])).toBe(TOKENS_PER_MESSAGE + estimateTokens('[photo] this one?') + TOKENS_PER_IMAGE);
  });
});
