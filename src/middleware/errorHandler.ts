/**
 * The one error handler: every error leaves as CONTRACT §3's shape. Known errors keep their
 * code; anything unexpected is logged in full and answered as a bare `internal_error`.
 */
import type { NextFunction, Request, Response } from 'express';
import { ZodError } from 'zod';
import { AppError, type ErrorDetail } from '../utils/errors';
import { logger } from '../utils/logger';
import { currentContext } from '../utils/context';

export function zodDetails(error: ZodError): ErrorDetail[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

/** Maps anything thrown to an AppError; body-parser and zod errors get their contract codes. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof ZodError) return new AppError('validation_error', 'The request is not valid', zodDetails(error));
  const bodyParserType = (error as { type?: string }).type;
  if (bodyParserType === 'entity.too.large') return new AppError('payload_too_large', 'The request body is too large');
  if (bodyParserType === 'entity.parse.failed') return new AppError('invalid_json', 'The request body is not valid JSON');
  if (bodyParserType === 'encoding.unsupported' || bodyParserType === 'charset.unsupported') {
    return new AppError('validation_error', 'The request body encoding is not supported');
  }
  return new AppError('internal_error', 'Something went wrong on our side', undefined, { cause: error });
}

export function errorBody(error: AppError, requestId: string | undefined) {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
      request_id: requestId ?? currentContext()?.requestId ?? null,
    },
  };
}

export function sendError(res: Response, error: AppError, requestId?: string): void {
  if (error.code === 'rate_limited' && !res.getHeader('Retry-After')) res.setHeader('Retry-After', '60');
  res.status(error.status).json(errorBody(error, requestId));
}

// Express recognises error middleware by its four parameters, so `next` must stay.
export function errorHandler(error: unknown, req: Request, res: Response, _next: NextFunction): void {
  const appError = toAppError(error);
  if (appError.status >= 500) logger.error({ err: appError.cause ?? appError, path: req.path }, 'request failed');
  if (res.headersSent) {
    res.end();
    return;
  }
  sendError(res, appError, req.requestId);
}

export function notFoundHandler(req: Request, res: Response): void {
  sendError(res, new AppError('not_found', `No route for ${req.method} ${req.path}`), req.requestId);
}
