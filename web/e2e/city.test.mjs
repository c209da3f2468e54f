// A person's first visit, in each language: register with a passkey, keep
// recovery codes, sign out, sign back in from the username field's
// autofill, post in a room and see it arrive live in another person's
// browser; a long room read back to its beginning by scrolling up.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  arrived,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  screenshot,
  signOut,
  startCity,
} from "./harness.mjs";

let city;
before(async () => {
  city = await startCity();
});
after(async () => {
  await city?.stop();
});

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("register, keep recovery codes, sign out and back in, talk live", async () => {
      const browser = await launch();
      const ana = await person(browser, { lang });
      const { page, t } = ana;
      const username = `ana-${lang}`;

      await page.goto(city.url);
      await arrived(page, /\/sign-in$/);
      assert.equal(await page.locator("html").getAttribute("lang"), lang);
      await page.getByRole("heading", { name: t("auth.sign_in.title") }).waitFor();
      await expectNoAccessibilityProblems(page, "sign-in");

      await page.getByRole("link", { name: t("auth.register.link") }).click();
      await page.getByRole("heading", { name: t("auth.register.title") }).waitFor();
      await expectNoAccessibilityProblems(page, "register");
      await register(city, ana, username);
      assert.equal((await ana.credentials()).length, 1, "one passkey made");

      // Recovery codes: ten, shown once, and counted afterwards.
      await page.getByRole("button", { name: t("recovery.generate") }).click();
      const codes = page.getByRole("list", { name: t("recovery.title") }).getByRole("listitem");
      await codes.first().waitFor();
      assert.equal(await codes.count(), 10);
      await page.getByText(t("recovery.remaining", { n: 10 })).waitFor();
      await expectNoAccessibilityProblems(page, "recovery codes");
      await page.getByRole("link", { name: t("recovery.done") }).click();
      await arrived(page, /\/rooms$/);

      // Sign out, then back in: the sign-in page asks for a passkey through
      // the username field's autofill (conditional mediation), which the
      // authenticator answers without a click.
      await signOut(city, ana);
      await arrived(page, /\/rooms$/);
      await page.getByRole("heading", { name: t("rooms.title") }).waitFor();
      await page.getByRole("link", { name: "General" }).waitFor();
      await expectNoAccessibilityProblems(page, "rooms");

      // A second person opens the same room; what one sends, the other sees.
      // Bo's browser has no passkey autofill: Bo signs in with the button.
      const bo = await person(browser, { lang, autofill: false });
      await register(city, bo, `bo-${lang}`);
      await bo.page.goto(`${city.url}/rooms`);
      await signOut(city, bo);
      await bo.page.getByLabel(bo.t("auth.username")).fill(`bo-${lang}`);
      await bo.page.getByRole("button", { name: bo.t("auth.sign_in.button") }).click();
      await arrived(bo.page, /\/rooms$/);
      await bo.page.goto(`${city.url}/rooms/general`);
      await bo.page.getByText(bo.t("live.open")).waitFor();

      await page.getByRole("link", { name: "General" }).click();
      await page.getByText(t("live.open")).waitFor();
      const text = `hello from ${username} ${Date.now()}`;
      await page.getByRole("textbox", { name: t("room.message") }).fill(text);
      await page.keyboard.press("Enter");
      await bo.page.getByRole("log").getByText(text).waitFor();
      await page.locator(".message:not(.pending)").getByText(text).waitFor();
      // Both are present in the city.
      await bo.page.getByRole("complementary").getByText(username).waitFor();
      await expectNoAccessibilityProblems(page, "room");
      await screenshot(page, `room-${lang}`);

      assert.deepEqual([...ana.errors, ...bo.errors], [], "no script errors");
      await browser.close();
    });

    test("a long room's history comes a page at a time as the reader scrolls up", async (ctx) => {
      const browser = await launch();
      // Closed even when the test fails: an open browser keeps the runner waiting.
      ctx.after(() => browser.close());
      const reader = await person(browser, { lang });
      const { page, t } = reader;
      await register(city, reader, `reader-${lang}`);
      // Each language its own room: three pages of history (50 a page).
      const slug = `history-${lang}`;
      // Posted as a client would: paced by the per-person limit's Retry-After.
      const post = async (path, data) => {
        for (;;) {
          const response = await page.request.post(`${city.url}${path}`, {
            data,
            headers: { origin: city.url },
          });
          if (response.status() !== 429) return response;
          await page.waitForTimeout(1000 * Number(response.headers()["retry-after"] ?? 1));
        }
      };
      const made = await post("/api/city/rooms", { slug, title: `History ${lang}` });
      assert.equal(made.status(), 201, await made.text());
      for (let n = 0; n < 120; n += 1) {
        const sent = await post(`/api/city/rooms/${slug}/messages`, { body: `line ${n}` });
        assert.equal(sent.status(), 201, await sent.text());
      }

      await page.goto(`${city.url}/rooms/${slug}`);
      await page.getByText(t("live.open")).waitFor();
      const log = page.getByRole("log");
      await log.getByText("line 119", { exact: true }).waitFor();
      const beginning = page.getByText(t("room.beginning"));
      assert.equal(await beginning.count(), 0, "only the latest page at first");
      assert.equal(await log.getByText("line 0", { exact: true }).count(), 0);
      assert.equal(await log.getByText("line 69", { exact: true }).count(), 0);

      // Up to the top, as a reader would; each arrival at the top asks for
      // the page before (bounded: three pages need no more than a few).
      for (let tries = 0; tries < 20 && !(await beginning.isVisible()); tries += 1) {
        await log.evaluate((el) => {
          el.scrollTop = 0;
        });
        await page.waitForTimeout(100);
      }
      await beginning.waitFor();
      await log.evaluate((el) => {
        el.scrollTop = 0;
      });
      const first = log.getByText("line 0", { exact: true });
      await first.waitFor();
      const top = async (text) =>
        (await log.getByText(text, { exact: true }).boundingBox())?.y ?? Number.NaN;
      assert.ok((await top("line 0")) < (await top("line 1")), "oldest first");
      await screenshot(page, `history-${lang}`);
      assert.deepEqual(reader.errors, [], "no script errors");
    });
  });
}
