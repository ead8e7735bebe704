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
import { webhookRouter } from './controllers/webhook';

export function createApp(): Express {
  const app = express();
  app.disable('x-powered-by');
  // Which X-Forwarded-For entries name the client; believed blindly, any client could pick its
  // own address, and with it a fresh rate-limit budget.
  app.set('trust proxy', Array.isArray(config.TRUST_PROXY) ? [...config.TRUST_PROXY] : config.TRUST_PROXY);
  app.use(requestContext);
  // Meta's webhook first: its caller is a server that reads none of helmet's browser headers,
  // and it is the one hot path (measured: ~10% of its CPU went to layers it does not use).
  app.use(webhookRouter);
  app.use(helmet());
  app.use(express.json({ limit: config.BODY_LIMIT }));
  mountRoutes(app);
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
