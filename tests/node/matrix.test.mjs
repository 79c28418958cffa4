// Every fault against the Node SDKs: each cell checked against the server's ground truth and the table in docs/node.md.
import assert from "node:assert/strict";
import { test } from "node:test";

import { CASSETTES, admin, serve } from "./server.mjs";
import { ROWS, STYLES, committedCells, observe } from "./matrix.mjs";

const ENDING = { reset: "reset", close: "close", eof: "end", stall: "hang", "stall-idle": "hang" };

test("the committed table has a cell for every fault and call style", () => {
  const cells = committedCells();
  for (const row of ROWS) for (const style of STYLES) assert.ok(cells[`${row.key}/${style.key}`], `${row.key}/${style.key}`);
});

// One server per call style, the three run side by side; the cells of one style run in turn.
test("what Node code sees, per call style", { concurrency: true, timeout: 60_000 }, async (t) => {
  const committed = committedCells();
  await Promise.all(
    STYLES.map((style) =>
      t.test(style.key, async (st) => {
        const server = await serve(CASSETTES, "--speed", "0");
        try {
          for (const row of ROWS) {
            await st.test(row.key, async () => {
              const seen = await observe(server.url, row, style);
              const last = seen.responses.at(-1);
              assert.equal(last.ending, ENDING[row.key] ?? "end", JSON.stringify(last));
              if (row.guard || row.idle) {
                assert.equal(last.client_hung_up, true);
                const v = (await admin(server.url, "GET", "verdicts?silence_s=2")).body;
                assert.equal(v.failed.includes("waited_on_silence"), Boolean(row.guard), JSON.stringify(v.failed));
              }
              if (row.key.startsWith("http-")) assert.equal(seen.responses[0].status, Number(/status=(\d+)/.exec(row[style.provider])[1]));
              assert.equal(
                seen.cell(),
                committed[`${row.key}/${style.key}`],
                `docs/node.md says otherwise for ${row.key} / ${style.key}; re-measure with \`node tests/node/matrix.mjs\` and review the diff`,
              );
            });
          }
        } finally {
          assert.equal(await server.stop(), 0);
        }
      }),
    ),
  );
});
