// Second Me, in each language: a person tells their own agent something,
// asks about it in a new conversation, and sees the answer use it (the
// fake model answers from what it is given to recall); both conversations
// stay listed, and what they said is in their own memory.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fakeModelConfig, REPLY, startFakeOpenAI } from "./fake-openai.mjs";
import {
  arrived,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  screenshot,
  startCity,
} from "./harness.mjs";

let fake;
let city;
let browser;
before(async () => {
  fake = await startFakeOpenAI();
  // Second Me thinks with the alias `default` unless the city says otherwise.
  city = await startCity({ DAARION_CONFIG: fakeModelConfig(fake, "default") });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await city?.stop();
  await fake?.stop();
});

const said = {
  en: {
    told: "My daughter Olena was born on the twelfth of May.",
    asked: "When was my daughter born?",
  },
  uk: {
    told: "Моя донька Олена народилася дванадцятого травня.",
    asked: "Коли народилася моя донька?",
  },
};

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("tell Second Me something, ask in a new conversation, see the answer use it", async () => {
      const { told, asked } = said[lang];
      const mira = await person(browser, { lang });
      await register(city, mira, `mira-${lang}`);
      const { page, t } = mira;

      await page.getByRole("link", { name: t("nav.secondme") }).click();
      await page.getByRole("heading", { name: t("secondme.title"), exact: true }).waitFor();
      const log = page.getByRole("log", { name: t("secondme.conversation") });
      await log.getByText(t("secondme.empty")).waitFor();

      // The first message makes the agent; nothing to recall yet.
      await page.getByLabel(t("secondme.message")).fill(told);
      await page.getByRole("button", { name: t("secondme.send") }).click();
      await arrived(page, /\/second-me\/smc_[0-9a-f]+$/);
      await log.getByText(REPLY.join("")).waitFor();
      await log.getByText(told).waitFor();
      assert.equal(await log.getByText(t("secondme.recalled")).count(), 0);
      await page.getByRole("link", { name: t("secondme.settings") }).waitFor();

      // What was said is a note in the person's own memory, indexed soon.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const notes = await (await page.request.get(`${city.url}/api/memory/me/documents`)).json();
        if (notes.items.some((n) => n.indexed_at)) break;
        assert.ok(Date.now() < deadline, `the note was not indexed: ${JSON.stringify(notes)}`);
        await new Promise((r) => setTimeout(r, 250));
      }

      // A new conversation: the answer uses what was told in the first.
      await page.getByRole("link", { name: t("secondme.new") }).click();
      await arrived(page, /\/second-me$/);
      await log.getByText(t("secondme.empty")).waitFor();
      await page.getByLabel(t("secondme.message")).fill(asked);
      await page.getByRole("button", { name: t("secondme.send") }).click();
      await log.getByText(`You told me: ${told}`).waitFor();
      await log.getByText(t("secondme.recalled")).waitFor();

      const conversations = page.getByRole("navigation", { name: t("secondme.conversations") });
      await conversations.getByRole("link", { name: told }).waitFor();
      await conversations.getByRole("link", { name: asked }).waitFor();
      await expectNoAccessibilityProblems(page, "second me");
      await screenshot(page, `secondme-${lang}`);

      // The first conversation is still there, turn by turn.
      await conversations.getByRole("link", { name: told }).click();
      await log.getByText(REPLY.join("")).waitFor();
      await page.close();
    });
  });
}
