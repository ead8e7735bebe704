/** The table of contents of the HTTP API: every mount, in one place. */
import type { Express } from 'express';
import { healthRouter } from './controllers/health';

export function mountRoutes(app: Express): void {
  app.use(healthRouter);
}
