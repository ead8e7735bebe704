/**
 * The error catalogue: every failure the API reports has one of these codes (CONTRACT §3).
 * Throw an AppError anywhere; the one error handler turns it into the contract's shape.
 */
export const ERROR_STATUS = {
  validation_error: 400,
  invalid_json: 400,
  unauthorized: 401,
  invalid_signature: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  window_closed: 409,
  opted_out: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  account_verification_failed: 422,
  rate_limited: 429,
  internal_error: 500,
  unavailable: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorDetail {
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
  }
}

export const notFound = (what: string) => new AppError('not_found', `${what} not found`);
export const conflict = (message: string) => new AppError('conflict', message);
/** Free text outside the customer-service window: only a template may go (CONTRACT §3). */
export const windowClosed = () =>
  new AppError('window_closed', "The customer's 24-hour window is closed (no message from them in the last 24 hours); send a template instead");
/** The customer opted out on this number: nothing may be sent to them until they opt in again. */
export const optedOut = () => new AppError('opted_out', 'The customer opted out of messages from this number; nothing can be sent until they opt in again');
export const validationError = (details: ErrorDetail[], message = 'The request is not valid') =>
  new AppError('validation_error', message, details);
