/**
 * The Express application, without listening: tests drive it with supertest, `server.ts`
 * serves it. Order matters: request id first so even a rejected body has one.
 */
import express, { type Express } from 'express';
import helmet from 'helmet';
import { config } from './config';
import { requestContext } from './middleware/logging';
import { errorHandler, notFoundHandler } from './middleware/errorHandler';
import { mountRoutes } from './routes';

export function createApp(): Express {
  const app = express();
  app.disable('x-powered-by');
  // One proxy hop (a load balancer) is the common deployment; client IPs then come from it.
  app.set('trust proxy', 1);
  app.use(requestContext);
  app.use(helmet());
  const json = express.json({ limit: config.BODY_LIMIT });
  // The webhook reads its body raw: its signature covers Meta's exact bytes.
  app.use((req, res, next) => (req.path.startsWith('/webhooks/') ? next() : json(req, res, next)));
  mountRoutes(app);
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
