/** The messages a reply sends the model, built from the agent's prompt and the conversation's history. */
import { buildChatMessages } from '../../../src/services/chatPrompt';

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
});
