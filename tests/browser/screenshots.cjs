// The README's screenshots of the catalog's pages, taken from a running
// catalog (e.g. `rbee-catalog serve --demo`) in Debian's chromium:
//   NODE_PATH=/usr/local/lib/rbee-test-tools/node_modules \
//     node tests/browser/screenshots.cjs http://127.0.0.1:8787 docs/img WORKER_ID
// writes worker-list.png and worker-page.png (1280 px wide, light theme).
"use strict";

const path = require("node:path");
const { chromium } = require("playwright-core");

const [base, out, worker] = process.argv.slice(2);
if (!base || !out || !worker) {
  console.error("usage: node screenshots.cjs BASE_URL OUT_DIR WORKER_ID");
  process.exit(2);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, colorScheme: "light" });
    await page.goto(base + "/");
    await page.screenshot({ path: path.join(out, "worker-list.png") });
    await page.goto(`${base}/worker/${worker}`);
    await page.screenshot({ path: path.join(out, "worker-page.png") });
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
