// Drives podflow's service-map page in headless Chromium (Debian's, through playwright-core) and prints
// what a person sees as one JSON object on stdout: the nodes and edges drawn, and the numbers the
// details pane shows after a real mouse click on a node and on an edge. Writes a screenshot.
//
//   node service_map.cjs URL SCREENSHOT.png NODE_ID EDGE_ID
//
// PODFLOW_PLAYWRIGHT names the directory whose node_modules holds playwright-core
// (scripts/playwright.sh prints it); CHROMIUM the browser (default /usr/bin/chromium).
'use strict';

const path = require('path');

const [url, screenshot, nodeId, edgeId] = process.argv.slice(2);
if (!url || !screenshot || !nodeId || !edgeId) {
  console.error('usage: node service_map.cjs URL SCREENSHOT.png NODE_ID EDGE_ID');
  process.exit(2);
}
const root = process.env.PODFLOW_PLAYWRIGHT || __dirname;
const { chromium } = require(path.join(root, 'node_modules', 'playwright-core'));

async function details(page) {
  return page.evaluate(() => {
    const out = { title: document.querySelector('#details h2')?.textContent ?? null };
    for (const dd of document.querySelectorAll('#details dd[data-field]')) {
      out[dd.dataset.field] = dd.textContent;
    }
    return out;
  });
}

// A real click where the element is drawn: the canvas position of its centre (a node) or its
// midpoint (an edge), in page coordinates.
async function click(page, id) {
  const at = await page.evaluate((id) => {
    const cy = window.podflowMap.cy;
    const el = cy.getElementById(id);
    if (el.empty()) return null;
    const box = cy.container().getBoundingClientRect();
    const p = el.isNode() ? el.renderedPosition() : el.renderedMidpoint();
    return { x: box.left + p.x, y: box.top + p.y };
  }, id);
  if (!at) throw new Error(`${id} is not drawn`);
  await page.mouse.click(at.x, at.y);
  await page.waitForFunction((id) => {
    const sel = window.podflowMap.cy.$(':selected');
    return sel.length === 1 && sel[0].id() === id && document.querySelector('#details dl');
  }, id, { timeout: 10000 });
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
    const console_errors = [];
    page.on('pageerror', (e) => console_errors.push(String(e)));
    page.on('requestfailed', (r) => console_errors.push(`${r.url()}: ${r.failure()?.errorText}`));
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction(() => window.podflowMap && window.podflowMap.layouts >= 1, null, { timeout: 30000 });
    // The layout fits the graph; the page is still once the viewport has settled.
    await page.evaluate(() => window.podflowMap.cy.fit(undefined, 40));
    const drawn = await page.evaluate(() => {
      const cy = window.podflowMap.cy;
      return {
        nodes: cy.nodes().map((n) => ({ id: n.id(), title: n.data('title'), kind: n.data('kind') })),
        edges: cy.edges().map((e) => ({ id: e.id(), source: e.source().id(), target: e.target().id(), label: e.data('label') })),
        status: document.getElementById('status').textContent,
        error: window.podflowMap.error,
      };
    });
    await click(page, nodeId);
    const node = await details(page);
    await page.screenshot({ path: screenshot });
    await click(page, edgeId);
    const edge = await details(page);
    const foreign = requests.filter((r) => !r.startsWith(new URL(url).origin));
    console.log(JSON.stringify({ ...drawn, node, edge, foreign, console_errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(`service_map.cjs: ${e.stack || e}`);
  process.exit(1);
});
