/**
 * Where the server may post tenant events (CONTRACT §2 `WEBHOOK_ALLOW_PRIVATE_URLS`): a tenant's
 * URL must not reach into our own network (the database, the metadata service, other pods).
 * The rule is applied to addresses, after DNS, at registration and again at every delivery;
 * `postToAddress` then connects to the very address that was checked, so a name that resolves
 * to a public address for the check and to 127.0.0.1 a moment later (DNS rebinding) cannot
 * slip in between.
 */
import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { config } from '../config';

/** Private, loopback, link-local, carrier-grade NAT, multicast and reserved ranges. */
const NOT_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NOT_PUBLIC.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  NOT_PUBLIC.addSubnet(network, prefix, 'ipv6');
}

/** Whether an IP address is one a tenant's endpoint must not resolve to (unless allowed). */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return NOT_PUBLIC.check(address, 'ipv4');
  if (family !== 6) return true;
  // ::ffff:10.0.0.1 is 10.0.0.1 to the kernel.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return NOT_PUBLIC.check(mapped[1]!, 'ipv4');
  return NOT_PUBLIC.check(address, 'ipv6');
}

export interface UrlPolicy {
  /** Plain http refused (production). */
  requireHttps: boolean;
  /** Private, loopback and link-local addresses allowed (`WEBHOOK_ALLOW_PRIVATE_URLS`). */
  allowPrivate: boolean;
}

/** The policy the configuration sets. */
export const configuredUrlPolicy = (): UrlPolicy => ({
  requireHttps: config.NODE_ENV === 'production',
  allowPrivate: config.WEBHOOK_ALLOW_PRIVATE_URLS,
});

/** Why a URL may not be used; the message is safe to show the tenant. */
export class UnsafeUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeUrlError';
  }
}

/** The URL's form: http(s), https when required, no credentials in it. Throws UnsafeUrlError. */
export function checkUrlForm(value: string, policy: UrlPolicy): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UnsafeUrlError('must be an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UnsafeUrlError('must be an http(s) URL');
  if (policy.requireHttps && url.protocol !== 'https:') throw new UnsafeUrlError('must use https');
  if (url.username !== '' || url.password !== '') throw new UnsafeUrlError('must not carry credentials');
  return url;
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

const dnsResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((entry) => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 }));

/**
 * Resolves the URL's host and checks every address it resolves to; returns the one to connect
 * to. One private address among public ones refuses the whole name: which one a client would
 * pick is not ours to know. Throws UnsafeUrlError.
 */
export async function resolveAllowedAddress(url: URL, policy: UrlPolicy, resolve: Resolver = dnsResolver): Promise<ResolvedAddress> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = isIP(host);
  let addresses: ResolvedAddress[];
  if (literal !== 0) addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await resolve(host);
    } catch {
      throw new UnsafeUrlError(`the host ${host} could not be resolved`);
    }
  }
  if (addresses.length === 0) throw new UnsafeUrlError(`the host ${host} could not be resolved`);
  if (!policy.allowPrivate && addresses.some((entry) => isPrivateAddress(entry.address))) {
    throw new UnsafeUrlError('resolves to a private, loopback or link-local address');
  }
  return addresses[0]!;
}

/** Form and addresses together: what registration checks. Throws UnsafeUrlError. */
export async function checkUrl(value: string, policy: UrlPolicy, resolve?: Resolver): Promise<ResolvedAddress> {
  return resolveAllowedAddress(checkUrlForm(value, policy), policy, resolve);
}

export interface PostResult {
  status: number;
}

/**
 * POSTs `body` to `url`, connected to `address` (already checked) whatever DNS says now; TLS
 * still verifies the certificate for the URL's host name. Rejects on a network error or after
 * `timeoutMs` for the whole exchange; the response body is read and discarded.
 */
export function postToAddress(
  url: URL,
  address: ResolvedAddress,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<PostResult> {
  const pinned: LookupFunction = (_hostname, options, callback) => {
    // Node asks for every address (`all`) when it races IPv4 and IPv6; give it only ours.
    if ((options as { all?: boolean }).all) (callback as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [address]);
    else callback(null, address.address, address.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<PostResult>((resolve, reject) => {
    const request = client.request(
      url,
      {
        method: 'POST',
        lookup: pinned,
        headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
        agent: false,
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response) => {
        response.on('error', reject);
        response.on('end', () => resolve({ status: response.statusCode ?? 0 }));
        response.resume();
      },
    );
    request.on('error', (error) => reject(error.name === 'AbortError' ? new Error(`timed out after ${timeoutMs} ms`) : error));
    request.end(body);
  });
}
