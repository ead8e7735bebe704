import { ZodError, z } from 'zod';
import { AppError, ERROR_STATUS, conflict, notFound, validationError } from '../../../src/utils/errors';
import { errorBody, toAppError } from '../../../src/middleware/errorHandler';

describe('error catalogue', () => {
  it('when an AppError is made, then its status follows the contract table', () => {
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(new AppError(code as keyof typeof ERROR_STATUS, 'x').status).toBe(status);
    }
    expect(notFound('Agent').message).toBe('Agent not found');
    expect(conflict('taken').status).toBe(409);
    expect(validationError([{ path: 'name', message: 'Required' }]).details).toEqual([{ path: 'name', message: 'Required' }]);
  });

  it('when a zod error is mapped, then it is a validation_error with one path per issue', () => {
    const result = z.object({ name: z.string(), nested: z.object({ n: z.number() }) }).safeParse({ nested: { n: 'x' } });
    const error = toAppError(result.error as ZodError);
    expect(error.code).toBe('validation_error');
    expect(error.details?.map((d) => d.path)).toEqual(['name', 'nested.n']);
  });

  it('when body-parser fails, then its failures map to contract codes', () => {
    expect(toAppError({ type: 'entity.too.large' }).code).toBe('payload_too_large');
    expect(toAppError({ type: 'entity.parse.failed' }).code).toBe('invalid_json');
    expect(toAppError({ type: 'charset.unsupported' }).code).toBe('validation_error');
  });

  it('when something unexpected is thrown, then the answer is internal_error without its message', () => {
    const error = toAppError(new Error('password=hunter2 at db.ts:42'));
    expect(error.code).toBe('internal_error');
    expect(JSON.stringify(errorBody(error, 'r1'))).not.toContain('hunter2');
    expect(errorBody(error, 'r1')).toEqual({ error: { code: 'internal_error', message: 'Something went wrong on our side', request_id: 'r1' } });
  });
});
