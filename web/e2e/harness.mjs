// What every browser test needs: a fresh `daarion up` on a free port, Debian's
// Chromium driven by playwright-core, a virtual passkey authenticator per
// page (Chromium's DevTools WebAuthn domain), the UI's own catalogues,
// screenshots and an accessibility scan (axe-core).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const OUT = join(here, "out");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export const catalogues = {
  en: JSON.parse(readFileSync(join(here, "../src/i18n/en.json"), "utf8")),
  uk: JSON.parse(readFileSync(join(here, "../src/i18n/uk.json"), "utf8")),
};
export const locales = { en: "en-GB", uk: "uk-UA" };

function daarionBin() {
  if (process.env.DAARION_BIN) return process.env.DAARION_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(here, "../../target");
  return join(target, "debug/daarion");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * A new city: the all-in-one shape on its own data directory and port
 * (embedded database, bus and cache, whatever backends the environment
 * names for the cargo tests); `stop()` ends it and removes the data.
 */
export async function startCity(env = {}) {
  const { DATABASE_URL, NATS_URL, REDIS_URL, ...inherited } = process.env;
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "daarion-e2e-"));
  const child = spawn(
    daarionBin(),
    ["up", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir],
    {
      env: {
        ...inherited,
        RUST_LOG: process.env.RUST_LOG ?? "warn",
        // Every browser here comes from 127.0.0.1, which the per-address
        // limits (ceremonies, the gateway's requests) would soon refuse.
        DAARION__AUTH__LOGIN_ATTEMPTS_PER_MINUTE: "1000",
        DAARION__GATEWAY__RATE_LIMIT_PER_SECOND: "1000",
        DAARION__GATEWAY__RATE_LIMIT_BURST: "2000",
        // The local embedding models, where scripts/test.sh installs them.
        DAARION__MODELS_DIR:
          process.env.DAARION_MODELS_DIR ?? join(homedir(), ".cache/daarion/models"),
        ...env,
      },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  let failed = null;
  child.on("error", (error) => {
    failed = error;
  });
  const exited = new Promise((resolve) => child.on("close", resolve));
  // Passkeys are bound to the origin `localhost:<port>`, as a person would open it.
  const url = `http://localhost:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (failed) throw new Error(`daarion up did not start: ${failed.message}`);
    if (child.exitCode !== null) throw new Error(`daarion up exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error("daarion up did not become healthy in 60 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Without the networking flags Chromium keeps calling home, and this
    // machine's closed network refuses it.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A browser context as one person in one language and theme, with a passkey
 * authenticator; `autofill: false` is a browser without conditional mediation.
 */
export async function person(browser, { lang, theme = "light", viewport, autofill = true } = {}) {
  const context = await browser.newContext({
    locale: locales[lang],
    colorScheme: theme,
    // The page's CSP forbids inline scripts, which is how axe-core is injected.
    bypassCSP: true,
    viewport: viewport ?? { width: 1200, height: 800 },
  });
  if (!autofill) {
    await context.addInitScript(() => {
      PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    });
  }
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const device = await addDevice(cdp);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  const refused = [];
  refusals.set(page, refused);
  page.on("response", async (r) => {
    if (r.status() < 400) return;
    const body = await r.text().catch(() => "");
    refused.push(`${r.status()} ${r.request().method()} ${r.url()} ${body.slice(0, 300)}`);
  });
  return {
    context,
    page,
    errors,
    t: (key, params) => translate(lang, key, params),
    cdp,
    device,
    /** The passkeys on this browser's authenticator (`device`). */
    credentials: async (authenticatorId = device) =>
      (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials,
  };
}

/** A new platform authenticator (a "device") on the page; returns its id. */
export async function addDevice(cdp) {
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return authenticatorId;
}

/** A catalogue string with its `{name}` placeholders filled, as the app does. */
export function translate(lang, key, params = {}) {
  const text = catalogues[lang][key];
  if (text === undefined) throw new Error(`no ${key} in the ${lang} catalogue`);
  return text.replace(/\{(\w+)\}/g, (all, name) => (name in params ? String(params[name]) : all));
}

/**
 * The same person in another browser (and language): their passkeys copied
 * over, as a synced passkey provider would, and signed in with the button.
 */
export async function samePersonElsewhere(city, browser, who, username, options) {
  const other = await person(browser, { ...options, autofill: false });
  for (const credential of await who.credentials()) {
    await other.cdp.send("WebAuthn.addCredential", { authenticatorId: other.device, credential });
  }
  await other.page.goto(`${city.url}/sign-in`);
  await other.page.getByLabel(other.t("auth.username")).fill(username);
  await other.page.getByRole("button", { name: other.t("auth.sign_in.button") }).click();
  await arrived(other.page, /\/rooms$/);
  return other;
}

/** Saves `out/<name>.png` (the whole page). */
export async function screenshot(page, name) {
  mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

/** Every answer of 400 or more each page got, told when a test fails. */
const refusals = new WeakMap();

const AXE = readFileSync(join(here, "../node_modules/axe-core/axe.min.js"), "utf8");

/** Serious or critical accessibility violations on the page as it is now. */
export async function accessibilityProblems(page) {
  await page.addScriptTag({ content: AXE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Waits for the app's router to reach `url` (client-side routes fire no load event). */
export async function arrived(page, url) {
  try {
    await page.waitForURL(url, { waitUntil: "commit" });
  } catch (error) {
    // What the person would have seen instead, for whoever reads the failure.
    const name = `failed-${Date.now()}`;
    await screenshot(page, name).catch(() => {});
    const text = await page
      .locator("main")
      // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText keeps the rendered line breaks
      .innerText()
      .catch(() => "");
    const answers = (refusals.get(page) ?? []).join("\n");
    const metrics = await fetch(`${new URL(page.url()).origin}/metrics`)
      .then((r) => r.text())
      .then((m) =>
        m
          .split("\n")
          .filter((l) => /rate_limited|status="429"/.test(l))
          .join("\n"),
      )
      .catch(() => "");
    throw new Error(
      `${error.message}\nat ${page.url()} (out/${name}.png), showing:\n${text}\nrefused:\n${answers}\n${metrics}`,
    );
  }
}

export async function expectNoAccessibilityProblems(page, where) {
  const problems = await accessibilityProblems(page);
  assert.deepEqual(problems, [], `accessibility problems on ${where}`);
}

/**
 * A public community `slug` named `name`, started by the signed-in `who`
 * through the API; returns the id of its `general` room (opened by
 * messaging when the community's event arrives).
 */
export async function community(city, who, slug, name) {
  const made = await who.page.request.post(`${city.url}/api/microdao/daos`, {
    data: { slug, name, visibility: "public" },
    headers: { origin: city.url },
  });
  assert.equal(made.status(), 201, await made.text());
  for (let attempt = 0; attempt < 50; attempt++) {
    const rooms = await who.page.request.get(`${city.url}/api/messaging/daos/${slug}/rooms`);
    const room = (await rooms.json()).items?.[0]?.id;
    if (room) return room;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`community ${slug} got no general room in 5 s`);
}

/** Registers `username` with a new passkey, landing on the recovery-codes welcome. */
export async function register(city, who, username) {
  const { page, t } = who;
  await page.goto(`${city.url}/register`);
  await page.getByLabel(t("auth.username")).fill(username);
  await page.getByRole("button", { name: t("auth.register.button") }).click();
  await arrived(page, /\/settings\/recovery\?welcome=1$/);
}

export async function signOut(city, who) {
  await who.page.getByRole("button", { name: who.t("nav.sign_out") }).click();
  await arrived(who.page, /\/sign-in$/);
  const me = await who.page.request.get(`${city.url}/api/auth/me`);
  assert.equal(me.status(), 401, "signed out on the server too");
}

/** Reloads `page` until `locator` shows (what it waits for comes off the bus). */
export async function eventually(page, locator) {
  for (let attempt = 0; ; attempt++) {
    try {
      await locator.waitFor({ timeout: 1500 });
      return;
    } catch (error) {
      if (attempt > 10) throw error;
      await page.reload();
    }
  }
}
