import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { startJaeger } from "@taituri/devenv";

// The Jaeger built from the Go module proxy embeds a placeholder page; given a jaeger-ui build it
// serves that instead, through its own index handler (which fills in its version).
test("Jaeger serves a jaeger-ui build named by uiAssetsPath at /, and the placeholder without", async () => {
  const assets = await mkdtemp(join(tmpdir(), "taituri-jaeger-ui-"));
  await writeFile(
    join(assets, "index.html"),
    '<!doctype html><html><head><base href="/" /><script>const JAEGER_VERSION = DEFAULT_VERSION;</script></head><body>taituri-ui-build</body></html>',
  );
  const withUi = await startJaeger({ uiAssetsPath: assets });
  try {
    const page = await fetch(`${withUi.queryUrl}/`).then((r) => r.text());
    assert.match(page, /taituri-ui-build/);
    assert.doesNotMatch(page, /DEFAULT_VERSION/, "served through Jaeger's index handler");
    assert.equal((await fetch(`${withUi.queryUrl}/api/services`)).status, 200, "and the API beside it");
  } finally {
    await withUi.stop();
    await rm(assets, { recursive: true, force: true });
  }
  const plain = await startJaeger();
  try {
    assert.doesNotMatch(await fetch(`${plain.queryUrl}/`).then((r) => r.text()), /taituri-ui-build/);
  } finally {
    await plain.stop();
  }
});
