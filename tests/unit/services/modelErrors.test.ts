/** How anything a model call throws becomes a ModelError the caller can act on. */
import { APIError } from 'openai';
import { classifyError, isProviderFailure, ModelError, parseRetryAfter } from '../../../src/services/modelErrors';
import { CircuitOpenError } from '../../../src/utils/circuitBreaker';

const KEY = 'sk-test-secret-key-0123456789';

describe('classifyError', () => {
  const classify = (error: unknown) => classifyError(error, { model: 'gpt-test', apiKey: KEY });
  const generated = (status: number, code: string | null = null, headers: Record<string, string> = {}) =>
    APIError.generate(status, { error: { message: 'x', code } }, undefined, new Headers(headers));

  it('when the status is 408, 409 or 5xx, then it is retryable', () => {
    expect(classify(generated(408))).toMatchObject({ kind: 'retryable', code: 'model_timeout' });
    expect(classify(generated(409))).toMatchObject({ kind: 'retryable', code: 'model_unavailable' });
    expect(classify(generated(503, null, { 'retry-after': '2' }))).toMatchObject({ kind: 'retryable', code: 'model_unavailable', retryAfterMs: 2_000 });
  });

  it('when 429 says the quota is used up, then it is a retryable quota error', () => {
    expect(classify(generated(429, 'insufficient_quota'))).toMatchObject({ kind: 'retryable', code: 'model_quota_exceeded' });
  });

  it('when the status is 403 or 422, then it is permanent', () => {
    expect(classify(generated(403))).toMatchObject({ kind: 'permanent', code: 'model_auth' });
    expect(classify(generated(422))).toMatchObject({ kind: 'permanent', code: 'model_bad_request' });
  });

  it('when the error is not the SDK’s, then it is a permanent model_error, and ModelErrors pass through', () => {
    expect(classify(new TypeError('oops'))).toMatchObject({ kind: 'permanent', code: 'model_error' });
    const own = new ModelError('retryable', 'model_timeout', 't');
    expect(classify(own)).toBe(own);
  });

  it('when the breaker is open, then it is circuit_open, retryable after the remaining cooldown', () => {
    const error = classify(new CircuitOpenError(1_234));
    expect(error).toMatchObject({ kind: 'circuit_open', code: 'model_circuit_open', retryAfterMs: 1_234 });
    expect(error.retryable).toBe(true);
  });
});

describe('isProviderFailure', () => {
  it('when the provider is in trouble, then it counts; when the request or the answer was at fault, then it does not', () => {
    for (const code of ['model_rate_limited', 'model_quota_exceeded', 'model_unavailable', 'model_network', 'model_timeout'] as const) {
      expect(isProviderFailure(new ModelError('retryable', code, 'x'))).toBe(true);
    }
    expect(isProviderFailure(new ModelError('permanent', 'model_bad_request', 'x'))).toBe(false);
    expect(isProviderFailure(new ModelError('retryable', 'model_empty_response', 'x'))).toBe(false);
    expect(isProviderFailure(new Error('not ours'))).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  it('when headers carry ms, seconds, a date or nothing usable, then it reads the wait accordingly', () => {
    expect(parseRetryAfter(new Headers({ 'retry-after-ms': '250', 'retry-after': '9' }))).toBe(250);
    expect(parseRetryAfter(new Headers({ 'retry-after': '3' }))).toBe(3_000);
    expect(parseRetryAfter(new Headers({ 'retry-after': new Date(10_000).toUTCString() }), 4_000)).toBe(6_000);
    expect(parseRetryAfter(new Headers({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(parseRetryAfter(new Headers())).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});
