/** Which URLs and addresses tenant events may go to, and the pinned post. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkUrl, checkUrlForm, isPrivateAddress, postToAddress, resolveAllowedAddress, UnsafeUrlError } from '../../../src/utils/urlSafety';

const strict = { requireHttps: true, allowPrivate: false };
const lax = { requireHttps: false, allowPrivate: true };

describe('isPrivateAddress', () => {
  it.each(['127.0.0.1', '10.0.0.5', '172.16.3.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', 'not-an-ip'])(
    'when the address is %s, then it is not public',
    (address) => expect(isPrivateAddress(address)).toBe(true),
  );

  it.each(['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8'])('when the address is %s, then it is public', (address) =>
    expect(isPrivateAddress(address)).toBe(false),
  );
});

describe('checkUrlForm', () => {
  it('when production requires https, then http is refused; credentials and other schemes always are', () => {
    expect(() => checkUrlForm('http://example.com/x', strict)).toThrow('must use https');
    expect(checkUrlForm('https://example.com/x', strict).hostname).toBe('example.com');
    expect(checkUrlForm('http://example.com/x', lax).protocol).toBe('http:');
    expect(() => checkUrlForm('https://user:pw@example.com/', lax)).toThrow(UnsafeUrlError);
    expect(() => checkUrlForm('ftp://example.com/', lax)).toThrow(UnsafeUrlError);
    expect(() => checkUrlForm('not a url', lax)).toThrow(UnsafeUrlError);
  });
});

describe('resolveAllowedAddress', () => {
  it('when a name resolves to any private address, then it is refused unless private URLs are allowed', async () => {
    const resolve = async () => [
      { address: '93.184.216.34', family: 4 as const },
      { address: '10.0.0.7', family: 4 as const },
    ];
    await expect(resolveAllowedAddress(new URL('https://rebind.example/'), strict, resolve)).rejects.toThrow('private');
    await expect(resolveAllowedAddress(new URL('https://rebind.example/'), lax, resolve)).resolves.toEqual({ address: '93.184.216.34', family: 4 });
  });

  it('when the host is an IP literal, then it is checked without DNS', async () => {
    const resolve = jest.fn();
    await expect(resolveAllowedAddress(new URL('https://[::1]/'), strict, resolve)).rejects.toThrow(UnsafeUrlError);
    await expect(resolveAllowedAddress(new URL('https://8.8.8.8/'), strict, resolve)).resolves.toEqual({ address: '8.8.8.8', family: 4 });
    expect(resolve).not.toHaveBeenCalled();
  });

  it('when a name does not resolve, then it is refused with a reason', async () => {
    const resolve = async () => {
      throw new Error('ENOTFOUND');
    };
    await expect(checkUrl('https://nowhere.invalid/', strict, resolve)).rejects.toThrow('could not be resolved');
  });
});

describe('postToAddress', () => {
  it('when posting to a name, then the connection goes to the given address, not to what DNS says', async () => {
    const seen: Array<{ host?: string; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ host: req.headers.host, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const result = await postToAddress(new URL(`http://no-such-host.invalid:${port}/e`), { address: '127.0.0.1', family: 4 }, { 'X-A': '1' }, '{"a":1}', 2_000);
      expect(result.status).toBe(204);
      expect(seen).toEqual([{ host: `no-such-host.invalid:${port}`, body: '{"a":1}' }]);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('when the endpoint does not answer within the timeout, then the post rejects saying so', async () => {
    const server = createServer(() => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      await expect(postToAddress(new URL(`http://127.0.0.1:${port}/`), { address: '127.0.0.1', family: 4 }, {}, '{}', 100)).rejects.toThrow('timed out after 100 ms');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
