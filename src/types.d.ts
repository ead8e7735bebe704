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
      /** The live tenant key the bearer token names (null: none), once looked up (`presentedApiKey`). */
      presentedApiKey?: { id: string; userId: string } | null;
      /** The rate-limit counter this request is charged to: its valid key's, or its address's. */
      rateLimitSubject?: string;
      /** The matched route's full pattern (`/v1/agents/:id`), kept for metrics: Express resets baseUrl when a routed request fails. */
      routePattern?: string;
    }
  }
}
export {};
