/**
 * Issue 16 item 4: when a turn starts, the customer sees "typing…" (WhatsApp: one call that
 * marks the last message read with `typing_indicator`; Instagram: `sender_action: typing_on`),
 * and that call never delays or fails the reply.
 */
import {
  createBusiness,
  customerWrites,
  customerWritesOnInstagram,
  eventually,
  messagesOf,
  pipelineForFile,
} from '../fixtures/pipeline';

const pipeline = pipelineForFile();
let customerSeq = 0;
const newCustomer = () => `1556${String(process.pid).slice(-3)}${String(++customerSeq).padStart(4, '0')}`;

afterEach(() => pipeline().reset());

describe('typing indicator at the start of a turn', () => {
  it('when a WhatsApp customer writes, then one call marks the message read with a typing indicator, before the reply', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    await pipeline().startWorker();
    const customer = newCustomer();
    const wamid = await customerWrites(app, business, customer, 'Are you open on Sunday?');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer));

    const reads = graph.sends.filter((s) => s.kind === 'read' && s.messageId === wamid);
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({ channel: 'whatsapp', accountId: business.whatsapp.externalId, token: business.whatsapp.token });
    expect(reads[0]!.body).toEqual({ messaging_product: 'whatsapp', status: 'read', message_id: wamid, typing_indicator: { type: 'text' } });
    expect(reads[0]!.seq).toBeLessThan(graph.texts(customer)[0]!.seq);
  });

  it('when an Instagram customer writes, then sender_action typing_on goes to them, alone, before the reply', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    await pipeline().startWorker();
    const igsid = `69${String(process.pid).slice(-3)}${++customerSeq}`;
    await customerWritesOnInstagram(app, business, igsid, 'Do you have it in blue?');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === igsid));

    const actions = graph.sends.filter((s) => s.kind === 'sender_action' && s.to === igsid);
    expect(actions.map((s) => s.body)).toEqual([{ recipient: { id: igsid }, sender_action: 'typing_on' }]);
    expect(actions[0]).toMatchObject({ accountId: business.instagram.externalId, token: business.instagram.token });
    expect(actions[0]!.seq).toBeLessThan(graph.texts(igsid)[0]!.seq);
  });

  it('when the typing call hangs, then the reply goes out while it is still unanswered', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    graph.setFault({ hang: true, kind: 'read' });
    await pipeline().startWorker();
    const customer = newCustomer();
    const wamid = await customerWrites(app, business, customer, 'Quick question');
    await graph.waitFor((sends) => sends.some((s) => s.kind === 'text' && s.to === customer && s.ok));

    const read = graph.sends.find((s) => s.kind === 'read' && s.messageId === wamid);
    expect(read?.status).toBeUndefined();
  });

  it('when the typing call fails, then the message is answered all the same', async () => {
    const { app, graph } = pipeline();
    const business = await createBusiness(app);
    graph.setFault({ code: 1, kind: 'read' });
    await pipeline().startWorker();
    const customer = newCustomer();
    await customerWrites(app, business, customer, 'Still there?');
    const rows = await eventually(async () => {
      const r = await messagesOf(business.tenant.userId, customer);
      return r.length === 2 && r[1].status === 'sent' ? r : null;
    });
    expect(rows[0].status).toBe('answered');
    expect(graph.sends.some((s) => s.kind === 'read' && s.errorCode === 1)).toBe(true);
  });
});
