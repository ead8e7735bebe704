/**
 * Lead extractions (CONTRACT §3, tenant key): the newest extraction of each conversation, and
 * a way to ask for one now. Paths are relative to the `/v1` mount in routes.ts.
 */
import { Router } from 'express';
import { z } from 'zod';
import { defineRoute } from '../middleware/validation';
import { tenantOf } from '../middleware/auth';
import { pageQuery } from '../utils/pagination';
import * as extractionQueryService from '../services/extractionQueryService';
import { requestExtraction } from '../services/conversationService';
import type { Extraction } from '../models/Extraction';

export const extractionsRouter = Router();

const TAG = 'Extractions';

const extractionJson = z.object({
  id: z.uuid(),
  conversation_id: z.uuid(),
  phone_number_id: z.uuid(),
  fields: z.record(z.string(), z.unknown()),
  summary: z.string().nullable(),
  extracted_at: z.iso.datetime(),
  up_to_sequence_no: z.number().int(),
});

const listQuery = pageQuery.extend({
  phone_number_id: z.uuid().optional(),
  // An offset is required so "since" never depends on the server's time zone.
  since: z.iso
    .datetime({ offset: true })
    .transform((value) => new Date(value))
    .optional(),
});

function toExtractionJson(extraction: Extraction): z.infer<typeof extractionJson> {
  return {
    id: extraction.id,
    conversation_id: extraction.conversationId,
    phone_number_id: extraction.phoneNumberId,
    fields: extraction.fields,
    summary: extraction.summary,
    extracted_at: extraction.createdAt.toISOString(),
    up_to_sequence_no: extraction.upToSequenceNo,
  };
}

defineRoute(
  extractionsRouter,
  {
    method: 'get',
    path: '/extractions',
    summary: "List the newest extraction of each conversation, newest first ('since': extracted at or after)",
    tag: TAG,
    auth: 'tenant',
    query: listQuery,
    response: z.object({ data: z.array(extractionJson), next_cursor: z.string().nullable() }),
  },
  async ({ req, query }) => {
    const { limit, cursor, phone_number_id, since } = query;
    const page = await extractionQueryService.listExtractions(tenantOf(req), { phoneNumberId: phone_number_id, since }, { limit, cursor });
    return { data: page.data.map(toExtractionJson), next_cursor: page.next_cursor };
  },
);

const idParams = z.object({ id: z.uuid() });

defineRoute(
  extractionsRouter,
  {
    method: 'get',
    path: '/conversations/:id/extraction',
    summary: "Get a conversation's newest extraction",
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    response: extractionJson,
    errors: ['not_found'],
  },
  async ({ req, params }) => toExtractionJson(await extractionQueryService.getLatestExtraction(tenantOf(req), params.id)),
);

defineRoute(
  extractionsRouter,
  {
    method: 'post',
    path: '/conversations/:id/extract',
    summary: 'Ask for an extraction of the conversation now; the extraction worker runs it',
    tag: TAG,
    auth: 'tenant',
    params: idParams,
    status: 202,
    response: z.object({ status: z.literal('queued') }),
    errors: ['not_found'],
  },
  async ({ req, params }) => {
    await requestExtraction(tenantOf(req), params.id);
    return { status: 'queued' as const };
  },
);
