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
  app.use(
    express.json({
      limit: config.BODY_LIMIT,
      // The webhook's signature covers the exact bytes Meta sent, so keep them.
      verify: (req, _res, buffer) => {
        (req as express.Request).rawBody = buffer;
      },
    }),
  );
  mountRoutes(app);
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
