/** Prometheus series for the process, served at GET /metrics. */
import client from 'prom-client';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

export const httpRequestDuration = new client.Histogram({
  name: 'http_request_duration_seconds',
  help: 'HTTP request duration by route pattern and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

/** What the message workers do; each worker process has its own copies, aggregated at /metrics. */
export const replyMetrics = {
  replies: new client.Counter({
    name: 'replies_sent_total',
    help: 'Outbound messages delivered to Graph, by channel and author (agent or human)',
    labelNames: ['channel', 'author'] as const,
    registers: [registry],
  }),
  failures: new client.Counter({
    name: 'reply_failures_total',
    help: 'Turns or sends that failed, by reason (model error code, graph_<code>, insufficient_credits, …)',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  modelLatency: new client.Histogram({
    name: 'model_call_duration_seconds',
    help: 'Model calls, retries included',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [registry],
  }),
  sendLatency: new client.Histogram({
    name: 'graph_send_duration_seconds',
    help: 'Graph API sends, by channel',
    labelNames: ['channel'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  }),
  sendsInDoubt: new client.Counter({
    name: 'send_in_doubt_resolutions_total',
    help:
      'Reply parts found in doubt (sent to Graph by an attempt that died or got no answer before recording it), by how the ' +
      'doubt ended: settled_by_status (a WhatsApp status naming the part), settled_by_echo (our Instagram echo), ' +
      'resent_after_grace (nothing within SEND_IN_DOUBT_GRACE_MS: sent again, possibly a duplicate)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  creditsCharged: new client.Counter({
    name: 'credits_charged_total',
    help: 'Credits charged for replies and extractions',
    registers: [registry],
  }),
  turnLag: new client.Histogram({
    name: 'reply_lag_seconds',
    help: 'From a nudge entering the queue to a worker starting on it',
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [registry],
  }),
};
