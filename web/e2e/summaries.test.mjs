// An agent's rolling summaries of its rooms, in each language: in a city
// whose agents read a room's last 3 messages and fold 2 that have left, a
// room talks on, the agent answers, and its page shows what it keeps of
// the room (the fake model's words, as the summary it wrote).
import { after, before, describe, test } from "node:test";
import { fakeModelConfig, REPLY, startFakeOpenAI } from "./fake-openai.mjs";
import {
  community,
  eventually,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  startCity,
} from "./harness.mjs";

let fake;
let city;
let browser;
before(async () => {
  fake = await startFakeOpenAI();
  city = await startCity({
    DAARION_CONFIG: fakeModelConfig(fake, "default"),
    DAARION__RUNTIME__WINDOW_MESSAGES: "3",
    DAARION__RUNTIME__SUMMARY_EVERY: "2",
  });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await city?.stop();
  await fake?.stop();
});

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("an agent's page shows what it keeps of a long room", async () => {
      const keeper = await person(browser, { lang });
      await register(city, keeper, `scribe-${lang}`);
      const { page, t } = keeper;
      const dao = `annals-${lang}`;
      const room = await community(city, keeper, dao, `Annals ${lang}`);
      const agent = `scribe-bot-${lang}`;
      const post = async (path, data) => {
        const response = await page.request.post(`${city.url}${path}`, {
          data,
          headers: { origin: city.url },
        });
        if (!response.ok()) throw new Error(`${path}: ${await response.text()}`);
      };
      await post("/api/agents/agents", { slug: agent, blueprint: "helper", dao });
      await post(`/api/microdao/daos/${dao}/agents`, { agent });
      for (const n of [1, 2, 3, 4]) {
        await post(`/api/messaging/rooms/${room}/messages`, { body: `entry ${n}` });
      }
      await post(`/api/messaging/rooms/${room}/messages`, { body: `@agent:${agent} what is new?` });

      await page.goto(`${city.url}/hub/${agent}`);
      const kept = page.getByRole("list", { name: t("summaries.title") });
      await eventually(page, kept.getByText(REPLY.join("")));
      await kept.getByRole("link", { name: t("summaries.open") }).waitFor();
      await expectNoAccessibilityProblems(page, "summaries");
      await page.close();
    });
  });
}
