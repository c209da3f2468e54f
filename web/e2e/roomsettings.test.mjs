// A room's settings, in each language: the owner of a public community
// opens its general room, turns on slow mode, keeps guests from posting
// and archives the room; a member sees no settings, and once the room is
// archived nobody can write in it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  community,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  startCity,
} from "./harness.mjs";

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

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("the owner sets the room up and archives it; a member only reads", async () => {
      const owner = await person(browser, { lang });
      await register(city, owner, `keeper-${lang}`);
      const { page, t } = owner;
      const room = await community(city, owner, `club-${lang}`, `Club ${lang}`);
      const member = await person(browser, { lang });
      await register(city, member, `regular-${lang}`);
      const joined = await member.page.request.post(
        `${city.url}/api/microdao/daos/club-${lang}/join`,
        { headers: { origin: city.url } },
      );
      assert.equal(joined.status(), 200, await joined.text());

      await page.goto(`${city.url}/messages/${room}`);
      const settings = page.getByRole("form", { name: t("chat.settings") });
      await settings.waitFor();
      await settings.getByLabel(t("chat.slow_mode")).fill("30");
      await settings.getByLabel(t("chat.posters")).selectOption("member");
      await settings.getByLabel(t("chat.agents_allowed")).uncheck();
      await settings.getByRole("button", { name: t("chat.save_settings") }).click();
      await settings.getByText(t("chat.saved")).waitFor();
      await expectNoAccessibilityProblems(page, "room settings");
      const stored = await page.request.get(`${city.url}/api/messaging/rooms/${room}`);
      const saved = await stored.json();
      assert.deepEqual(
        [saved.slow_mode_secs, saved.posters, saved.agents_allowed],
        [30, "member", false],
      );

      await member.page.goto(`${city.url}/messages/${room}`);
      await member.page
        .getByRole("textbox", { name: member.t("room.message"), exact: true })
        .waitFor();
      assert.equal(
        await member.page.getByRole("form", { name: member.t("chat.settings") }).count(),
        0,
        "a member does not manage the room",
      );

      await settings.getByRole("button", { name: t("chat.archive") }).click();
      await page.getByText(t("chat.archived")).waitFor();
      assert.equal(
        await page.getByRole("textbox", { name: t("room.message"), exact: true }).count(),
        0,
      );
      await member.page.reload();
      await member.page.getByText(member.t("chat.archived")).waitFor();
      assert.deepEqual(owner.errors, []);
      assert.deepEqual(member.errors, []);
      for (const who of [owner, member]) await who.context.close();
    });
  });
}
