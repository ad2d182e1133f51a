// The catalog's web pages in a real browser (issue 16), run by
// tests/tests/web_browser.rs against a catalog it started and filled:
// Debian's chromium, headless, driven by playwright-core; axe-core in each
// page. Usage:
//   node catalog.cjs BASE_URL SCREENSHOT_DIR
// with NODE_PATH naming the node_modules that hold playwright-core and
// axe-core, and CHROMIUM the browser. The worker set is the one of
// tests/tests/web_support/mod.rs (ids below). Prints one line per check;
// exits 1 on the first failure, with the reason.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error("usage: node catalog.cjs BASE_URL SCREENSHOT_DIR");
  process.exit(2);
}
const WORKER = "hello-worker-rbee-cpu";
const METAL = "llm-worker-rbee-metal";
const PREMIUM = "premium-worker-rbee-cuda";
const HOSTILE = "hostile-worker-rbee-cpu";
const HOSTILE_DESCRIPTION =
  "<script>window.__pwned = 1; document.title = 'pwned'</script> & <b>bold</b> \"quoted\"";
const PURCHASE_URL = "https://rbee.dev/buy/premium-worker-rbee-cuda";
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

function check(condition, what, detail) {
  if (!condition) {
    throw new Error(`${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
  console.log(`ok - ${what}`);
}

/// Every worker card's id, in order.
async function cards(page) {
  return page.locator("li.card").evaluateAll((els) => els.map((e) => e.dataset.worker));
}

/// axe-core in the page (evaluated through the DevTools protocol, which
/// the page's CSP does not govern); serious and critical violations.
async function axe(page, name) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  check(violations.length === 0, `axe: no serious or critical violation on ${name}`, violations);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/// A page must not be wider than the screen (no sideways scrolling).
async function fitsWidth(page, name) {
  const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(scroll <= inner, `${name} fits a ${inner}px screen`, { scroll, inner });
}

async function desktop(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", async (d) => {
    errors.push(`dialog: ${d.message()}`);
    await d.dismiss();
  });

  // The list.
  await page.goto(base + "/");
  check((await cards(page)).length === 5, "the list shows the five workers", await cards(page));
  await axe(page, "the worker list");
  await shot(page, "list-desktop");

  // Filter by platform: a link.
  await page.getByRole("navigation", { name: "Platform" }).getByRole("link", { name: "linux-x86_64", exact: true }).click();
  await page.waitForURL(/platform=linux-x86_64/);
  let ids = await cards(page);
  check(ids.length === 4 && !ids.includes(METAL), "the platform filter leaves out the macOS-only worker", ids);
  await page.getByRole("navigation", { name: "Platform" }).getByRole("link", { name: "Any", exact: true }).click();
  await page.waitForURL((u) => !u.search.includes("platform="));

  // Search: the form.
  await page.getByLabel("Search workers").fill("apple");
  await page.getByLabel("Search workers").press("Enter");
  await page.waitForURL(/q=apple/);
  ids = await cards(page);
  check(ids.length === 1 && ids[0] === METAL, "searching `apple` finds the Metal worker", ids);

  // The premium badge on the list.
  await page.goto(base + "/?premium=premium");
  const premiumCard = page.locator(`li.card[data-worker="${PREMIUM}"]`);
  check(await premiumCard.locator(".badge-premium").isVisible(), "the premium card shows its badge");
  check((await premiumCard.locator(".price").textContent()) === "49.00 EUR", "and its price");

  // A worker: open it from the list.
  await page.goto(base + "/");
  await page.locator(`li.card[data-worker="${WORKER}"] h3 a`).click();
  await page.waitForURL(new RegExp(`/worker/${WORKER}$`));
  const versions = await page.locator("tbody.version").evaluateAll((els) =>
    els.map((e) => ({ version: e.dataset.version, yanked: e.classList.contains("yanked") })),
  );
  check(
    JSON.stringify(versions) === JSON.stringify([{ version: "0.2.0", yanked: true }, { version: "0.1.0", yanked: false }]),
    "versions newest first, the yanked one marked",
    versions,
  );
  const install = (await page.locator("#install-rbee").textContent()).trim();
  check(
    install === `rbee-worker --catalog ${base} install ${WORKER}@0.1.0`,
    "the install command for the latest version, pointed at this catalog",
    install,
  );
  const oras = await page.locator("#install-oras").textContent();
  check(oras.includes("--platform linux/amd64"), "oras pulls the browser's platform (Linux x86_64)", oras);
  const copy = page.locator('button.copy[data-copy="install-rbee"]');
  check(await copy.isVisible(), "the copy button appears: the page's own script runs under the CSP");

  // The PKGBUILD: closed, then opened.
  const pkgbuild = page.locator("details.pkgbuild pre");
  check(!(await pkgbuild.isVisible()), "the PKGBUILD starts folded");
  await page.locator("details.pkgbuild summary").click();
  check(await pkgbuild.isVisible(), "a click opens the PKGBUILD");
  check((await pkgbuild.textContent()).includes(`pkgname=${WORKER}`), "which is the worker's");

  // Charts: the test downloaded before the browser came.
  const total = Number(await page.locator("#per-day").getAttribute("data-total"));
  const drawn = await page.locator("#per-day rect.bar").evaluateAll((els) => els.filter((e) => Number(e.getAttribute("height")) > 0).length);
  check(total >= 3 && drawn >= 1, "the per-day chart has data", { total, drawn });
  const platforms = await page.locator("#by-platform rect.bar").count();
  check(platforms >= 2, "the platform chart has a bar per platform downloaded", platforms);
  await axe(page, "a worker page");
  await shot(page, "worker-desktop");

  // A premium worker.
  await page.goto(`${base}/worker/${PREMIUM}`);
  check(await page.locator(".tags .badge-premium").isVisible(), "the premium worker's page shows the badge");
  check((await page.locator(".purchase .price").textContent()) === "49.00 EUR", "its price");
  check((await page.getByRole("link", { name: "Buy a license" }).getAttribute("href")) === PURCHASE_URL, "and where to buy it");
  await axe(page, "a premium worker page");

  // Markup in registry data stays text; nothing ran.
  await page.goto(`${base}/worker/${HOSTILE}`);
  const description = await page.locator("p.description").textContent();
  check(description === HOSTILE_DESCRIPTION, "a description holding <script> shows as text", description);
  const pwned = await page.evaluate(() => [window.__pwned, document.title]);
  check(pwned[0] === undefined && pwned[1] !== "pwned", "and no script from it ran", pwned);
  check((await page.locator("main script, main img, main b").count()) === 0, "no element was made from it");

  // The download overview.
  await page.goto(base + "/stats");
  check(Number(await page.locator("#per-day").getAttribute("data-total")) >= 3, "the overview counts the downloads");
  check((await page.locator("table.recent tbody tr").count()) >= 3, "and lists them");
  await axe(page, "the download overview");
  await shot(page, "stats-desktop");

  check(errors.length === 0, "no page error, alert or dialog anywhere", errors);
  await context.close();
}

async function dark(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "dark" });
  const page = await context.newPage();
  await page.goto(`${base}/worker/${WORKER}`);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(bg === "rgb(17, 20, 24)", "the dark theme follows the system setting", bg);
  await axe(page, "a worker page, dark");
  await page.goto(base + "/");
  await axe(page, "the worker list, dark");
  await shot(page, "list-dark");
  await context.close();
}

async function phone(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await context.newPage();
  await page.goto(base + "/");
  await fitsWidth(page, "the worker list");
  await shot(page, "list-phone");
  await page.goto(`${base}/worker/${WORKER}`);
  await fitsWidth(page, "a worker page");
  await shot(page, "worker-phone");
  await context.close();
}

async function withoutJavaScript(browser) {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(base + "/");
  await page.getByRole("navigation", { name: "Backend" }).getByRole("link", { name: "metal", exact: true }).click();
  await page.waitForURL(/backend=metal/);
  let ids = await cards(page);
  check(ids.length === 1 && ids[0] === METAL, "without JavaScript the filter links work", ids);
  await page.goto(base + "/");
  await page.getByLabel("Search workers").fill("fast one");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/q=fast/);
  ids = await cards(page);
  check(ids.length === 1 && ids[0] === PREMIUM, "and so does the search form", ids);
  await page.goto(`${base}/worker/${WORKER}`);
  check(!(await page.locator("button.copy").first().isVisible()), "the copy buttons stay hidden without the script");
  check((await page.locator("#install-rbee").textContent()).includes(`install ${WORKER}@0.1.0`), "the commands are there to select");
  await context.close();
}

(async () => {
  fs.mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // The tests run as root in CI containers, where chromium's sandbox
    // cannot start.
    args: ["--no-sandbox"],
  });
  try {
    await desktop(browser);
    await dark(browser);
    await phone(browser);
    await withoutJavaScript(browser);
  } finally {
    await browser.close();
  }
  console.log("all checks passed");
})().catch((e) => {
  console.error(`not ok - ${e.message}`);
  process.exit(1);
});
