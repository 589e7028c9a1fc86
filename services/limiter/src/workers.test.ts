import assert from "node:assert/strict";
import { test } from "node:test";
import { workerExecArgv } from "./workers.ts";

test("workers get the configured young generation unless the launch sets one", () => {
  assert.deepEqual(workerExecArgv(["--enable-source-maps"], undefined, 4), [
    "--enable-source-maps",
    "--max-semi-space-size=4",
  ]);
  assert.deepEqual(workerExecArgv(["--max-semi-space-size=16"], undefined, 4), ["--max-semi-space-size=16"]);
  assert.deepEqual(workerExecArgv([], "--disable-warning=X --max_semi_space_size=8", 4), []);
  // A flag that only starts alike is not the same flag.
  assert.deepEqual(workerExecArgv(["--max-semi-space-size-x=1"], "", 4), [
    "--max-semi-space-size-x=1",
    "--max-semi-space-size=4",
  ]);
});
