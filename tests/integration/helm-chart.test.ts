import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ensureGoTool, ensurePythonTool } from "@taituri/devenv/tools";

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

  test("a disabled component renders nothing", async () => {
    const out = await render("components.payment.enabled=false");
    assert.doesNotMatch(out, /shop-taituri-payment/);
  });
});
