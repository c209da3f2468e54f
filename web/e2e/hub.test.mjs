// The agent hub, in each language: a person makes an agent from a
// blueprint, changes its prompt, compares the first version with the new
// one, rolls back to it, sees what the agent used, its plan and budget
// (set by the city's admin) and pauses it; another person does not see the
// private agent.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  arrived,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  screenshot,
  startCity,
} from "./harness.mjs";

let city;
let browser;

/** Retries `check` until it passes, for what arrives through the bus. */
async function retried(check, tries = 20) {
  for (let n = 1; ; n++) {
    try {
      return await check();
    } catch (error) {
      if (n >= tries) throw error;
    }
  }
}
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
    test("an agent is made from a blueprint, its prompt changed, compared and rolled back", async () => {
      const maker = await person(browser, { lang });
      await register(city, maker, `maker-${lang}`);
      const { page, t } = maker;
      await page.getByRole("link", { name: t("nav.hub") }).click();
      await arrived(page, /\/hub$/);
      await page.getByRole("heading", { name: t("hub.title"), level: 1 }).waitFor();
      await page.getByText(t("hub.empty")).waitFor();
      await expectNoAccessibilityProblems(page, "agent hub");

      const form = page.getByRole("form", { name: t("hub.new") });
      await form.getByLabel(t("hub.blueprint"), { exact: true }).selectOption("helper");
      await form.getByLabel(t("hub.slug")).fill(`olha-${lang}`);
      await form.getByLabel(t("rooms.name")).fill(`Olha ${lang}`);
      await form.getByRole("button", { name: t("hub.create") }).click();
      await arrived(page, new RegExp(`/hub/olha-${lang}$`));
      await page.getByRole("heading", { name: `Olha ${lang}` }).waitFor();
      const edit = page.getByRole("form", { name: t("hub.edit") });
      const prompt = edit.getByLabel(t("hub.prompt"));
      assert.match(await prompt.inputValue(), /helpful member/);
      assert.equal(
        await edit.getByLabel(t("hub.tools")).inputValue(),
        "city.rooms, microdao.members, time.now",
      );

      // A new prompt is the control plane's version 2.
      await prompt.fill("Answer in one line.\nBe kind.");
      await edit.getByRole("button", { name: t("hub.save") }).click();
      const versions = page.getByRole("list", { name: t("hub.prompt_versions") });
      await versions
        .getByRole("listitem")
        .filter({ hasText: t("hub.version", { n: 2 }) })
        .getByText(t("hub.current"))
        .waitFor();

      // Version 1 against the current one: what was removed, what was added.
      await page.getByRole("button", { name: t("hub.compare_named", { n: 1 }) }).click();
      const diff = page.getByRole("figure", { name: t("hub.diff", { from: 1, to: 2 }) });
      await diff.locator(".diff-add").filter({ hasText: "Answer in one line." }).waitFor();
      await diff.locator(".diff-del").filter({ hasText: "helpful member" }).waitFor();
      await expectNoAccessibilityProblems(page, "agent page");
      await screenshot(page, `hub-agent-${lang}`);

      // Rolled back, version 1 is current and the form shows it again.
      await page.getByRole("button", { name: t("hub.roll_back_named", { n: 1 }) }).click();
      await versions
        .getByRole("listitem")
        .filter({ hasText: t("hub.version", { n: 1 }) })
        .getByText(t("hub.current"))
        .waitFor();
      await page.waitForFunction(
        (label) =>
          [...document.querySelectorAll("label")]
            .find((l) => l.textContent?.startsWith(label))
            ?.control?.value.includes("helpful member"),
        t("hub.prompt"),
      );

      // What the agent uses shows on its page: a tool call with its own key.
      const made = await page.request.post(`${city.url}/api/auth/api-keys`, {
        data: { name: "olha", agent: `olha-${lang}` },
        headers: { origin: city.url },
      });
      assert.equal(made.status(), 201, await made.text());
      const outside = await browser.newContext();
      const called = await outside.request.post(`${city.url}/api/toolcore/tools/time.now/call`, {
        data: { arguments: {} },
        headers: { authorization: `Bearer ${(await made.json()).key}` },
      });
      assert.equal(called.status(), 200, await called.text());
      await outside.close();
      const usage = page.getByRole("table", { name: t("hub.usage") });
      await retried(async () => {
        await page.reload();
        await usage.getByRole("row").filter({ hasText: "tool" }).waitFor({ timeout: 1000 });
      });

      // Its plan and budget: the owner reads them; the city's admin (the
      // city's first person, registered by the English run) sets them.
      await page.getByRole("heading", { name: t("hub.plan") }).waitFor();
      const planForm = page.getByRole("form", { name: t("hub.set_plan") });
      if (lang === "en") {
        await planForm.getByLabel(t("hub.plan_name"), { exact: true }).selectOption("pro");
        await planForm.getByLabel(t("hub.budget")).fill("7.5");
        await planForm.getByRole("button", { name: t("hub.set_plan") }).click();
        await page
          .getByText(/7[.,]50/)
          .first()
          .waitFor();
      } else {
        assert.equal(await planForm.count(), 0, "only city admins set plans");
      }

      await page.getByRole("button", { name: t("hub.pause") }).click();
      await page.getByText(t("hub.status.paused"), { exact: false }).first().waitFor();
      await page.getByRole("button", { name: t("hub.resume") }).waitFor();

      // Someone else does not see the private agent.
      const other = await person(browser, { lang });
      await register(city, other, `other-${lang}`);
      await other.page.goto(`${city.url}/hub`);
      await other.page.getByText(other.t("hub.empty")).waitFor();
      assert.deepEqual([...maker.errors, ...other.errors], [], "no script errors");
      for (const who of [maker, other]) await who.context.close();
    });
  });
}
