import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { webhookBodies } from "./bodies.ts";

test("bodies span the size range, are signed, and never repeat a message id", () => {
  const next = webhookBodies({ secret: "s", runId: "r1", minBytes: 1024, maxBytes: 4096, templates: 16 });
  const sizes: number[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const { body, signature } = next();
    sizes.push(Buffer.byteLength(body));
    assert.equal(signature, `sha256=${createHmac("sha256", "s").update(body).digest("hex")}`);
    const message = JSON.parse(body).entry[0].changes[0].value.messages[0];
    assert.equal(message.type, "text");
    ids.add(message.id);
  }
  assert.equal(ids.size, 1000);
  assert.ok(
    Math.min(...sizes) >= 1024 && Math.max(...sizes) <= 4096,
    `${Math.min(...sizes)}..${Math.max(...sizes)}`,
  );
  assert.ok(Math.max(...sizes) - Math.min(...sizes) > 2900, "the whole range is used");
});
