// A person's first visit, in each language: register with a passkey, keep
// recovery codes, sign out, sign back in from the username field's
// autofill, post in a room and see it arrive live in another person's
// browser.
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
  });
}
