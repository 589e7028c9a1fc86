import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type FakeGraphApi, recipientOf, startFakeGraphApi } from "./harness.ts";

let graph: FakeGraphApi;
before(async () => {
  graph = await startFakeGraphApi();
});
after(() => graph.close());

const send = async (body: Record<string, unknown>) => {
  const response = await fetch(`${graph.url}/PN1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messaging_product: "whatsapp", type: "text", text: { body: "hi" }, ...body }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

test("a send names the shopper by phone number (`to`) or BSUID (`recipient`); with both, `to` wins", async () => {
  const byPhone = await send({ to: "447700900001" });
  assert.equal(byPhone.status, 200);
  assert.deepEqual(byPhone.body.contacts, [{ input: "447700900001", wa_id: "447700900001" }]);
  const byBsuid = await send({ recipient: "US.1" });
  assert.equal(byBsuid.status, 200);
  assert.deepEqual(byBsuid.body.contacts, [{ input: "US.1", user_id: "US.1" }]);
  assert.deepEqual((await send({ to: "447700900002", recipient: "US.2" })).body.contacts, [
    { input: "447700900002", wa_id: "447700900002" },
  ]);
  assert.deepEqual(
    graph.sends().map((r) => recipientOf(r.body)),
    ["447700900001", "US.1", "447700900002"],
  );
});

test("a send with neither is refused as Meta refuses it: 400, code 100", async () => {
  const answer = await send({});
  assert.equal(answer.status, 400);
  assert.equal((answer.body.error as { code: number }).code, 100);
  assert.equal(graph.sends().at(-1)?.status, 400);
});

test("refused BSUIDs get Meta's 131062; the same shopper by phone number is served", async () => {
  graph.refuseUserIds(["US.9"]);
  const refused = await send({ recipient: "US.9" });
  assert.equal(refused.status, 400);
  assert.deepEqual(Object.keys(refused.body.error as object).sort(), [
    "code",
    "error_data",
    "fbtrace_id",
    "message",
    "type",
  ]);
  assert.equal((refused.body.error as { code: number }).code, 131062);
  assert.equal((refused.body.error as { type: string }).type, "OAuthException");
  assert.equal((await send({ to: "447700900009", recipient: "US.9" })).status, 200);
  assert.equal((await send({ recipient: "US.10" })).status, 200);
});

test("failNext still fails the next sends with the given status and code, whoever they are for", async () => {
  graph.failNext(1, 503, { code: 131000, message: "Something went wrong" });
  const failed = await send({ recipient: "US.11" });
  assert.equal(failed.status, 503);
  assert.equal((failed.body.error as { code: number }).code, 131000);
  assert.equal((await send({ recipient: "US.11" })).status, 200);
});

test("recipientOf reads `to`, else `recipient`", () => {
  assert.equal(recipientOf({ to: "1", recipient: "US.1" }), "1");
  assert.equal(recipientOf({ recipient: "US.1" }), "US.1");
  assert.equal(recipientOf({ to: "", recipient: "US.1" }), "US.1");
  assert.equal(recipientOf({}), undefined);
  assert.equal(recipientOf("not json"), undefined);
});
