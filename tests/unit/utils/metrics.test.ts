/**
 * The process's Prometheus registry: which series it holds and how they are labelled, read back
 * through the registry as /metrics would (no HTTP, no Redis).
 */
import client from 'prom-client';
import { httpRequestDuration, registry, replyMetrics } from '../../../src/utils/metrics';

const text = () => registry.metrics();

describe('registry', () => {
  it('when read, then it holds the default process series (CPU, memory, event loop)', async () => {
    const names = (await registry.getMetricsAsJSON()).map((metric) => metric.name);

    expect(names).toEqual(expect.arrayContaining(['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']));
  });

  it('when our series are defined, then they live in this registry, not in prom-client’s global one', () => {
    expect(client.register.getSingleMetric('http_request_duration_seconds')).toBeUndefined();
    expect(registry.getSingleMetric('http_request_duration_seconds')).toBe(httpRequestDuration);
  });
});

describe('httpRequestDuration', () => {
  it('when a request is observed, then it is counted by method, route pattern and status, in the seconds buckets', async () => {
    httpRequestDuration.observe({ method: 'GET', route: '/v1/agents/:id', status: '200' }, 0.03);

    const metrics = await text();

    expect(metrics).toContain('http_request_duration_seconds_bucket{le="0.05",method="GET",route="/v1/agents/:id",status="200"} 1');
    expect(metrics).toContain('http_request_duration_seconds_bucket{le="0.025",method="GET",route="/v1/agents/:id",status="200"} 0');
    expect(metrics).toContain('http_request_duration_seconds_count{method="GET",route="/v1/agents/:id",status="200"} 1');
  });
});

describe('replyMetrics', () => {
  it('when the workers count replies, failures and credits, then each is a counter of its own name and labels', async () => {
    replyMetrics.replies.inc({ channel: 'whatsapp', author: 'agent' });
    replyMetrics.failures.inc({ reason: 'graph_131047' });
    replyMetrics.creditsCharged.inc(3);

    const metrics = await text();

    expect(metrics).toContain('replies_sent_total{channel="whatsapp",author="agent"} 1');
    expect(metrics).toContain('reply_failures_total{reason="graph_131047"} 1');
    expect(metrics).toContain('credits_charged_total 3');
  });

  it('when latencies are observed, then the model, send and lag histograms record them', async () => {
    replyMetrics.modelLatency.observe(1.5);
    replyMetrics.sendLatency.observe({ channel: 'instagram' }, 0.2);
    replyMetrics.turnLag.observe(0.02);

    const metrics = await text();

    expect(metrics).toContain('model_call_duration_seconds_count 1');
    expect(metrics).toContain('graph_send_duration_seconds_count{channel="instagram"} 1');
    expect(metrics).toContain('reply_lag_seconds_count 1');
  });

  it('when a label the series does not declare is used, then prom-client refuses it', () => {
    expect(() => replyMetrics.failures.inc({ tenant: 'x' } as never)).toThrow();
  });
});
