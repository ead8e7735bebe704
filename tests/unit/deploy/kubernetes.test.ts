/**
 * deploy/kubernetes/, checked without a cluster: commands, ports and probes, environment names,
 * grace periods and the stream the KEDA trigger watches must agree with the code.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../../src/config';
import { CONSUMER_GROUPS, messageStreams } from '../../../src/utils/queue';
import { commandProblem, KNOWN_VARIABLES, readRepoFile, ROOT, TEST_SECRETS } from '../../fixtures/deploy';

// Manifests are untyped YAML, read field by field: `any` past the few fields every one has.
type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; spec?: any; data?: Record<string, string>; stringData?: Record<string, string> };

const DIR = path.join(ROOT, 'deploy', 'kubernetes');
const files = readdirSync(DIR).filter((name) => name.endsWith('.yaml')).sort();
const manifests: Array<Manifest & { file: string }> = files.flatMap((file) =>
  parseAllDocuments(readRepoFile(path.join('deploy', 'kubernetes', file))).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return { ...(doc.toJS() as Manifest), file };
  }),
);

const find = (kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};
const configMap = find('ConfigMap', 'multi-channel-ai-agent').data!;
const secret = find('Secret', 'multi-channel-ai-agent').stringData!;
/** What the pods' environment parses to, with the Secret template's placeholders made valid. */
const settings = loadConfig({ ...configMap, ...secret, ...TEST_SECRETS });

const workloads = manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'Job');
const podSpec = (workload: Manifest) => workload.spec.template.spec;
const containers = workloads.flatMap((w) => (podSpec(w).containers as any[]).map((c) => ({ workload: w, container: c })));
const deployment = (name: string) => find('Deployment', name);
const container = (name: string) => podSpec(deployment(name)).containers[0];
const portNumber = (c: any, port: string | number) => (typeof port === 'number' ? port : (c.ports as any[]).find((p) => p.name === port)?.containerPort);

describe('deploy/kubernetes', () => {
  it('when applied with kustomize, then it lists every manifest but the Secret template', () => {
    const kustomization = manifests.find((m) => m.file === 'kustomization.yaml') as any;
    expect([...kustomization.resources].sort()).toEqual(files.filter((f) => f !== 'kustomization.yaml' && f !== 'secret.example.yaml'));
  });

  it('when listed, then there are the API (Deployment, Service, HPA), the three workers, the migrate Job, a KEDA ScaledObject and a PDB per Deployment', () => {
    const names = (kind: string) => manifests.filter((m) => m.kind === kind).map((m) => m.metadata.name).sort();
    expect(names('Deployment')).toEqual(['api', 'event-worker', 'extraction-worker', 'message-worker']);
    expect(names('Service')).toEqual(['api']);
    expect(names('HorizontalPodAutoscaler')).toEqual(['api']);
    expect(names('ScaledObject')).toEqual(['message-worker']);
    expect(names('Job')).toEqual(['migrate']);
    expect(names('PodDisruptionBudget')).toEqual(names('Deployment'));
  });

  it.each(containers.map(({ workload, container: c }) => [`${workload.kind} ${workload.metadata.name}`, c]))(
    'when %s starts, then its command is a built entry point',
    (_, c) => {
      expect(commandProblem([...(c.command ?? []), ...(c.args ?? [])])).toBeNull();
    },
  );

  it('when the pods read their environment, then every name is one the product reads', () => {
    const names = [
      ...Object.keys(configMap),
      ...Object.keys(secret),
      ...containers.flatMap(({ container: c }) => ((c.env ?? []) as Array<{ name: string }>).map((e) => e.name)),
    ];
    expect(names.filter((name) => !KNOWN_VARIABLES.has(name))).toEqual([]);
  });

  it('when the ConfigMap and Secret are made, then together they carry every variable the config schema parses, and the contract ones still coming', () => {
    const carried = new Set([...Object.keys(configMap), ...Object.keys(secret)]);
    expect([...KNOWN_VARIABLES].filter((name) => !carried.has(name))).toEqual([]);
    expect(CONFIG_VARIABLES.length).toBeGreaterThan(0);
  });

  it('when a secret is a secret, then it is in the Secret, not the ConfigMap', () => {
    for (const name of ['ADMIN_API_KEY', 'ENCRYPTION_KEY', 'META_APP_SECRET', 'META_VERIFY_TOKEN', 'OPENAI_API_KEY', 'DATABASE_URL', 'METRICS_TOKEN']) {
      expect(Object.keys(configMap)).not.toContain(name);
      expect(Object.keys(secret)).toContain(name);
    }
    expect(configMap.NODE_ENV).toBe('production');
  });

  it('when a container takes its environment, then from the ConfigMap and Secret defined here', () => {
    for (const { container: c } of containers) {
      expect(c.envFrom).toEqual([{ configMapRef: { name: 'multi-channel-ai-agent' } }, { secretRef: { name: 'multi-channel-ai-agent' } }]);
    }
  });

  it("when the API runs, then it listens on the ConfigMap's PORT, is ready on /readyz and alive on /healthz, and the Service routes to it", () => {
    const api = container('api');
    expect(api.ports).toEqual([{ name: 'http', containerPort: settings.PORT }]);
    expect(api.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(api.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    const service = find('Service', 'api');
    expect(service.spec.selector).toEqual(deployment('api').spec.template.metadata.labels);
    expect(portNumber(api, service.spec.ports[0].targetPort)).toBe(settings.PORT);
  });

  it('when the API is busy, then the HPA scales its Deployment on CPU, which its pods request', () => {
    const hpa = find('HorizontalPodAutoscaler', 'api');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' });
    expect(hpa.spec.metrics.map((m: any) => m.resource?.name)).toEqual(['cpu']);
    expect(container('api').resources.requests.cpu).toBeDefined();
  });

  it.each(['message-worker', 'extraction-worker', 'event-worker'])('when %s runs, then its liveness probe asks its heartbeat endpoint on WORKER_HEALTH_PORT', (name) => {
    const worker = container(name);
    expect(settings.WORKER_HEALTH_PORT).toBeDefined();
    expect(worker.livenessProbe.httpGet.path).toBe('/healthz');
    expect(portNumber(worker, worker.livenessProbe.httpGet.port)).toBe(settings.WORKER_HEALTH_PORT);
  });

  it.each(['api', 'message-worker', 'extraction-worker', 'event-worker'])(
    'when %s is terminated, then its grace period covers preStop and SHUTDOWN_TIMEOUT_MS, with a margin of 1 to 10 s',
    (name) => {
      const spec = podSpec(deployment(name));
      const preStop = spec.containers[0].lifecycle?.preStop?.exec?.command as string[] | undefined;
      const preStopSeconds = preStop?.[0] === 'sleep' ? Number(preStop[1]) : 0;
      const margin = spec.terminationGracePeriodSeconds - preStopSeconds - settings.SHUTDOWN_TIMEOUT_MS / 1000;
      expect(margin).toBeGreaterThanOrEqual(1);
      expect(margin).toBeLessThanOrEqual(10);
    },
  );

  it('when the message stream lags, then KEDA scales the message workers on every shard stream and the group they read, under the key prefix', () => {
    const scaled = find('ScaledObject', 'message-worker');
    expect(scaled.spec.scaleTargetRef.name).toBe('message-worker');
    expect(scaled.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    // One trigger per shard of STREAM_SHARDS (the ConfigMap's), in shard order.
    const triggers = scaled.spec.triggers as { type: string; metadata: Record<string, string> }[];
    expect(triggers.map((trigger) => trigger.metadata.stream)).toEqual(messageStreams(settings.STREAM_SHARDS).map((stream) => `${settings.REDIS_KEY_PREFIX}${stream}`));
    for (const trigger of triggers) {
      expect(trigger.type).toBe('redis-streams');
      expect(trigger.metadata.consumerGroup).toBe(CONSUMER_GROUPS.messages);
      expect(Number(trigger.metadata.lagCount)).toBeGreaterThan(0);
      expect(Number.isInteger(Number(trigger.metadata.activationLagCount))).toBe(true);
    }
  });

  it('when KEDA connects to Redis, then it is the host, port and database of REDIS_URL', () => {
    const [trigger] = find('ScaledObject', 'message-worker').spec.triggers;
    const url = new URL(settings.REDIS_URL);
    expect(trigger.metadata.address).toBe(`${url.hostname}:${url.port || 6379}`);
    expect(trigger.metadata.databaseIndex).toBe(url.pathname.slice(1) || '0');
  });

  it('when a node is drained, then each PodDisruptionBudget selects its Deployment and keeps one pod or loses one at most', () => {
    for (const pdb of manifests.filter((m) => m.kind === 'PodDisruptionBudget')) {
      expect(pdb.spec.selector.matchLabels).toEqual(deployment(pdb.metadata.name).spec.template.metadata.labels);
      expect(pdb.spec.minAvailable === 1 || pdb.spec.maxUnavailable === 1).toBe(true);
    }
  });

  it("when a Deployment selects its pods, then the selector matches the template's labels", () => {
    for (const d of manifests.filter((m) => m.kind === 'Deployment')) expect(d.spec.selector.matchLabels).toEqual(d.spec.template.metadata.labels);
  });

  it('when the migrate Job runs, then it runs the migrations once, retried on failure', () => {
    const job = find('Job', 'migrate');
    expect(podSpec(job).containers[0].command).toEqual(['node', 'dist/scripts/migrate.js']);
    expect(['OnFailure', 'Never']).toContain(podSpec(job).restartPolicy);
    expect(configMap.MIGRATE_ON_START).toBe('false');
  });

  it('when a pod runs, then as a non-root user without privilege escalation', () => {
    for (const { workload, container: c } of containers) {
      expect(podSpec(workload).securityContext.runAsNonRoot).toBe(true);
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
    }
  });
});
