import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ConfigError } from "@taituri/config";
import { ensureGoTool, ensurePythonTool } from "@taituri/devenv/tools";
import { loadGenerationConfig } from "@taituri/generation-service/config";
import { loadLimiterConfig } from "@taituri/limiter-service/config";
import { loadPaymentConfig } from "@taituri/payment-service/config";

/**
 * The Helm chart rendered by the real helm and checked against the Kubernetes API schemas
 * (kubernetes-validate, offline), so a template mistake fails here and not at a customer's install.
 */
const exec = promisify(execFile);
const chart = new URL("../../deploy/helm/taituri", import.meta.url).pathname;
const SERVICES = ["conversation", "generation", "ingress", "limiter", "payment"];

let helm: string;
let python: string;

before(async () => {
  [helm, python] = await Promise.all([
    ensureGoTool({ name: "helm", module: "helm.sh/helm/v3/cmd/helm", version: "v3.22.0" }),
    ensurePythonTool({ name: "kubernetes-validate", pipPackage: "kubernetes-validate", version: "1.37.0" }),
  ]);
});

async function render(...set: string[]): Promise<string> {
  const { stdout } = await exec(helm, ["template", "shop", chart, ...set.flatMap((s) => ["--set", s])]);
  return stdout;
}

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
    const line = error.problems.find((p) => p.startsWith(`${name}: `));
    if (line) return line;
  }
  assert.fail(`the service accepts ${JSON.stringify(env)}`);
}

describe("helm chart", { timeout: 10 * 60_000 }, () => {
  test("helm lint passes", async () => {
    const { stdout } = await exec(helm, ["lint", "--strict", chart]);
    assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test("every rendered resource is valid against the Kubernetes 1.37 schemas", async () => {
    const dir = await mkdtemp(join(tmpdir(), "taituri-helm-"));
    const file = join(dir, "rendered.yaml");
    await writeFile(file, await render("secrets.mongoUrl=true", "otel.endpoint=http://collector:4318"));
    const { stdout, stderr } = await exec(python, [
      "-m",
      "kubernetes_validate",
      "--strict",
      "-k",
      "1.37.0",
      file,
    ]);
    const passed = `${stdout}${stderr}`.match(/passed for resource/g)?.length ?? 0;
    assert.equal(passed, SERVICES.length * 2, `${stdout}${stderr}`);
  });

  test("each service gets a Deployment and a Service, probed on /healthz and /readyz", async () => {
    const out = await render();
    for (const name of SERVICES) {
      assert.match(out, new RegExp(`kind: Deployment\\nmetadata:\\n  name: shop-taituri-${name}\\n`));
      assert.match(out, new RegExp(`kind: Service\\nmetadata:\\n  name: shop-taituri-${name}\\n`));
      assert.match(out, new RegExp(`command: \\["node", "services/${name}/src/main.ts"\\]`));
    }
    assert.equal(out.match(/path: \/healthz/g)?.length, SERVICES.length * 2);
    assert.equal(out.match(/path: \/readyz/g)?.length, SERVICES.length);
    assert.match(out, /name: grpc\n\s+containerPort: 50051/);
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
    const listed = stderr
      .split("Invalid configuration:\n")[1]
      ?.split("\n")
      .filter((l) => l.startsWith("  "));
    assert.deepEqual(
      listed?.map((l) => l.trim()),
      expected,
      stderr,
    );
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
});
