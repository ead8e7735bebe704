/**
 * The OpenAPI document is generated from the very zod schemas that validate requests: every
 * route registers itself here when it is defined (middleware/validation.ts), so the document
 * cannot drift from the code.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { version } from '../../package.json';

export const openapiRegistry = new OpenAPIRegistry();

// Two schemes, both bearer keys, so a client can tell from the document which key a route takes.
openapiRegistry.registerComponent('securitySchemes', 'operatorKey', {
  type: 'http',
  scheme: 'bearer',
  description: 'The operator key (ADMIN_API_KEY): /v1/users routes',
});
openapiRegistry.registerComponent('securitySchemes', 'tenantKey', {
  type: 'http',
  scheme: 'bearer',
  description: "A tenant's API key, made with POST /v1/users or POST /v1/users/:id/api-keys",
});

let document: object | undefined;

export function openapiDocument(): object {
  document ??= new OpenApiGeneratorV31(openapiRegistry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Multi-channel AI agent API',
      version,
      description: 'Tenants manage WhatsApp numbers, Instagram accounts, agents and conversations; operators manage tenants.',
    },
    servers: [{ url: '/' }],
  });
  return document;
}
