import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type BaseConfig, ConfigError } from "@taituri/config";
import { loadConversationConfig } from "@taituri/conversation-service/config";
import { ensureGoTool, ensurePythonTool } from "@taituri/devenv/tools";
import { drainMs, type GenerationConfig, loadGenerationConfig } from "@taituri/generation-service/config";
import { type IngressConfig, loadIngressConfig } from "@taituri/ingress-service/config";
import { kafkaSecurity } from "@taituri/kafka";
import { KAFKA_SERVICES, kubernetesPrincipals } from "@taituri/kafka/access";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { redisSecurity } from "@taituri/limiter-service/redis-connection";
import { loadPaymentConfig } from "@taituri/payment-service/config";
import { startSimulator } from "@taituri/simulator";
import { loadSimulatorConfig } from "@taituri/simulator/config";
import { parseAllDocuments } from "yaml";

/**
 * The Helm chart rendered by the real helm and checked against the Kubernetes API schemas
 * (kubernetes-validate, offline), so a template mistake fails here and not at a customer's install.
 */
const exec = promisify(execFile);
const chart = new URL("../../deploy/helm/taituri", import.meta.url).pathname;
const SERVICES = ["conversation", "generation", "ingress", "limiter", "payment"];
/**
 * The chart's components: a Deployment each. The dispatcher runs ingress's main.ts with
 * INGRESS_ROLE=dispatcher, as ingress's identity (its ServiceAccount, its Kafka login).
 */
const COMPONENTS = ["conversation", "dispatcher", "generation", "ingress", "limiter", "payment"];
const serviceOf = (component: string) => (component === "dispatcher" ? "ingress" : component);
/** The components that log in to Kafka: packages/kafka's KAFKA_SERVICES, and the dispatcher as ingress. */
const KAFKA_COMPONENTS = [...KAFKA_SERVICES, "dispatcher"] as const;

/** Each component's service's own config loader: a pod's rendered environment must load with it. */
const LOADERS: Record<string, (env: Record<string, string | undefined>) => BaseConfig> = {
  conversation: loadConversationConfig,
  dispatcher: loadIngressConfig,
  generation: loadGenerationConfig,
  ingress: loadIngressConfig,
  limiter: loadLimiterConfig,
  payment: loadPaymentConfig,
};
const FULLNAME = "shop-taituri";
const SCRAM_USERS: Record<string, string> = {
  ingress: "shop-in",
  conversation: "shop-conv",
  generation: "shop-gen",
  payment: "shop-pay",
};
const scramValues = (mechanism: string) => [
  `kafka.sasl=${mechanism}`,
  ...Object.entries(SCRAM_USERS).map(([component, user]) => `kafka.usernames.${component}=${user}`),
];
const tlsValues = [
  "kafka.tls.enabled=true",
  "kafka.tls.caSecret=kafka-ca",
  "redis.username=limiter",
  "redis.passwordSecretKey=REDIS_PASSWORD",
  "redis.tls.enabled=true",
  "redis.tls.caSecret=redis-ca",
  "redis.tls.caKey=ca.pem",
];

let helm: string;
let python: string;
let scratch: string;

before(async () => {
  [helm, python] = await Promise.all([
    ensureGoTool({ name: "helm", module: "helm.sh/helm/v3/cmd/helm", version: "v3.22.0" }),
    ensurePythonTool({ name: "kubernetes-validate", pipPackage: "kubernetes-validate", version: "1.37.0" }),
  ]);
  scratch = await mkdtemp(join(tmpdir(), "taituri-helm-"));
});
after(() => rm(scratch, { recursive: true, force: true }));

/**
 * What every production release must set and the chart cannot default: where shoppers' browsers
 * reach checkout (the chart refuses to render without it outside local).
 */
const REQUIRED = ["payment.publicUrl=https://pay.shop.example"];

/** `helm template` of release "shop" in `namespace` (helm's default: "default") with REQUIRED and these --set values. */
async function renderIn(namespace: string, ...set: string[]): Promise<string> {
  const args = [
    "template",
    "shop",
    chart,
    "--namespace",
    namespace,
    ...[...REQUIRED, ...set].flatMap((s) => ["--set", s]),
  ];
  const { stdout } = await exec(helm, args);
  return stdout;
}

const render = (...set: string[]) => renderIn("default", ...set);

/** Why `helm template` refused to render with these values (its stderr); a failure if it rendered. */
async function refusal(...set: string[]): Promise<string> {
  return render(...set).then(
    () => assert.fail(`rendered with ${set.join(" ")}`),
    (error: { stderr?: string }) => error.stderr ?? String(error),
  );
}

/** The line a service's config prints for `name` under these settings (packages/config). */
function serviceSays(
  load: (env: Record<string, string>) => unknown,
  env: Record<string, string>,
  name: string,
) {
  try {
    load({ DEPLOYMENT_ENVIRONMENT: "production", ...env });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    const line = error.problems.find((p) => p.startsWith(`${name}: `) || p.startsWith(`${name} `));
    if (line) return line;
  }
  assert.fail(`the service accepts ${JSON.stringify(env)}`);
}

/** The lines of a refusal's "Invalid configuration:" list. */
const refused = (stderr: string) =>
  stderr
    .split("Invalid configuration:\n")[1]
    ?.split("\n")
    .filter((l) => l.startsWith("  "))
    .map((l) => l.trim());

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
}
interface Volume {
  name: string;
  projected?: {
    sources: Array<{
      serviceAccountToken?: { audience: string; expirationSeconds: number; path: string };
      configMap?: { name: string };
    }>;
  };
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: unknown;
  containers: Array<{
    image?: string;
    command?: string[];
    securityContext?: unknown;
    ports?: Array<{ name: string; containerPort: number }>;
    env: EnvVar[];
    livenessProbe?: Probe;
    readinessProbe?: Probe;
    startupProbe?: Probe;
    envFrom?: unknown[];
    volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  }>;
  volumes?: Volume[];
}
interface Resource {
  kind: string;
  metadata: { name: string; namespace?: string };
  automountServiceAccountToken?: boolean;
  spec?: {
    replicas?: number;
    template?: { metadata?: { annotations?: Record<string, string> }; spec: PodSpec };
    ports?: Array<{ name: string; port: number; targetPort: string | number }>;
  };
}

/** The rendered resources, parsed. */
const resources = (yaml: string): Resource[] =>
  parseAllDocuments(yaml)
    .map((doc) => doc.toJS() as Resource | null)
    .filter((r): r is Resource => r !== null);

/** The pod spec of a component's Deployment. */
function podOf(rendered: Resource[], component: string): PodSpec {
  const deployment = rendered.find(
    (r) => r.kind === "Deployment" && r.metadata.name === `${FULLNAME}-${component}`,
  );
  const spec = deployment?.spec?.template?.spec;
  assert.ok(spec, `no Deployment for ${component}`);
  return spec;
}

const envOf = (pod: PodSpec) => pod.containers[0]?.env ?? [];
const envVar = (pod: PodSpec, name: string) => envOf(pod).find((e) => e.name === name);

/** The file a projected service-account token, or a Secret's key, points at: its volume and mount. */
function mountedFile(pod: PodSpec, path: string) {
  const mount = pod.containers[0]?.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `nothing is mounted at ${path}`);
  const file = path.slice(mount.mountPath.length + 1);
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  const token = volume?.projected?.sources.find(
    (s) => s.serviceAccountToken?.path === file,
  )?.serviceAccountToken;
  const item = volume?.secret?.items?.find((i) => i.path === file);
  return {
    mount,
    token,
    secret: item && volume?.secret && { name: volume.secret.secretName, key: item.key },
  };
}

// What the kubelet would put in the pod, made up: each secret key's value, each projected token.
const secretValue = (key: string) => `${key.toLowerCase()}-from-the-secret-0123456789abcdef`;
const secretFile = (secret: string, key: string) => `PEM of ${secret}/${key}\n`;
const tokenFor = (serviceAccount: string, audience: string) => `token of ${serviceAccount} for ${audience}`;

/**
 * A component's pod as its service would start in it, on this machine: its rendered environment,
 * each secretKeyRef given secretValue, each mounted token and Secret key written under a scratch
 * directory (and the paths in the environment pointing there), loaded by that service's own
 * config loader. The chart's names are the services' names, or this throws.
 */
async function startIn(rendered: Resource[], component: string) {
  const load = LOADERS[component];
  assert.ok(load, component);
  const pod = await podEnvIn(rendered, component);
  return { ...pod, config: load(pod.env) };
}

/** A component's pod and the environment it would see on this machine (startIn), not yet loaded. */
async function podEnvIn(rendered: Resource[], component: string) {
  const pod = podOf(rendered, component);
  const root = await mkdtemp(join(scratch, `${component}-`));
  const mounts = pod.containers[0]?.volumeMounts ?? [];
  for (const mount of mounts) {
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    const dir = join(root, mount.mountPath);
    await mkdir(dir, { recursive: true });
    for (const { serviceAccountToken: token } of volume?.projected?.sources ?? [])
      if (token)
        await writeFile(join(dir, token.path), tokenFor(pod.serviceAccountName ?? "default", token.audience));
    const secret = volume?.secret;
    for (const item of secret?.items ?? [])
      if (secret) await writeFile(join(dir, item.path), secretFile(secret.secretName, item.key));
  }
  const env: Record<string, string> = {};
  for (const { name, value, valueFrom } of envOf(pod)) {
    if (value !== undefined)
      env[name] = mounts.some((m) => value.startsWith(`${m.mountPath}/`)) ? join(root, value) : value;
    else if (valueFrom?.secretKeyRef) env[name] = secretValue(valueFrom.secretKeyRef.key);
  }
  return { pod, env, fileOf: (path: string) => join(root, path) };
}

describe("helm chart", { timeout: 10 * 60_000 }, () => {
  test("helm lint passes", async () => {
    for (const set of [[], ["--set", "simulator.enabled=true"]]) {
      const required = REQUIRED.flatMap((s) => ["--set", s]);
      const { stdout } = await exec(helm, ["lint", "--strict", chart, ...required, ...set]);
      assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/, set.join(" "));
    }
  });

  test("every rendered resource is valid against the Kubernetes 1.37 schemas", async () => {
    const oauth = join(scratch, "rendered-oauthbearer.yaml");
    await writeFile(oauth, await render("secrets.mongoUrl=true", "otel.endpoint=http://collector:4318"));
    // The other volumes and secret references: SCRAM, TLS with CAs, Redis credentials.
    const scram = join(scratch, "rendered-scram.yaml");
    await writeFile(scram, await render(...scramValues("scram-sha-512"), ...tlsValues));
    // The WhatsApp simulator's too, when asked for.
    const simulator = join(scratch, "rendered-simulator.yaml");
    await writeFile(
      simulator,
      await render("simulator.enabled=true", "simulator.jaegerUrl=http://127.0.0.1:16686"),
    );
    const { stdout, stderr } = await exec(python, [
      "-m",
      "kubernetes_validate",
      "--strict",
      "-k",
      "1.37.0",
      oauth,
      scram,
      simulator,
    ]);
    const passed = `${stdout}${stderr}`.match(/passed for resource/g)?.length ?? 0;
    // Every object of the three renders (their kinds are all Kubernetes' own).
    let rendered = 0;
    for (const file of [oauth, scram, simulator]) rendered += resources(await readFile(file, "utf8")).length;
    assert.ok(rendered >= SERVICES.length * 3 * 3 + 3, String(rendered));
    assert.equal(passed, rendered, `${stdout}${stderr}`);
  });

  test("each component gets a Deployment and a Service, probed on /healthz and /readyz", async () => {
    const out = await render();
    for (const name of COMPONENTS) {
      assert.match(out, new RegExp(`kind: Deployment\\nmetadata:\\n  name: shop-taituri-${name}\\n`));
      assert.match(out, new RegExp(`kind: Service\\nmetadata:\\n  name: shop-taituri-${name}\\n`));
    }
    const rendered = resources(out);
    for (const name of COMPONENTS)
      assert.deepEqual(
        podOf(rendered, name).containers[0]?.command,
        ["node", `services/${serviceOf(name)}/src/main.ts`],
        name,
      );
    assert.equal(out.match(/path: \/healthz/g)?.length, COMPONENTS.length * 2);
    assert.equal(out.match(/path: \/readyz/g)?.length, COMPONENTS.length);
    assert.match(out, /name: grpc\n\s+containerPort: 50051/);
  });

  test("ingress and payment are probed and scraped on their ops port, apart from public traffic; the dispatcher has no other", async () => {
    const rendered = resources(await render());
    const OPS: Record<string, { http?: number; ops: number }> = {
      ingress: { http: 3000, ops: 3100 },
      payment: { http: 3003, ops: 3103 },
      dispatcher: { ops: 3105 },
    };
    for (const name of COMPONENTS) {
      const { pod, config } = await startIn(rendered, name);
      const container = pod.containers[0];
      const deployment = rendered.find(
        (r) => r.kind === "Deployment" && r.metadata.name === `${FULLNAME}-${name}`,
      );
      const service = rendered.find((r) => r.kind === "Service" && r.metadata.name === `${FULLNAME}-${name}`);
      const ports = OPS[name];
      // Where the probes and the scraper go, by port name and number.
      const probed = ports ? "ops" : "http";
      const opsPort = container?.ports?.find((p) => p.name === probed)?.containerPort;
      for (const probe of [container?.livenessProbe, container?.readinessProbe, container?.startupProbe])
        assert.equal(probe?.httpGet?.port, probed, name);
      assert.equal(
        deployment?.spec?.template?.metadata?.annotations?.["prometheus.io/port"],
        String(opsPort),
        name,
      );
      if (!ports) continue;
      const http = ports.http === undefined ? [] : [{ name: "http", port: ports.http }];
      const named = [...http, { name: "ops", port: ports.ops }];
      assert.deepEqual(
        container?.ports,
        named.map((p) => ({ name: p.name, containerPort: p.port })),
        name,
      );
      assert.deepEqual(
        service?.spec?.ports?.map((p) => [p.name, p.port, p.targetPort]),
        named.map((p) => [p.name, p.port, p.name]),
        name,
      );
      // The service itself listens where the chart probes: its config, loaded from the pod's env.
      const loaded = config as unknown as Record<string, number>;
      const prefix = serviceOf(name).toUpperCase();
      if (ports.http !== undefined) assert.equal(loaded[`${prefix}_PORT`], ports.http, name);
      else assert.equal(envVar(pod, `${prefix}_PORT`), undefined, `${name} has no public listener`);
      assert.equal(loaded[`${prefix}_OPS_PORT`], ports.ops, name);
    }
  });

  test("an ops port equal to the public one fails to render, in the service's words", async () => {
    const stderr = await refusal("components.payment.opsPort=3003");
    const says = serviceSays(
      loadPaymentConfig,
      { DEPLOYMENT_ENVIRONMENT: "local", PAYMENT_PORT: "3003", PAYMENT_OPS_PORT: "3003" },
      "PAYMENT_OPS_PORT",
    );
    assert.deepEqual(refused(stderr), [`${says} [components.payment.opsPort]`], stderr);
  });

  test("secrets come from a Secret, never from values", async () => {
    const out = await render();
    for (const key of ["WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_ACCESS_TOKEN"]) {
      assert.match(
        out,
        new RegExp(
          `- name: ${key}\\n\\s+valueFrom: \\{ secretKeyRef: \\{ name: taituri-secrets, key: ${key} \\} \\}`,
        ),
      );
    }
    assert.match(await render("secrets.mongoUrl=true"), /- name: MONGO_URL\n\s+valueFrom: \{ secretKeyRef:/);
  });

  test("the chart's own values ask for no development default: Stripe, OpenAI, the cluster's issuer", async () => {
    const out = await render();
    assert.match(out, /- name: PAYMENT_PROVIDER\n\s+value: "stripe"/);
    assert.match(out, /- name: IMAGE_PROVIDER\n\s+value: "openai"/);
    assert.match(out, /- name: DEPLOYMENT_ENVIRONMENT\n\s+value: "production"/);
    assert.doesNotMatch(out, /OIDC_ISSUER_URL\n\s+value: "http:\/\/(127|localhost)/);
  });

  test("production values with payment.provider local fail to render, in the payment service's words", async () => {
    const stderr = await refusal("payment.provider=local");
    const says = serviceSays(loadPaymentConfig, { PAYMENT_PROVIDER: "local" }, "PAYMENT_PROVIDER");
    assert.match(stderr, /Invalid configuration:\n/);
    assert.ok(stderr.includes(`\n  ${says} [payment.provider]`), `${stderr}\nexpected: ${says}`);
  });

  test("every development value the chart sees is named in one refusal", async () => {
    const stderr = await refusal(
      "environment=staging",
      "payment.provider=local",
      "generation.imageProvider=local",
      "generation.oidcIssuerUrl=http://127.0.0.1:3010",
      "limiter.oidcIssuerUrl=http://localhost:3010",
      "payment.oidcIssuerUrl=http://[::1]:3010/",
    );
    const staging = { DEPLOYMENT_ENVIRONMENT: "staging" };
    const issuer = (load: (env: Record<string, string>) => unknown) =>
      serviceSays(load, { ...staging, OIDC_ISSUER_URL: "http://127.0.0.1:3010" }, "OIDC_ISSUER_URL");
    const expected = [
      `${serviceSays(loadPaymentConfig, { ...staging, PAYMENT_PROVIDER: "local" }, "PAYMENT_PROVIDER")} [payment.provider]`,
      `${serviceSays(loadGenerationConfig, { ...staging, IMAGE_PROVIDER: "local" }, "IMAGE_PROVIDER")} [generation.imageProvider]`,
      `${issuer(loadGenerationConfig)} [generation.oidcIssuerUrl]`,
      `${issuer(loadLimiterConfig)} [limiter.oidcIssuerUrl]`,
      `${issuer(loadPaymentConfig)} [payment.oidcIssuerUrl]`,
    ];
    assert.deepEqual(refused(stderr), expected, stderr);
  });

  test("under environment local the development values render (a demo cluster)", async () => {
    const out = await render("environment=local", "payment.provider=local", "generation.imageProvider=local");
    assert.match(out, /- name: PAYMENT_PROVIDER\n\s+value: "local"/);
    assert.match(out, /- name: IMAGE_PROVIDER\n\s+value: "local"/);
  });

  test("a disabled component renders nothing", async () => {
    const out = await render("components.payment.enabled=false", "payment.provider=local");
    assert.doesNotMatch(out, /shop-taituri-payment/);
  });

  test("each component runs as its service's own account (the dispatcher as ingress's), with no API-server token", async () => {
    const rendered = resources(await render());
    for (const name of COMPONENTS) {
      const account = rendered.find(
        (r) => r.kind === "ServiceAccount" && r.metadata.name === `${FULLNAME}-${serviceOf(name)}`,
      );
      assert.ok(account, `no ServiceAccount for ${name}`);
      assert.equal(account.automountServiceAccountToken, false, name);
      const pod = podOf(rendered, name);
      assert.equal(pod.serviceAccountName, `${FULLNAME}-${serviceOf(name)}`);
      assert.equal(pod.automountServiceAccountToken, false, name);
    }
    assert.equal(rendered.filter((r) => r.kind === "ServiceAccount").length, SERVICES.length);
    // The principals `npm run kafka-acls -- --kubernetes default/shop-taituri` grants: these accounts.
    for (const [service, principal] of Object.entries(kubernetesPrincipals("default", FULLNAME)))
      assert.equal(
        principal,
        `User:system:serviceaccount:default:${podOf(rendered, service).serviceAccountName}`,
      );
  });

  test("the Kafka components, and they alone, get Kafka's settings: as packages/kafka's KAFKA_SERVICES", async () => {
    const rendered = resources(await render());
    const withKafka = COMPONENTS.filter((name) => envVar(podOf(rendered, name), "KAFKA_BROKERS"));
    assert.deepEqual(withKafka, [...KAFKA_COMPONENTS].sort());
    const withRedis = COMPONENTS.filter((name) => envVar(podOf(rendered, name), "REDIS_URL"));
    assert.deepEqual(withRedis, ["limiter"]);
  });

  test("each Kafka component logs in with OAUTHBEARER, its own service account's token for the audience kafka", async () => {
    const rendered = resources(await render());
    for (const name of KAFKA_COMPONENTS) {
      const pod = podOf(rendered, name);
      assert.equal(envVar(pod, "KAFKA_SASL_MECHANISM")?.value, "oauthbearer", name);
      const path = envVar(pod, "KAFKA_OAUTH_TOKEN_FILE")?.value;
      assert.ok(path, name);
      const { mount, token } = mountedFile(pod, path);
      assert.deepEqual(token, { audience: "kafka", expirationSeconds: 3600, path: "token" }, name);
      assert.equal(mount.readOnly, true, name);
      for (const absent of ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SSL_CA_FILE"])
        assert.equal(envVar(pod, absent), undefined, `${name}: ${absent}`);

      // What the service would send the brokers: the token the kubelet projected for it.
      const { config } = await startIn(rendered, name);
      const sasl = kafkaSecurity(config).sasl;
      assert.ok(sasl?.mechanism === "oauthbearer", name);
      // The dispatcher's is ingress's principal, which the ACLs grant its groups.
      assert.deepEqual(await sasl.oauthBearerProvider(), {
        value: tokenFor(`${FULLNAME}-${serviceOf(name)}`, "kafka"),
      });
      assert.equal(config.KAFKA_SSL, false);
    }
    const audience = resources(await render("kafka.oauthAudience=kafka.shops.example"));
    const path = envVar(podOf(audience, "payment"), "KAFKA_OAUTH_TOKEN_FILE")?.value ?? "";
    assert.equal(mountedFile(podOf(audience, "payment"), path).token?.audience, "kafka.shops.example");
  });

  test("the limiter has no Kafka setting or token; it loads, with Redis", async () => {
    const rendered = resources(await render());
    const pod = podOf(rendered, "limiter");
    assert.deepEqual(
      envOf(pod).filter((e) => e.name.startsWith("KAFKA_")),
      [],
    );
    const audiences = (pod.volumes ?? [])
      .flatMap((v) => v.projected?.sources ?? [])
      .flatMap((s) => (s.serviceAccountToken ? [s.serviceAccountToken.audience] : []));
    // One token only: the API server's own audience, to read its issuer's discovery and keys.
    assert.deepEqual(audiences, [undefined]);
    const { config } = await startIn(rendered, "limiter");
    assert.equal(config.KAFKA_SASL_MECHANISM, undefined);
    assert.equal(config.REDIS_URL, "redis://redis:6379");
    assert.deepEqual(redisSecurity(config), {});
  });

  test("token verifiers reach an API-server issuer with the cluster CA and their own token; a public one without", async () => {
    const inCluster = resources(await render());
    for (const name of ["limiter", "payment"]) {
      const pod = podOf(inCluster, name);
      assert.equal(envVar(pod, "OIDC_CA_FILE")?.value, "/var/run/secrets/taituri/issuer/ca.crt");
      assert.equal(envVar(pod, "OIDC_DISCOVERY_TOKEN_FILE")?.value, "/var/run/secrets/taituri/issuer/token");
      const issuer = (pod.volumes ?? []).find((v) => v.name === "issuer");
      assert.ok(issuer?.projected?.sources?.some((s) => s.configMap?.name === "kube-root-ca.crt"));
    }
    for (const name of ["ingress", "conversation", "generation"])
      assert.equal(envVar(podOf(inCluster, name), "OIDC_CA_FILE"), undefined);
    const publicIssuer = resources(
      await render("oidcDiscovery.apiServer=false", "oidcDiscovery.jwksUrl=https://issuer.example/keys"),
    );
    const limiter = podOf(publicIssuer, "limiter");
    assert.equal(envVar(limiter, "OIDC_CA_FILE"), undefined);
    assert.equal(envVar(limiter, "OIDC_JWKS_URL")?.value, "https://issuer.example/keys");
    assert.equal(
      (limiter.volumes ?? []).find((v) => v.name === "issuer"),
      undefined,
    );
  });

  test("generation reaches every limiter pod through a headless Service, with the release in its spans", async () => {
    const rendered = resources(await renderIn("shops"));
    const headless = rendered.find(
      (r) => r.kind === "Service" && r.metadata.name === `${FULLNAME}-limiter-headless`,
    );
    assert.equal((headless?.spec as { clusterIP?: string } | undefined)?.clusterIP, "None");
    const generation = podOf(rendered, "generation");
    assert.equal(
      envVar(generation, "LIMITER_URL")?.value,
      `dns:///${FULLNAME}-limiter-headless.shops.svc:50051`,
    );
    assert.match(
      envVar(generation, "OTEL_RESOURCE_ATTRIBUTES")?.value ?? "",
      /k8s\.pod\.name=\$\(K8S_POD_NAME\)/,
    );
    assert.ok(envVar(generation, "TAITURI_VERSION")?.value);
  });

  test("a hook Job creates the topics before an upgrade (and after an install), logged in as the conversation", async () => {
    for (const sasl of [
      [],
      [
        "kafka.sasl=scram-sha-512",
        "kafka.usernames.conversation=conv",
        "kafka.usernames.ingress=i",
        "kafka.usernames.generation=g",
        "kafka.usernames.payment=p",
      ],
    ]) {
      const rendered = resources(await render(...sasl));
      const job = rendered.find((r) => r.kind === "Job" && r.metadata.name === `${FULLNAME}-kafka-topics`) as
        | (Resource & { metadata: { annotations?: Record<string, string> } })
        | undefined;
      assert.ok(job, "the topics Job");
      assert.equal(job.metadata.annotations?.["helm.sh/hook"], "post-install,pre-upgrade");
      const pod = job.spec?.template?.spec as PodSpec;
      assert.equal(pod.serviceAccountName, `${FULLNAME}-conversation`);
      assert.deepEqual(pod.containers[0]?.command, ["node", "scripts/kafka-topics.ts"]);
      // The conversation's own Kafka connection and login, nothing else.
      const kafkaEnv = (p: PodSpec) => envOf(p).filter((e) => e.name.startsWith("KAFKA_"));
      assert.deepEqual(kafkaEnv(pod), kafkaEnv(podOf(rendered, "conversation")));
      assert.ok(
        rendered.some((r) => r.kind === "NetworkPolicy" && r.metadata.name === `${FULLNAME}-kafka-topics`),
        "its own NetworkPolicy (DNS and Kafka only)",
      );
    }
    const off = resources(await render("kafkaTopicsJob.enabled=false"));
    assert.equal(
      off.find((r) => r.kind === "Job"),
      undefined,
    );
  });

  test("the limiter answers the generation's service account, whose pods alone hold its token", async () => {
    const rendered = resources(await renderIn("shops"));
    const caller = `system:serviceaccount:shops:${FULLNAME}-generation`;
    const limiter = await startIn(rendered, "limiter");
    assert.equal(envVar(limiter.pod, "LIMITER_CALLERS")?.value, caller);
    assert.deepEqual(loadLimiterConfig(limiter.env).LIMITER_CALLERS, [caller]);
    for (const name of COMPONENTS) {
      const pod = podOf(rendered, name);
      const limiterTokens = (pod.volumes ?? [])
        .flatMap((v) => v.projected?.sources ?? [])
        .filter((s) => s.serviceAccountToken?.audience === "limiter");
      assert.equal(limiterTokens.length, name === "generation" ? 1 : 0, name);
    }
    const generation = await startIn(rendered, "generation");
    assert.equal(generation.pod.serviceAccountName, `${FULLNAME}-generation`);
    const tokenFile = loadGenerationConfig(generation.env).OIDC_TOKEN_FILE;
    assert.equal(
      mountedFile(generation.pod, envVar(generation.pod, "OIDC_TOKEN_FILE")?.value ?? "").token?.audience,
      "limiter",
    );
    assert.equal(tokenFile, generation.fileOf("/var/run/secrets/taituri/limiter-token"));
    // Listed callers replace the default.
    const listed = resources(await renderIn("shops", "limiter.callers={ops-a,ops-b}"));
    assert.equal(envVar(podOf(listed, "limiter"), "LIMITER_CALLERS")?.value, "ops-a,ops-b");
  });

  test("SCRAM and PLAIN: each component its own user, its password its own key of the Secret", async () => {
    for (const mechanism of ["scram-sha-256", "scram-sha-512", "plain"] as const) {
      const rendered = resources(await render(...scramValues(mechanism)));
      for (const name of KAFKA_COMPONENTS) {
        const pod = podOf(rendered, name);
        // The dispatcher logs in as ingress: its user, its password.
        const user = SCRAM_USERS[serviceOf(name)];
        const key = `KAFKA_SASL_PASSWORD_${serviceOf(name).toUpperCase()}`;
        assert.equal(envVar(pod, "KAFKA_SASL_MECHANISM")?.value, mechanism);
        assert.equal(envVar(pod, "KAFKA_SASL_USERNAME")?.value, user);
        assert.deepEqual(envVar(pod, "KAFKA_SASL_PASSWORD")?.valueFrom, {
          secretKeyRef: { name: "taituri-secrets", key },
        });
        assert.equal(envVar(pod, "KAFKA_OAUTH_TOKEN_FILE"), undefined);
        assert.ok(!pod.volumes?.some((v) => v.name === "kafka-token"), name);
        const { config } = await startIn(rendered, name);
        assert.deepEqual(kafkaSecurity(config).sasl, {
          mechanism,
          username: user,
          password: secretValue(key),
        });
      }
    }
  });

  test("TLS to Kafka and Redis, with CAs from Secrets, and Redis's user and password", async () => {
    const rendered = resources(await render(...tlsValues));
    for (const name of KAFKA_COMPONENTS) {
      const pod = podOf(rendered, name);
      assert.equal(envVar(pod, "KAFKA_SSL")?.value, "true");
      assert.equal(envVar(pod, "KAFKA_SSL_REJECT_UNAUTHORIZED")?.value, "true");
      const { mount, secret } = mountedFile(pod, envVar(pod, "KAFKA_SSL_CA_FILE")?.value ?? "");
      assert.deepEqual(secret, { name: "kafka-ca", key: "ca.crt" });
      assert.equal(mount.readOnly, true);
      assert.deepEqual(
        envOf(pod).filter((e) => e.name.startsWith("REDIS_")),
        [],
        `${name} does not use Redis`,
      );
      const { config } = await startIn(rendered, name);
      assert.deepEqual(kafkaSecurity(config).ssl, {
        rejectUnauthorized: true,
        ca: secretFile("kafka-ca", "ca.crt"),
      });
      // TLS leaves the login as it was: the pod's token.
      assert.equal(config.KAFKA_SASL_MECHANISM, "oauthbearer");
    }
    const limiter = podOf(rendered, "limiter");
    assert.equal(envVar(limiter, "REDIS_USERNAME")?.value, "limiter");
    assert.deepEqual(envVar(limiter, "REDIS_PASSWORD")?.valueFrom, {
      secretKeyRef: { name: "taituri-secrets", key: "REDIS_PASSWORD" },
    });
    assert.equal(envVar(limiter, "REDIS_TLS")?.value, "true");
    assert.deepEqual(mountedFile(limiter, envVar(limiter, "REDIS_TLS_CA_FILE")?.value ?? "").secret, {
      name: "redis-ca",
      key: "ca.pem",
    });
    const { config } = await startIn(rendered, "limiter");
    assert.deepEqual(redisSecurity(config), {
      username: "limiter",
      password: secretValue("REDIS_PASSWORD"),
      tls: { ca: secretFile("redis-ca", "ca.pem") },
    });
  });

  test("kafka.sasl none fails to render outside local, naming kafka.sasl and why", async () => {
    const stderr = await refusal("kafka.sasl=none");
    const [line, ...others] = refused(stderr) ?? [];
    assert.deepEqual(others, [], stderr);
    assert.match(line ?? "", /^KAFKA_SASL_MECHANISM unset \(kafka\.sasl none\): /);
    assert.match(line ?? "", /anyone who reaches the brokers can write the paid requests/);
    assert.match(line ?? "", /kafka\.allowUnauthenticated true/);
    assert.match(line ?? "", /\(DEPLOYMENT_ENVIRONMENT=production\) \[kafka\.sasl\]$/);
    // Only the limiter, which does not use Kafka: nothing to refuse.
    const kafkaOff = KAFKA_COMPONENTS.map((name) => `components.${name}.enabled=false`);
    assert.match(await render("kafka.sasl=none", ...kafkaOff), /name: shop-taituri-limiter/);
  });

  test("kafka.sasl none renders with allowUnauthenticated, or under local: no login, and every service loads", async () => {
    for (const set of [["kafka.allowUnauthenticated=true"], ["environment=local"]]) {
      const rendered = resources(await render("kafka.sasl=none", ...set));
      for (const name of KAFKA_COMPONENTS) {
        const pod = podOf(rendered, name);
        assert.deepEqual(
          envOf(pod).filter((e) => e.name.startsWith("KAFKA_SASL_") || e.name.startsWith("KAFKA_OAUTH_")),
          [],
          name,
        );
        assert.ok(!pod.volumes?.some((v) => v.name === "kafka-token"), name);
        const { config } = await startIn(rendered, name);
        assert.deepEqual(kafkaSecurity(config), {});
      }
    }
  });

  test("Kafka and Redis settings that do not fit together fail to render, in the services' words", async () => {
    const stderr = await refusal(
      "kafka.sasl=scram-sha-256",
      "kafka.usernames.conversation=shop-conv",
      "kafka.tls.caSecret=kafka-ca",
      "redis.username=limiter",
      "redis.tls.caSecret=redis-ca",
    );
    const file = fileURLToPath(import.meta.url);
    const scram = { KAFKA_SASL_MECHANISM: "scram-sha-256", KAFKA_SASL_PASSWORD: "p" };
    const username = serviceSays(loadConversationConfig, scram, "KAFKA_SASL_USERNAME");
    assert.deepEqual(
      refused(stderr),
      [
        `${username} [kafka.usernames.generation]`,
        `${username} [kafka.usernames.ingress]`,
        `${username} [kafka.usernames.payment]`,
        `${serviceSays(loadConversationConfig, { KAFKA_SSL_CA_FILE: file }, "KAFKA_SSL_CA_FILE")} [kafka.tls.caSecret]`,
        `${serviceSays(loadLimiterConfig, { REDIS_USERNAME: "limiter" }, "REDIS_PASSWORD")} [redis.passwordSecretKey]`,
        `${serviceSays(loadLimiterConfig, { REDIS_TLS_CA_FILE: file }, "REDIS_TLS_CA_FILE")} [redis.tls.caSecret]`,
      ],
      stderr,
    );
    assert.match(
      await refusal("kafka.sasl=scram"),
      /\n {2}KAFKA_SASL_MECHANISM: scram is none of .* \[kafka\.sasl\]\n/,
    );
    // A rediss:// URL asks for TLS by itself.
    await render("redis.url=rediss://redis:6380", "redis.tls.caSecret=redis-ca");
  });

  test("kafka.tls.rejectUnauthorized false fails to render outside local, in the services' words", async () => {
    const off = ["kafka.tls.enabled=true", "kafka.tls.rejectUnauthorized=false"];
    const says = serviceSays(
      loadPaymentConfig,
      { KAFKA_SSL: "true", KAFKA_SSL_REJECT_UNAUTHORIZED: "false" },
      "KAFKA_SSL_REJECT_UNAUTHORIZED",
    );
    assert.deepEqual(refused(await refusal(...off)), [`${says} [kafka.tls.rejectUnauthorized]`]);
    const local = resources(await render(...off, "environment=local"));
    assert.equal(envVar(podOf(local, "payment"), "KAFKA_SSL_REJECT_UNAUTHORIZED")?.value, "false");
  });
  test("the webhook's pods hold no Graph API token, the dispatcher's none of the webhook's secrets", async () => {
    const secretsOf = (pod: PodSpec) =>
      envOf(pod)
        .filter((e) => e.valueFrom?.secretKeyRef)
        .map((e) => e.name)
        .sort();
    for (const set of [[], ["simulator.enabled=true"]]) {
      const rendered = resources(await render(...set));
      const webhook = await startIn(rendered, "ingress");
      const dispatcher = await startIn(rendered, "dispatcher");
      assert.deepEqual(secretsOf(webhook.pod), [
        "PSEUDONYM_KEY",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
      ]);
      assert.deepEqual(secretsOf(dispatcher.pod), ["PSEUDONYM_KEY", "WHATSAPP_ACCESS_TOKEN"]);
      assert.equal(envVar(webhook.pod, "WHATSAPP_API_URL"), undefined, "the webhook calls no Graph API");
      for (const pod of [webhook.pod, dispatcher.pod]) assert.equal(pod.containers[0]?.envFrom, undefined);
      // And each loads in its own role, with what that role needs.
      const webhookConfig = webhook.config as IngressConfig;
      assert.equal(webhookConfig.INGRESS_ROLE, "webhook");
      assert.equal(webhookConfig.WHATSAPP_ACCESS_TOKEN, undefined);
      assert.deepEqual(webhookConfig.WHATSAPP_APP_SECRET, [secretValue("WHATSAPP_APP_SECRET")]);
      const dispatcherConfig = dispatcher.config as IngressConfig;
      assert.equal(dispatcherConfig.INGRESS_ROLE, "dispatcher");
      assert.equal(dispatcherConfig.WHATSAPP_APP_SECRET, undefined);
      assert.equal(dispatcherConfig.WHATSAPP_VERIFY_TOKEN, undefined);
      assert.equal(dispatcherConfig.WHATSAPP_ACCESS_TOKEN, secretValue("WHATSAPP_ACCESS_TOKEN"));
    }
  });

  test("each ingress pod is told its role: without it either would try to run both, and refuse to start", async () => {
    const rendered = resources(await render());
    for (const [name, role] of [
      ["ingress", "webhook"],
      ["dispatcher", "dispatcher"],
    ] as const) {
      const { pod, env } = await podEnvIn(rendered, name);
      assert.equal(envVar(pod, "INGRESS_ROLE")?.value, role, name);
      assert.equal(envVar(pod, "OUTBOUND_DISPATCHER"), undefined, name);
      // INGRESS_ROLE's default is all, which needs the secrets the chart gave the other role.
      const { INGRESS_ROLE: _, ...withoutRole } = env;
      assert.throws(() => loadIngressConfig(withoutRole), ConfigError, name);
    }
  });

  test("the webhook without the dispatcher fails to render; the dispatcher without the webhook runs as ingress's account", async () => {
    const stderr = await refusal("components.dispatcher.enabled=false");
    assert.deepEqual(refused(stderr), [
      "INGRESS_ROLE: the webhook (components.ingress) without the dispatcher that sends the conversation's replies: shoppers' messages would be taken and never answered; enable components.dispatcher [components.dispatcher.enabled]",
    ]);
    const account = (rendered: Resource[]) =>
      rendered.find((r) => r.kind === "ServiceAccount" && r.metadata.name === `${FULLNAME}-ingress`);
    const sendOnly = resources(await render("components.ingress.enabled=false"));
    assert.equal(
      sendOnly.find((r) => r.kind === "Deployment" && r.metadata.name === `${FULLNAME}-ingress`),
      undefined,
    );
    assert.ok(account(sendOnly), "ingress's ServiceAccount, for the dispatcher");
    const dispatcher = await startIn(sendOnly, "dispatcher");
    assert.equal(dispatcher.pod.serviceAccountName, `${FULLNAME}-ingress`);
    assert.equal((dispatcher.config as IngressConfig).INGRESS_ROLE, "dispatcher");
    // Only the credentials the pods that remain read.
    assert.match(
      await refusal("components.ingress.enabled=false", "secrets.name="),
      /no Secret named for PSEUDONYM_KEY, WHATSAPP_ACCESS_TOKEN, ORDERS_IMAGE_URL_SECRET, /,
    );
    const neither = ["components.ingress.enabled=false", "components.dispatcher.enabled=false"];
    assert.equal(account(resources(await render(...neither))), undefined);
    assert.match(
      await refusal(...neither, "secrets.name="),
      /no Secret named for PSEUDONYM_KEY, ORDERS_IMAGE_URL_SECRET, /,
    );
  });

  test("the dispatcher's pods share the number's rate, outlast a send, and listen on their ops port alone", async () => {
    const rateOf = async (...set: string[]) => {
      const { config } = await startIn(resources(await render(...set)), "dispatcher");
      return (config as IngressConfig).OUTBOUND_RATE_PER_NUMBER;
    };
    // The number's whole rate in every pod: each paces to its share of the partitions (pacer.ts).
    assert.equal(await rateOf(), 80);
    assert.equal(await rateOf("whatsapp.ratePerNumber=250", "components.dispatcher.replicas=3"), 250);

    const { pod, config } = await startIn(resources(await render()), "dispatcher");
    const graphTimeoutMs = (config as IngressConfig).GRAPH_API_TIMEOUT_MS;
    assert.ok((pod.terminationGracePeriodSeconds ?? 0) * 1000 > 2 * graphTimeoutMs + 10_000);
    assert.deepEqual(refused(await refusal("components.dispatcher.terminationGracePeriodSeconds=30")), [
      `terminationGracePeriodSeconds: 30 s is not more than twice GRAPH_API_TIMEOUT_MS (${graphTimeoutMs} ms: a send, and its resend to the phone number) + 10 s to leave the consumer groups: a rollout would kill a send mid-way, and its take-over could send the shopper the message twice; raise it [components.dispatcher.terminationGracePeriodSeconds]`,
    ]);
    await render("components.dispatcher.terminationGracePeriodSeconds=31");

    assert.deepEqual(
      refused(
        await refusal("components.dispatcher.httpPort=3005", "components.dispatcher.portEnv=INGRESS_PORT"),
      ),
      ["httpPort", "portEnv"].map(
        (key) =>
          `${key}: the dispatcher (INGRESS_ROLE=dispatcher) listens on nothing but its opsPort; unset it [components.dispatcher.${key}]`,
      ),
    );
    assert.deepEqual(refused(await refusal("components.dispatcher.serviceAccountAnnotations.team=shop")), [
      "serviceAccountAnnotations: the dispatcher runs as ingress's ServiceAccount (its Kafka principal), whose annotations are components.ingress's: set them there [components.dispatcher.serviceAccountAnnotations]",
    ]);
  });

  test("the WhatsApp simulator is not deployed unless asked: no object of it, and the dispatcher sends to Meta", async () => {
    const out = await render();
    assert.doesNotMatch(out, /simulator/i);
    const dispatcher = await startIn(resources(out), "dispatcher");
    assert.equal(envVar(dispatcher.pod, "WHATSAPP_API_URL")?.value, "https://graph.facebook.com/v23.0");
    assert.equal(loadIngressConfig(dispatcher.env).WHATSAPP_API_URL, "https://graph.facebook.com/v23.0");
  });

  test("simulator.enabled: its own Deployment, Service and account, like the components'", async () => {
    const rendered = resources(await render("simulator.enabled=true"));
    const simulator = (kind: string) =>
      rendered.find((r) => r.kind === kind && r.metadata.name === `${FULLNAME}-simulator`);
    assert.equal(simulator("ServiceAccount")?.automountServiceAccountToken, false);
    assert.deepEqual(simulator("Service")?.spec?.ports, [{ name: "http", port: 3900, targetPort: "http" }]);
    // Its chats are in one process's memory.
    assert.equal(simulator("Deployment")?.spec?.replicas, 1);
    const pod = podOf(rendered, "simulator");
    const ingressPod = podOf(rendered, "ingress");
    const [container] = pod.containers;
    const [ingressContainer] = ingressPod.containers;
    assert.ok(container && ingressContainer);
    assert.equal(pod.serviceAccountName, `${FULLNAME}-simulator`);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(container.command, ["node", "packages/simulator/src/main.ts"]);
    assert.equal(container.image, ingressContainer.image);
    assert.deepEqual(pod.securityContext, ingressPod.securityContext);
    assert.deepEqual(container.securityContext, ingressContainer.securityContext);
    assert.deepEqual(container.ports, [{ name: "http", containerPort: 3900 }]);
    for (const key of ["WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN", "PSEUDONYM_KEY"])
      assert.deepEqual(envVar(pod, key)?.valueFrom, { secretKeyRef: { name: "taituri-secrets", key } }, key);
    // No development clock in a cluster: the services refuse one outside local.
    for (const name of [...COMPONENTS, "simulator"])
      assert.equal(envVar(podOf(rendered, name), "DEV_CLOCK_URL"), undefined, name);
    // The simulator's own objects (and its NetworkPolicy) are all that it adds.
    const without = resources(await render());
    const added = rendered
      .filter((r) => !without.some((w) => w.kind === r.kind && w.metadata.name === r.metadata.name))
      .map((r) => `${r.kind}/${r.metadata.name}`)
      .sort();
    assert.deepEqual(
      added,
      ["Deployment", "NetworkPolicy", "Service", "ServiceAccount"].map((k) => `${k}/${FULLNAME}-simulator`),
    );
  });

  test("simulator.enabled: ingress, the dispatcher and the simulator play each other, on the simulator's own paths", async () => {
    const rendered = resources(await render("simulator.enabled=true"));
    const serviceOf = (name: string) =>
      rendered.find((r) => r.kind === "Service" && r.metadata.name === `${FULLNAME}-${name}`);
    const portOf = (name: string) => serviceOf(name)?.spec?.ports?.find((p) => p.name === "http")?.port;
    // The pod's environment, loaded by the simulator's own loader as main.ts loads it.
    const { pod, env } = await podEnvIn(rendered, "simulator");
    const config = loadSimulatorConfig(env);
    assert.equal(config.SIMULATOR_PORT, pod.containers[0]?.ports?.[0]?.containerPort);
    assert.equal(config.SIMULATOR_HOST, "0.0.0.0");
    assert.equal(config.SIMULATOR_WEBHOOK_URL, `http://${FULLNAME}-ingress:${portOf("ingress")}/webhook`);
    assert.equal(config.WHATSAPP_APP_SECRET, secretValue("WHATSAPP_APP_SECRET"));
    assert.equal(config.WHATSAPP_ACCESS_TOKEN, secretValue("WHATSAPP_ACCESS_TOKEN"));
    assert.equal(config.DEPLOYMENT_ENVIRONMENT, "production");
    assert.equal(config.SIMULATOR_JAEGER_URL, undefined);

    const sim = await startSimulator({
      webhookUrl: config.SIMULATOR_WEBHOOK_URL,
      appSecret: config.WHATSAPP_APP_SECRET,
      accessToken: config.WHATSAPP_ACCESS_TOKEN,
    });
    try {
      // The dispatcher's Graph API: the simulator's Service, at the path the simulator serves it on.
      const dispatcher = await startIn(rendered, "dispatcher");
      assert.equal(
        loadIngressConfig(dispatcher.env).WHATSAPP_API_URL,
        `http://${FULLNAME}-simulator:${portOf("simulator")}${new URL(sim.graphUrl).pathname}`,
      );
      // Its webhooks go to ingress, which checks them with the secret the simulator signs with.
      const ingress = await startIn(rendered, "ingress");
      assert.deepEqual(loadIngressConfig(ingress.env).WHATSAPP_APP_SECRET, [config.WHATSAPP_APP_SECRET]);
      assert.equal(loadIngressConfig(dispatcher.env).WHATSAPP_ACCESS_TOKEN, config.WHATSAPP_ACCESS_TOKEN);
      // The probes ask a path the simulator answers.
      const [container] = pod.containers;
      for (const probe of [container?.livenessProbe, container?.readinessProbe]) {
        assert.equal(probe?.httpGet?.port, "http");
        const response = await fetch(`${sim.url}${probe?.httpGet?.path}`);
        assert.equal(response.status, 200, probe?.httpGet?.path);
      }
    } finally {
      await sim.close();
    }
    const jaeger = await podEnvIn(
      resources(
        await render(
          "simulator.enabled=true",
          "simulator.jaegerUrl=http://127.0.0.1:16686",
          "simulator.jaegerUi=true",
        ),
      ),
      "simulator",
    );
    const withJaeger = loadSimulatorConfig(jaeger.env);
    assert.equal(withJaeger.SIMULATOR_JAEGER_URL, "http://127.0.0.1:16686");
    assert.equal(withJaeger.SIMULATOR_JAEGER_UI, true);
  });

  test("simulator.enabled without ingress fails to render", async () => {
    const stderr = await refusal("simulator.enabled=true", "components.ingress.enabled=false");
    assert.deepEqual(refused(stderr), [
      "SIMULATOR_WEBHOOK_URL: no ingress in this release for the WhatsApp simulator to send its webhooks to; enable components.ingress, or leave the simulator off [simulator.enabled]",
    ]);
  });

  test("each component's grace period comes from values; generation's outlasts a paid call in flight", async () => {
    const rendered = resources(await render("components.payment.terminationGracePeriodSeconds=30"));
    for (const name of COMPONENTS)
      assert.ok((podOf(rendered, name).terminationGracePeriodSeconds ?? 0) > 0, name);
    assert.equal(podOf(rendered, "payment").terminationGracePeriodSeconds, 30);
    const generation = await startIn(rendered, "generation");
    const config = generation.config as GenerationConfig;
    const graceMs = (generation.pod.terminationGracePeriodSeconds ?? 0) * 1000;
    // The service drains for the lease (no GENERATION_DRAIN_MS), which covers a whole call.
    assert.equal(generation.env.GENERATION_DRAIN_MS, undefined);
    assert.equal(drainMs(config), config.GENERATION_LEASE_MS);
    assert.ok(graceMs > drainMs(config) + 10_000, `${graceMs} ms of grace`);
    assert.ok(graceMs > config.OPENAI_TIMEOUT_MS + 10_000, `${graceMs} ms of grace`);
  });

  test("a generation grace period a paid call could outlast fails to render, naming the value", async () => {
    for (const grace of ["75", "60", "45"]) {
      const stderr = await refusal(`components.generation.terminationGracePeriodSeconds=${grace}`);
      assert.deepEqual(refused(stderr), [
        `terminationGracePeriodSeconds: ${grace} s is not more than GENERATION_DRAIN_MS (65000 ms; generation.leaseMs when drainMs is empty) + 10 s to leave the consumer group: a rollout would kill a paid image call mid-way and its take-over pay again; raise it, or lower generation.drainMs to have calls cancelled and handed back [components.generation.terminationGracePeriodSeconds]`,
      ]);
    }
  });

  test("a shorter generation.drainMs renders a shorter grace: calls past it are cancelled and handed back", async () => {
    const rendered = resources(
      await render("generation.drainMs=20000", "components.generation.terminationGracePeriodSeconds=31"),
    );
    const generation = await startIn(rendered, "generation");
    assert.equal(generation.pod.terminationGracePeriodSeconds, 31);
    assert.equal(drainMs(generation.config as GenerationConfig), 20_000);
    const stderr = await refusal(
      "generation.drainMs=20000",
      "components.generation.terminationGracePeriodSeconds=30",
    );
    assert.match(
      stderr,
      /terminationGracePeriodSeconds: 30 s is not more than GENERATION_DRAIN_MS \(20000 ms/,
    );
  });
});
