/**
 * The OpenAPI document is generated from the very zod schemas that validate requests: every
 * route registers itself here when it is defined (middleware/validation.ts), so the document
 * cannot drift from the code.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { version } from '../../package.json';

export const openapiRegistry = new OpenAPIRegistry();

openapiRegistry.registerComponent('securitySchemes', 'bearer', {
  type: 'http',
  scheme: 'bearer',
  description: 'A tenant API key, or the operator key (ADMIN_API_KEY) for /v1/users routes',
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
