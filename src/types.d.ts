// Fields our middleware adds to Express's request.
declare global {
  namespace Express {
    interface Request {
      requestId: string;
      /** Set by the auth middleware: the tenant a tenant key belongs to. */
      userId?: string;
      /** Set by the auth middleware: which key authenticated the request. */
      apiKeyId?: string;
      isAdmin?: boolean;
    }
  }
}
export {};
