// The web UI's figures: JavaScript needed for the first paint (gzip), time
// to interactive on localhost, and a room scrolled back through N messages
// (virtualised): page memory, DOM size and frame rate while scrolling.
// Goals (#14): < 100 KB gzip, interactive < 1 s, 10 000 messages < 100 MB.
//
//   node bench/web/ui.mjs [--binary target/release/daarion] [--messages 10000] [--runs 5]
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { launch, person, register, startCity } from "../../web/e2e/harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "../../web/dist");
const { values: args } = parseArgs({
  options: {
    binary: { type: "string" },
    messages: { type: "string", default: "10000" },
    runs: { type: "string", default: "5" },
  },
});
if (args.binary) process.env.DAARION_BIN = args.binary;
const messages = Number(args.messages);
const runs = Number(args.runs);

/** The scripts index.html loads before anything is drawn. */
function firstPaintJs() {
  const html = readFileSync(join(dist, "index.html"), "utf8");
  const files = [...html.matchAll(/<(?:script[^>]*src|link[^>]*rel="modulepreload"[^>]*href)="([^"]+\.js)"/g)].map(
    (m) => m[1],
  );
  let raw = 0;
  let gzip = 0;
  for (const file of files) {
    const bytes = readFileSync(join(dist, file));
    raw += bytes.length;
    gzip += gzipSync(bytes, { level: 9 }).length;
  }
  return { files: files.length, raw, gzip };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

const js = firstPaintJs();
console.log(`first paint JS: ${js.files} file(s), ${kb(js.raw)} raw, ${kb(js.gzip)} gzip (goal < 100 KB)`);

const city = await startCity({
  // One seeding client posts every message.
  DAARION__GATEWAY__PRINCIPAL_RATE_LIMIT_PER_SECOND: "100000",
  DAARION__GATEWAY__PRINCIPAL_RATE_LIMIT_BURST: "100000",
});
const browser = await launch();
try {
  // Time to interactive: from navigation to the sign-in button ready to use.
  const fcp = [];
  const tti = [];
  for (let i = 0; i < runs; i++) {
    const visitor = await person(browser, { lang: "en" });
    await visitor.page.goto(`${city.url}/sign-in`);
    await visitor.page.getByRole("button", { name: visitor.t("auth.sign_in.button") }).waitFor();
    const [paint, ready] = await visitor.page.evaluate(() => [
      performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? Number.NaN,
      performance.now(),
    ]);
    fcp.push(paint);
    tti.push(ready);
    await visitor.context.close();
  }
  console.log(
    `sign-in page: first contentful paint ${median(fcp).toFixed(0)} ms, interactive ${median(tti).toFixed(0)} ms (median of ${runs}; goal < 1000 ms)`,
  );

  // A room with `messages` messages, posted through the API.
  const reader = await person(browser, { lang: "en", viewport: { width: 1200, height: 900 } });
  await register(city, reader, "reader");
  const cookie = (await reader.context.cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
  const started = Date.now();
  let next = 0;
  const post = async () => {
    while (next < messages) {
      const n = next++;
      const r = await fetch(`${city.url}/api/city/rooms/general/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", cookie, origin: city.url },
        body: JSON.stringify({ body: `message ${n}: ${"lorem ipsum dolor sit amet ".repeat(1 + (n % 5))}` }),
      });
      if (!r.ok) throw new Error(`seeding: ${r.status} ${await r.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, post));
  console.log(`seeded ${messages} messages in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const { page, t } = reader;
  const cdp = reader.cdp;
  await cdp.send("Performance.enable");
  await page.goto(`${city.url}/rooms/general`);
  await page.getByText(t("live.open")).waitFor();
  const loadStart = Date.now();
  const box = page.getByRole("log");
  const beginning = page.getByText(t("room.beginning"));
  while (!(await beginning.isVisible())) {
    await box.evaluate((el) => {
      el.scrollTop = 0;
    });
    await page.waitForTimeout(20);
  }
  const loaded = Date.now() - loadStart;

  // Scroll from the first message to the last over about three seconds.
  const scroll = await box.evaluate(
    (el) =>
      new Promise((resolve) => {
        const frames = [];
        const from = 0;
        const to = el.scrollHeight - el.clientHeight;
        const t0 = performance.now();
        const step = (now) => {
          frames.push(now);
          const done = Math.min(1, (now - t0) / 3000);
          el.scrollTop = from + (to - from) * done;
          if (done < 1) requestAnimationFrame(step);
          else {
            const gaps = frames.slice(1).map((f, i) => f - frames[i]);
            resolve({
              fps: (frames.length - 1) / ((frames.at(-1) - frames[0]) / 1000),
              worst: Math.max(...gaps),
              rendered: el.querySelectorAll("article").length,
            });
          }
        };
        requestAnimationFrame(step);
      }),
  );
  await page.evaluate(() => new Promise((r) => setTimeout(r, 500)));
  // Live nodes and heap, not garbage awaiting collection: when the
  // collector last ran would otherwise decide the figures.
  await cdp.send("HeapProfiler.collectGarbage");
  const { metrics } = await cdp.send("Performance.getMetrics");
  const metric = (name) => metrics.find((m) => m.name === name)?.value ?? Number.NaN;
  console.log(
    `room of ${messages}: all history loaded by scrolling in ${(loaded / 1000).toFixed(1)} s; ` +
      `JS heap ${(metric("JSHeapUsedSize") / 1048576).toFixed(1)} MB (goal < 100 MB), ` +
      `${metric("Nodes")} DOM nodes, ${scroll.rendered} messages in the DOM; ` +
      `scrolling top to bottom ${scroll.fps.toFixed(0)} fps, worst frame ${scroll.worst.toFixed(0)} ms`,
  );
} finally {
  await browser.close();
  await city.stop();
}
