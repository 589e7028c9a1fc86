import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ensureGoTool, ensurePythonTool } from "@taituri/devenv/tools";
import { parseAllDocuments } from "yaml";

/**
 * The chart against Kubernetes conventions and policy: rendered with the default and the production
 * example values, checked by helm lint, kubernetes-validate and kube-score (every finding fixed or
 * waived in the chart's README), and asserted on: the restricted Pod Security Standard, the
 * NetworkPolicies, no Secret from values in production, a checksum per mounted ConfigMap.
 */
const exec = promisify(execFile);
const chartDir = new URL("../../deploy/helm/taituri/", import.meta.url).pathname;
const PRODUCTION = join(chartDir, "values-production.yaml");
const FULLNAME = "shop-taituri";
/** A Deployment each; the dispatcher is ingress's outbound side, in pods of its own. */
const COMPONENTS = ["conversation", "dispatcher", "generation", "ingress", "limiter", "payment"];
const REQUIRED = ["payment.publicUrl=https://pay.shop.example"];
// Every optional object the chart renders, so the checks see them all.
const ALL_FLAGS = [
  ...REQUIRED,
  "ingress.enabled=true",
  "ingress.hosts.webhook=bot.shop.example",
  "ingress.hosts.payment=pay.shop.example",
  "metrics.serviceMonitor.enabled=true",
  "metrics.prometheusRule.enabled=true",
  "metrics.dashboard.enabled=true",
  "components.conversation.autoscaling.enabled=true",
];

let helm: string;
let python: string;
let kubeScore: string;
let scratch: string;

before(async () => {
  [helm, python, kubeScore] = await Promise.all([
    ensureGoTool({ name: "helm", module: "helm.sh/helm/v3/cmd/helm", version: "v3.22.0" }),
    ensurePythonTool({ name: "kubernetes-validate", pipPackage: "kubernetes-validate", version: "1.37.0" }),
    ensureGoTool({
      name: "kube-score",
      module: "github.com/zegl/kube-score/cmd/kube-score",
      version: "v1.20.0",
    }),
  ]);
  scratch = await mkdtemp(join(tmpdir(), "taituri-helm-policy-"));
});
after(() => rm(scratch, { recursive: true, force: true }));

interface Container {
  name: string;
  env?: Array<{ name: string; valueFrom?: unknown }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: unknown;
  readinessProbe?: unknown;
  securityContext?: SecurityContext;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[] };
  seccompProfile?: { type: string };
}
interface PodSpec {
  securityContext?: SecurityContext;
  containers: Container[];
  volumes?: Array<{ name: string; configMap?: { name: string } }>;
}
interface Peer {
  podSelector?: { matchLabels?: Record<string, string> };
  namespaceSelector?: unknown;
  ipBlock?: { cidr: string; except?: string[] };
}
interface Rule {
  ports?: Array<{ port: string | number; protocol?: string }>;
  to?: Peer[];
  from?: Peer[];
}
interface Resource {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    template?: { metadata?: { annotations?: Record<string, string> }; spec: PodSpec };
    containers?: Container[];
    selector?: { matchLabels?: Record<string, string> };
    podSelector?: { matchLabels?: Record<string, string> };
    ingress?: Rule[];
    egress?: Rule[];
    rules?: Array<{ host: string; http: { paths: Array<{ path: string; backend: unknown }> } }>;
  };
}

async function render(args: string[]): Promise<string> {
  const { stdout } = await exec(helm, ["template", "shop", chartDir, ...args]);
  return stdout;
}
const withSet = (set: string[]) => set.flatMap((s) => ["--set", s]);
const parse = (yaml: string): Resource[] =>
  parseAllDocuments(yaml)
    .map((d) => d.toJS() as Resource | null)
    .filter((r): r is Resource => r !== null);

/** The renders every check runs on: the defaults (all flags on) and the production example. */
async function renders(): Promise<Array<{ name: string; yaml: string }>> {
  return [
    { name: "default", yaml: await render(withSet(ALL_FLAGS)) },
    { name: "production", yaml: await render(["-f", PRODUCTION]) },
  ];
}

async function refusal(set: string[]): Promise<string> {
  return render(withSet(set)).then(
    () => assert.fail(`rendered with ${set.join(" ")}`),
    (error: { stderr?: string }) => error.stderr ?? String(error),
  );
}

/** Each pod spec rendered (Deployments' templates, and the test hook's Pod), by object name. */
function pods(
  rendered: Resource[],
): Array<{ name: string; pod: PodSpec; annotations: Record<string, string> }> {
  return rendered.flatMap((r) => {
    if (r.kind === "Deployment" && r.spec?.template)
      return [
        {
          name: r.metadata.name,
          pod: r.spec.template.spec,
          annotations: r.spec.template.metadata?.annotations ?? {},
        },
      ];
    if (r.kind === "Pod" && r.spec?.containers)
      return [{ name: r.metadata.name, pod: r.spec as PodSpec, annotations: r.metadata.annotations ?? {} }];
    return [];
  });
}

/** The kube-score waivers of the chart's README: its table's rows `| check | finding | why |`. */
async function waivers(): Promise<Array<{ check: string; finding: string; why: string }>> {
  const readme = await readFile(join(chartDir, "README.md"), "utf8");
  const section = readme.split("## Policy checks, and what is waived")[1] ?? "";
  return section
    .split("\n")
    .filter((line) => /^\| [a-z]+(-[a-z]+)+ \|/.test(line))
    .map((line) => {
      const [check = "", finding = "", why = ""] = line
        .split("|")
        .slice(1, 4)
        .map((c) => c.trim());
      return { check, finding, why };
    });
}

describe("helm chart policy", { timeout: 10 * 60_000 }, () => {
  test("helm lint --strict passes with the default and the production values", async () => {
    for (const args of [withSet(ALL_FLAGS), ["-f", PRODUCTION]]) {
      const { stdout } = await exec(helm, ["lint", "--strict", chartDir, ...args]);
      assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/, args.join(" "));
    }
  });

  test("kubernetes-validate (strict) passes every object but the Prometheus Operator's", async () => {
    for (const { name, yaml } of await renders()) {
      const file = join(scratch, `${name}.yaml`);
      await writeFile(file, yaml);
      const { stdout, stderr } = await exec(python, [
        "-m",
        "kubernetes_validate",
        "--strict",
        "-k",
        "1.37.0",
        file,
      ]);
      const out = `${stdout}${stderr}`;
      const rendered = parse(yaml);
      const custom = rendered.filter((r) => ["ServiceMonitor", "PrometheusRule"].includes(r.kind)).length;
      assert.ok(custom > 0, name);
      // Custom resources have no schema in kubernetes-validate: each is named as skipped, nothing else.
      assert.equal(out.match(/passed for resource/g)?.length, rendered.length - custom, out);
      assert.equal(
        out.match(/Couldn't find schema for kind (ServiceMonitor|PrometheusRule) /g)?.length,
        custom,
      );
    }
  });

  test("kube-score: every finding of its default checks is fixed or waived in the chart's README", async () => {
    const waived = await waivers();
    assert.ok(waived.length > 0);
    for (const w of waived) assert.ok(w.why.length > 40, `waiver of ${w.check} gives a reason`);
    const used = new Set<string>();
    for (const { name, yaml } of await renders()) {
      const file = join(scratch, `score-${name}.yaml`);
      await writeFile(file, yaml);
      // Exits 1 whenever it finds anything critical: the findings are in the JSON either way.
      const stdout = await exec(kubeScore, ["score", "-o", "json", file]).then(
        (r) => r.stdout,
        (error: { stdout?: string }) => error.stdout ?? "",
      );
      const objects = JSON.parse(stdout) as Array<{
        object_name: string;
        checks: Array<{
          check: { id: string };
          grade: number;
          skipped: boolean;
          comments: Array<{ summary: string }> | null;
        }>;
      }>;
      assert.ok(objects.length > 0, stdout);
      const unwaived: string[] = [];
      for (const object of objects)
        for (const check of object.checks) {
          if (check.skipped || check.grade >= 10) continue;
          for (const comment of check.comments ?? [{ summary: "" }]) {
            const w = waived.find((w) => w.check === check.check.id && comment.summary.includes(w.finding));
            if (w) used.add(`${w.check}|${w.finding}`);
            else unwaived.push(`${name}: ${object.object_name}: ${check.check.id}: ${comment.summary}`);
          }
        }
      assert.deepEqual(unwaived, []);
    }
    // A waiver nothing needs any more is a stale promise in the README.
    assert.deepEqual(
      waived.map((w) => `${w.check}|${w.finding}`).filter((w) => !used.has(w)),
      [],
    );
  });

  test("every container: probes, resources, and the restricted Pod Security Standard", async () => {
    for (const { name, yaml } of await renders()) {
      const all = pods(parse(yaml));
      assert.equal(all.filter((p) => p.name.startsWith(FULLNAME)).length, COMPONENTS.length + 1, name);
      for (const { name: pod, pod: spec } of all) {
        const where = `${name}: ${pod}`;
        assert.equal(spec.securityContext?.runAsNonRoot, true, where);
        assert.ok((spec.securityContext?.runAsUser ?? 0) > 10000, where);
        for (const container of spec.containers) {
          const c = container.securityContext;
          assert.equal(c?.runAsNonRoot, true, where);
          assert.equal(c?.readOnlyRootFilesystem, true, where);
          assert.equal(c?.allowPrivilegeEscalation, false, where);
          assert.deepEqual(c?.capabilities?.drop, ["ALL"], where);
          assert.equal(
            (c?.seccompProfile ?? spec.securityContext?.seccompProfile)?.type,
            "RuntimeDefault",
            where,
          );
          assert.ok(container.resources?.requests?.memory && container.resources.limits?.memory, where);
          assert.ok(container.resources?.requests?.cpu, where);
          // The test hook runs once and ends: it has no probes to pass.
          if (pod.endsWith("-test-readyz")) continue;
          assert.ok(container.livenessProbe && container.readinessProbe, where);
        }
        // A read-only root: /tmp is an emptyDir.
        assert.ok(
          pod.endsWith("-test-readyz") ||
            spec.containers[0]?.volumeMounts?.some((m) => m.mountPath === "/tmp"),
          where,
        );
      }
    }
  });

  test("the limiter's gRPC admits generation's pods and nothing else; ops ports only monitoring and the test", async () => {
    for (const { name, yaml } of await renders()) {
      const rendered = parse(yaml);
      const policy = rendered.find(
        (r) => r.kind === "NetworkPolicy" && r.metadata.name === `${FULLNAME}-limiter`,
      );
      const rules = policy?.spec?.ingress ?? [];
      assert.ok(rules.length > 0, name);
      for (const rule of rules) {
        assert.ok(rule.from && rule.from.length > 0, `${name}: a rule of the limiter admits anyone`);
        const ports = (rule.ports ?? []).map((p) => p.port);
        if (ports.includes("grpc"))
          assert.deepEqual(
            rule.from.map((peer) => peer.podSelector?.matchLabels?.["app.kubernetes.io/component"]),
            ["generation"],
            name,
          );
        else {
          assert.deepEqual(ports, ["http"], name);
          assert.ok(
            rule.from.every(
              (peer) =>
                peer.namespaceSelector ||
                peer.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "test",
            ),
            name,
          );
        }
      }
      assert.ok(
        rules.some((r) => r.ports?.some((p) => p.port === "grpc")),
        name,
      );
      // Every component's pods have a policy; only ingress's and payment's http port is public.
      for (const component of COMPONENTS) {
        const own = rendered.find(
          (r) => r.kind === "NetworkPolicy" && r.metadata.name === `${FULLNAME}-${component}`,
        );
        assert.ok(own, `${name}: ${component}`);
        const open = (own.spec?.ingress ?? []).filter((r) => !r.from || r.from.some((p) => p.ipBlock));
        if (name === "default")
          assert.deepEqual(
            open.flatMap((r) => r.ports?.map((p) => p.port)),
            ["ingress", "payment"].includes(component) ? ["http"] : [],
            component,
          );
      }
    }
  });

  test("NetworkPolicy: only the dispatcher reaches the Graph API (or the simulator); the webhook's pods reach their servers alone", async () => {
    const policyOf = (rendered: Resource[], component: string) => {
      const policy = rendered.find(
        (r) => r.kind === "NetworkPolicy" && r.metadata.name === `${FULLNAME}-${component}`,
      );
      assert.ok(policy?.spec, component);
      return policy.spec;
    };
    const toPorts = (rules: Rule[] | undefined) =>
      (rules ?? []).flatMap((r) => (r.ports ?? []).map((p) => p.port)).sort((a, b) => Number(a) - Number(b));
    const toInternet = (rules: Rule[] | undefined) =>
      (rules ?? []).filter((r) => r.to?.some((peer) => peer.ipBlock?.cidr === "0.0.0.0/0"));
    const component = (peer: Peer) => peer.podSelector?.matchLabels?.["app.kubernetes.io/component"];
    const toPods = (rules: Rule[] | undefined) =>
      (rules ?? []).flatMap((r) => (r.to ?? []).map(component)).filter((c) => c !== undefined);

    const rendered = parse(await render(withSet(ALL_FLAGS)));
    const webhook = policyOf(rendered, "ingress");
    const dispatcher = policyOf(rendered, "dispatcher");
    // DNS, Kafka, MongoDB and OTLP for both; 443 to the internet for the dispatcher alone.
    assert.deepEqual(toPorts(webhook.egress), [53, 53, 4317, 4318, 9092, 27017]);
    assert.deepEqual(toInternet(webhook.egress), []);
    assert.deepEqual(toPorts(dispatcher.egress), [53, 53, 443, 4317, 4318, 9092, 27017]);
    assert.deepEqual(
      toInternet(dispatcher.egress).map((r) => r.ports),
      [[{ port: 443, protocol: "TCP" }]],
    );
    // Nothing reaches the dispatcher but the scrapers and the test, on its ops port.
    assert.deepEqual(
      (dispatcher.ingress ?? []).map((r) => r.ports?.map((p) => p.port)),
      [["ops"]],
    );
    assert.ok(
      (dispatcher.ingress ?? [])
        .flatMap((r) => r.from ?? [])
        .every((peer) => peer.namespaceSelector || component(peer) === "test"),
    );

    // With the simulator: the dispatcher calls its Graph API, and no longer the internet; the
    // simulator takes calls from the dispatcher and posts its webhooks to ingress.
    const simulated = parse(await render(withSet([...ALL_FLAGS, "simulator.enabled=true"])));
    const withSimulator = policyOf(simulated, "dispatcher");
    assert.deepEqual(toInternet(withSimulator.egress), []);
    assert.deepEqual(toPods(withSimulator.egress), ["simulator"]);
    assert.deepEqual(toPorts(withSimulator.egress), [53, 53, 3900, 4317, 4318, 9092, 27017]);
    const webhookWithSimulator = policyOf(simulated, "ingress");
    assert.deepEqual(toPods(webhookWithSimulator.egress), []);
    assert.deepEqual(toInternet(webhookWithSimulator.egress), []);
    const simulator = policyOf(simulated, "simulator");
    assert.deepEqual(
      (simulator.ingress ?? []).flatMap((r) => (r.from ?? []).map(component)),
      ["dispatcher"],
    );
    assert.deepEqual(toPods(simulator.egress), ["ingress"]);
  });

  test("NetworkPolicy: with publicFrom set, ingress's webhook port also admits the simulator's pods, when enabled (and only then)", async () => {
    const publicFrom = [
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } },
    ];
    const renderWith = async (set: string[], from: unknown[] = publicFrom) =>
      parse(
        await render([
          ...withSet([...ALL_FLAGS, ...set]),
          "--set-json",
          `networkPolicy.publicFrom=${JSON.stringify(from)}`,
        ]),
      );
    const find = (rendered: Resource[], kind: string, name: string) => {
      const found = rendered.find((r) => r.kind === kind && r.metadata.name === `${FULLNAME}-${name}`);
      assert.ok(found?.spec, `${kind} ${name}`);
      return found.spec;
    };
    /** Who a component's policy admits to its public (http) port: its rule's `from`, undefined for anyone. */
    const publicPeers = (rendered: Resource[], component: string) => {
      const rules = (find(rendered, "NetworkPolicy", component).ingress ?? []).filter((r) =>
        r.ports?.some((p) => p.port === "http"),
      );
      assert.equal(rules.length, 1, component);
      return rules[0]?.from;
    };

    // The simulator posts Meta's signed webhooks to ingress's port from its own pods: admitted by
    // the labels its Deployment selects them by, beside publicFrom's peers.
    const simulated = await renderWith(["simulator.enabled=true"]);
    const simulatorPods = find(simulated, "Deployment", "simulator").selector?.matchLabels;
    assert.ok(simulatorPods);
    assert.deepEqual(publicPeers(simulated, "ingress"), [
      ...publicFrom,
      { podSelector: { matchLabels: simulatorPods } },
    ]);
    // Nothing else is widened: payment's public port still admits publicFrom alone.
    assert.deepEqual(publicPeers(simulated, "payment"), publicFrom);
    // The other way: the dispatcher reaches the simulator's port, which admits it, and the
    // simulator reaches ingress's webhook port.
    const simulatorPolicy = find(simulated, "NetworkPolicy", "simulator");
    assert.deepEqual(
      find(simulated, "NetworkPolicy", "dispatcher").egress?.filter((r) =>
        r.to?.some((p) => p.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "simulator"),
      ),
      [{ ports: [{ port: 3900, protocol: "TCP" }], to: [{ podSelector: { matchLabels: simulatorPods } }] }],
    );
    assert.deepEqual(simulatorPolicy.ingress, [
      {
        ports: [{ port: "http", protocol: "TCP" }],
        from: [
          { podSelector: { matchLabels: find(simulated, "Deployment", "dispatcher").selector?.matchLabels } },
        ],
      },
    ]);
    assert.deepEqual(
      simulatorPolicy.egress?.filter((r) =>
        r.to?.some((p) => p.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "ingress"),
      ),
      [
        {
          ports: [{ port: 3000, protocol: "TCP" }],
          to: [
            { podSelector: { matchLabels: find(simulated, "Deployment", "ingress").selector?.matchLabels } },
          ],
        },
      ],
    );

    // Without the simulator, publicFrom alone.
    assert.deepEqual(publicPeers(await renderWith([]), "ingress"), publicFrom);
    // publicFrom empty: anyone, the simulator among them; no peer list that would narrow it.
    assert.equal(publicPeers(await renderWith(["simulator.enabled=true"], []), "ingress"), undefined);
  });

  test("production: no Secret rendered, credentials in values refused, each missing Secret named", async () => {
    for (const { name, yaml } of await renders())
      assert.deepEqual(
        parse(yaml).filter((r) => r.kind === "Secret"),
        [],
        name,
      );
    const inline = await refusal([
      ...REQUIRED,
      "secrets.inline.PSEUDONYM_KEY=a-pseudonym-key-of-more-than-32-bytes",
    ]);
    assert.match(inline, /secrets\.inline holds PSEUDONYM_KEY: .* \[secrets\.inline\]/);
    assert.doesNotMatch(inline, /a-pseudonym-key/);
    const unnamed = await refusal([...REQUIRED, "secrets.name="]);
    assert.match(
      unnamed,
      /no Secret named for PSEUDONYM_KEY, WHATSAPP_APP_SECRET, WHATSAPP_ACCESS_TOKEN, WHATSAPP_VERIFY_TOKEN, ORDERS_IMAGE_URL_SECRET, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, OPENAI_API_KEY: .* \[secrets\.name\]/,
    );
    // Each credential from a Secret of its own, and its own key.
    const keys = ["PSEUDONYM_KEY", "WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_VERIFY_TOKEN"];
    const refs = [
      ...[
        "ORDERS_IMAGE_URL_SECRET",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "OPENAI_API_KEY",
        ...keys,
      ].map((k) => `secrets.refs.${k}.secret=vault-${k.toLowerCase().replaceAll("_", "-")}`),
      "secrets.refs.PSEUDONYM_KEY.key=hmac",
    ];
    const rendered = parse(await render(withSet([...REQUIRED, "secrets.name=", ...refs])));
    const ingress = pods(rendered).find((p) => p.name === `${FULLNAME}-ingress`);
    const env = ingress?.pod.containers[0]?.env ?? [];
    assert.deepEqual(env.find((e) => e.name === "PSEUDONYM_KEY")?.valueFrom, {
      secretKeyRef: { name: "vault-pseudonym-key", key: "hmac" },
    });
    // Under local, a demo cluster may keep them in values: the chart's own Secret holds them.
    const local = parse(
      await render(
        withSet([
          "environment=local",
          "secrets.name=",
          "payment.provider=local",
          "generation.imageProvider=local",
          ...["PSEUDONYM_KEY", "WHATSAPP_APP_SECRET", "WHATSAPP_ACCESS_TOKEN", "WHATSAPP_VERIFY_TOKEN"].map(
            (k) => `secrets.inline.${k}=demo`,
          ),
          "secrets.inline.ORDERS_IMAGE_URL_SECRET=demo",
        ]),
      ),
    );
    assert.deepEqual(
      local
        .filter((r) => r.kind === "Secret")
        .map((r) => [r.metadata.name, Object.keys(r.stringData ?? {}).length]),
      [[`${FULLNAME}-inline`, 5]],
    );
  });

  test("every mounted ConfigMap has its checksum on the pod template; a change rolls exactly its readers", async () => {
    const checksums = async (args: string[]) => {
      const rendered = parse(await render([...withSet(REQUIRED), ...args]));
      const configMaps = new Map(
        rendered.filter((r) => r.kind === "ConfigMap").map((r) => [r.metadata.name, r.data ?? {}]),
      );
      const out: Record<string, string | undefined> = {};
      for (const { name, pod, annotations } of pods(rendered)) {
        const mounted = (pod.volumes ?? []).filter((v) => v.configMap);
        for (const volume of mounted) {
          const data = configMaps.get(volume.configMap?.name ?? "");
          assert.ok(
            data && Object.keys(data).length > 0,
            `${name} mounts ${volume.configMap?.name}, rendered`,
          );
          assert.match(annotations["checksum/policy"] ?? "", /^[0-9a-f]{64}$/, name);
        }
        out[name] = annotations["checksum/policy"];
        assert.equal(mounted.length > 0, out[name] !== undefined, name);
      }
      return out;
    };
    const before = await checksums([]);
    assert.deepEqual(
      Object.keys(before).filter((name) => before[name]),
      ["conversation", "generation", "limiter", "payment"].map((c) => `${FULLNAME}-${c}`),
    );
    const catalog = await readFile(join(chartDir, "files/catalog.yaml"), "utf8");
    const dearer = join(scratch, "catalog.yaml");
    await writeFile(dearer, catalog.replace("price: 1990", "price: 2490"));
    const changed = await checksums(["--set-file", `policy.catalog=${dearer}`]);
    const rolled = Object.keys(before).filter((name) => before[name] !== changed[name]);
    assert.deepEqual(rolled, [`${FULLNAME}-conversation`, `${FULLNAME}-payment`]);
    const limits = await checksums(["--set", "policy.limits=limits: {}"]);
    assert.deepEqual(
      Object.keys(before).filter((name) => before[name] !== limits[name]),
      [`${FULLNAME}-limiter`],
    );
  });

  test("Ingress routes only the public paths, and payment.publicUrl is required in production", async () => {
    const rendered = parse(await render(withSet(ALL_FLAGS)));
    const ingress = rendered.find((r) => r.kind === "Ingress");
    const paths = (ingress?.spec?.rules ?? []).flatMap((rule) =>
      rule.http.paths.map((p) => `${rule.host}${p.path} -> ${JSON.stringify(p.backend)}`),
    );
    assert.deepEqual(paths, [
      `bot.shop.example/webhook -> {"service":{"name":"${FULLNAME}-ingress","port":{"name":"http"}}}`,
      `pay.shop.example/checkout -> {"service":{"name":"${FULLNAME}-payment","port":{"name":"http"}}}`,
      `pay.shop.example/payments/webhooks -> {"service":{"name":"${FULLNAME}-payment","port":{"name":"http"}}}`,
    ]);
    for (const url of ["", "http://pay.shop.example", "https://127.0.0.1:3003"]) {
      const stderr = await refusal([`payment.publicUrl=${url}`]);
      assert.match(stderr, /PAYMENT_PUBLIC_URL.*\[payment\.publicUrl\]/, url);
    }
  });

  test("the PrometheusRule: every alert has a runbook_url into docs/operations.md, and each component up and present", async () => {
    const rendered = parse(await render(withSet(ALL_FLAGS)));
    const rule = rendered.find((r) => r.kind === "PrometheusRule") as unknown as {
      spec: {
        groups: Array<{ rules: Array<{ alert: string; expr: string; annotations: Record<string, string> }> }>;
      };
    };
    const alerts = rule.spec.groups.flatMap((g) => g.rules);
    const operations = await readFile(new URL("../../docs/operations.md", import.meta.url), "utf8");
    for (const alert of alerts) {
      const anchor = alert.annotations.runbook_url?.split("#")[1];
      assert.equal(anchor, alert.alert.toLowerCase(), alert.alert);
      assert.ok(operations.includes(`### ${alert.alert}\n`), `docs/operations.md explains ${alert.alert}`);
    }
    for (const component of COMPONENTS) {
      const job = `job="${FULLNAME}-${component}"`;
      assert.ok(
        alerts.some((a) => a.alert === "TaituriComponentDown" && a.expr.includes(job)),
        component,
      );
      assert.ok(
        alerts.some(
          (a) => a.alert === "TaituriComponentAbsent" && a.expr.startsWith("absent(") && a.expr.includes(job),
        ),
        component,
      );
    }
  });
});
