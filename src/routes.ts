/** The table of contents of the HTTP API: every mount, in one place. */
import express, { type Express } from 'express';
import swaggerUi from 'swagger-ui-express';
import { healthRouter } from './controllers/health';
import { usersRouter } from './controllers/users';
import { phoneNumbersRouter } from './controllers/phoneNumbers';
import { agentsRouter } from './controllers/agents';
import { conversationsRouter } from './controllers/conversations';
import { extractionsRouter } from './controllers/extractions';
import { webhookEndpointsRouter } from './controllers/webhookEndpoints';
import { createRateLimiter } from './middleware/rateLimit';
import { openapiDocument } from './utils/openapi';
import { API_PREFIX, requireJsonBody } from './middleware/validation';

export function mountRoutes(app: Express): void {
  app.use(healthRouter);
  app.get('/openapi.json', (_req, res) => {
    res.json(openapiDocument());
  });
  app.use('/docs', swaggerUi.serve, swaggerUi.setup(undefined, { swaggerUrl: '/openapi.json', swaggerOptions: { url: '/openapi.json' } }));

  // Only the REST API is rate limited; Meta's webhook must never be turned away.
  const v1 = express.Router();
  v1.use(createRateLimiter());
  v1.use(requireJsonBody);
  v1.use(usersRouter, phoneNumbersRouter, agentsRouter, conversationsRouter, extractionsRouter, webhookEndpointsRouter);
  app.use(API_PREFIX, v1);
}
