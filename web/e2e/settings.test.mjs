// A person's settings, in each language: the display name changed, an API
// key made in the browser and used from curl (then revoked), a second
// device's passkey added, renamed and the old one deleted (the last one
// cannot be), a session on another browser listed and signed out from here.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import {
  addDevice,
  arrived,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  samePersonElsewhere,
  startCity,
} from "./harness.mjs";

const run = promisify(execFile);
let city;
let browser;
before(async () => {
  city = await startCity();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await city?.stop();
});

/** `curl` with the key, as a script would: the HTTP status and body. */
async function curlMe(key) {
  const { stdout } = await run("curl", [
    "-s",
    "-w",
    "\n%{http_code}",
    "-H",
    `Authorization: Bearer ${key}`,
    `${city.url}/api/auth/me`,
  ]);
  const lines = stdout.trim().split("\n");
  return { status: Number(lines.pop()), body: JSON.parse(lines.join("\n") || "null") };
}

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("an API key made here works from curl until it is revoked", async () => {
      const who = await person(browser, { lang });
      const { page, t } = who;
      const username = `keys-${lang}`;
      await register(city, who, username);
      await page.getByRole("link", { name: t("settings.api_keys") }).click();
      await arrived(page, /\/settings\/api-keys$/);
      await page.getByText(t("keys.empty")).waitFor();
      await page.getByLabel(t("keys.name")).fill("my script");
      await page.getByRole("button", { name: t("keys.create") }).click();
      const secret = (await page.locator("code.secret").textContent()) ?? "";
      assert.match(secret, /^dk_/);
      await expectNoAccessibilityProblems(page, "API keys");

      const used = await curlMe(secret);
      assert.equal(used.status, 200);
      assert.equal(used.body.user.username, username);

      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: t("keys.revoke") }).click();
      await page.getByText(t("keys.empty")).waitFor();
      assert.equal((await curlMe(secret)).status, 401, "a revoked key is refused");
      await who.context.close();
    });

    test("the display name is changed here and shown everywhere", async () => {
      const who = await person(browser, { lang });
      const { page, t } = who;
      await register(city, who, `profile-${lang}`);
      await page.getByRole("link", { name: t("settings.profile") }).click();
      await arrived(page, /\/settings\/profile$/);
      const name = lang === "uk" ? "Олена Пчілка" : "Ada Lovelace";
      await page.getByLabel(t("auth.display_name")).fill(`  ${name} `);
      await page.getByRole("button", { name: t("profile.save") }).click();
      await page.getByRole("status").getByText(t("profile.saved")).waitFor();
      await page.locator("header").getByText(name, { exact: true }).waitFor();
      await expectNoAccessibilityProblems(page, "profile");
      await page.reload();
      assert.equal(await page.getByLabel(t("auth.display_name")).inputValue(), name);
      const me = await page.request.get(`${city.url}/api/auth/me`);
      assert.equal((await me.json()).user.display_name, name);
      await who.context.close();
    });

    test("passkeys: add a device, rename, delete, but never the last", async () => {
      const who = await person(browser, { lang });
      const { page, t, cdp } = who;
      await register(city, who, `keys2-${lang}`);
      // The new device: another authenticator; the old one is put away.
      // (Chromium allows one platform authenticator at a time.)
      await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: who.device });
      const phone = await addDevice(cdp);

      await page.getByRole("link", { name: t("settings.passkeys") }).click();
      const items = page.getByRole("list", { name: t("settings.passkeys") }).getByRole("listitem");
      await items.first().waitFor();
      assert.equal(await items.count(), 1);
      await page.getByLabel(t("auth.device")).fill("phone");
      await page.getByRole("button", { name: t("passkeys.add_button") }).click();
      await items.nth(1).waitFor();
      assert.equal((await who.credentials(phone)).length, 1, "the phone holds the new passkey");
      await expectNoAccessibilityProblems(page, "passkeys");

      page.once("dialog", (dialog) => dialog.accept("old laptop"));
      await items
        .first()
        .getByRole("button", { name: t("common.rename") })
        .click();
      await page.getByText("old laptop").waitFor();

      page.once("dialog", (dialog) => dialog.accept());
      await items
        .filter({ hasText: "old laptop" })
        .getByRole("button", { name: t("common.delete") })
        .click();
      await page.getByText("old laptop").waitFor({ state: "detached" });
      assert.equal(await items.count(), 1);

      // The last passkey stays: the server says why, on the page.
      page.once("dialog", (dialog) => dialog.accept());
      await items
        .first()
        .getByRole("button", { name: t("common.delete") })
        .click();
      await page.getByRole("alert").waitFor();
      assert.equal(await items.count(), 1);
      await who.context.close();
    });

    test("sessions: another browser's session is listed and signed out from here", async () => {
      const home = await person(browser, { lang });
      const username = `sessions-${lang}`;
      await register(city, home, username);

      // The same passkey, synced to another browser (as password managers do).
      const away = await samePersonElsewhere(city, browser, home, username, { lang });

      const { page, t } = home;
      await page.getByRole("link", { name: t("settings.sessions") }).click();
      const items = page.getByRole("list", { name: t("settings.sessions") }).getByRole("listitem");
      await items.nth(1).waitFor();
      assert.equal(await items.filter({ hasText: t("sessions.this_one") }).count(), 1);
      await expectNoAccessibilityProblems(page, "sessions");
      await page.getByRole("button", { name: t("sessions.revoke_others") }).click();
      await page.getByText(t("sessions.revoked", { n: 1 })).waitFor();
      await items.nth(1).waitFor({ state: "detached" });
      const me = await away.page.request.get(`${city.url}/api/auth/me`);
      assert.equal(me.status(), 401, "the other browser is signed out");
      await home.context.close();
      await away.context.close();
    });
  });
}
