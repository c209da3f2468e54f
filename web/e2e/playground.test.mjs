// The LLM playground, in each language: a model alias the person may use,
// a reply streamed from a (fake, local) provider through the proxy, and the
// call's tokens and cost.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fakeModelConfig, REPLY, startFakeOpenAI } from "./fake-openai.mjs";
import { expectNoAccessibilityProblems, launch, person, register, startCity } from "./harness.mjs";

let fake;
let city;
let browser;
before(async () => {
  fake = await startFakeOpenAI();
  const config = fakeModelConfig(
    fake,
    "chat",
    "price = { input_per_million = 1000.0, output_per_million = 2000.0 }\n",
  );
  city = await startCity({ DAARION_CONFIG: config });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await city?.stop();
  await fake?.stop();
});

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("a reply streams in, with its tokens and cost", async () => {
      const who = await person(browser, { lang });
      const { page, t } = who;
      await register(city, who, `llm-${lang}`);
      await page.getByRole("link", { name: t("nav.playground") }).click();
      await page.getByLabel(t("playground.model")).waitFor();
      assert.equal(await page.getByLabel(t("playground.model")).inputValue(), "chat");
      await page
        .getByRole("textbox", { name: t("playground.prompt") })
        .fill("Say hello to the city");
      await page.getByRole("button", { name: t("playground.send") }).click();
      const log = page.getByRole("log", { name: t("playground.conversation") });
      await log.getByText(REPLY.join("")).waitFor();
      // 5 words in, 5 out: 5 × 1000 + 5 × 2000 millionths of a dollar.
      const usage = log.locator(".usage");
      await usage.waitFor();
      const line = (await usage.textContent()) ?? "";
      assert.match(line, /5/);
      assert.match(line, /0[.,]015/);
      await expectNoAccessibilityProblems(page, "playground");
      await who.context.close();
    });
  });
}
