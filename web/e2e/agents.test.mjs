// Agents answering in rooms, in each language: a person makes an agent in
// the hub, brings it into her community, mentions it in the community's
// room and sees its answer arrive live (from a fake, local model through
// the city's LLM proxy), then makes it the room's responder and it answers
// a message that names nobody, and uses a tool when asked; the agent's page,
// open in another tab, shows the run arrive live — answered, asked by her —
// and its steps, the tool call among them; a blocked word
// in its rules stops a question (the rules' log says so); a stranger
// asks it on its public page once she makes it public. A crew: two agents
// she manages work a question in turn under a third, and the run shows
// which member took each step. A community founded with an orchestrator
// agent greets the next person who joins, in its General room; asked
// there, the orchestrator founds another community for its founder; the
// city's map counts those runs on Bay's planet.
import { after, before, describe, test } from "node:test";
import { fakeModelConfig, REPLY, startFakeOpenAI } from "./fake-openai.mjs";
import {
  arrived,
  community,
  eventually,
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
  // Agents made in the hub use the alias `default` unless told otherwise.
  city = await startCity({ DAARION_CONFIG: fakeModelConfig(fake, "default") });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await city?.stop();
  await fake?.stop();
});

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("a mentioned agent answers in the room, and its run shows on its page", async () => {
      const maker = await person(browser, { lang });
      const { page, t } = maker;
      await register(city, maker, `keeper-${lang}`);
      const room = await community(city, maker, `grove-${lang}`, `Grove ${lang}`);
      const agent = `sage-${lang}`;

      // Made from a blueprint in the hub...
      await page.goto(`${city.url}/hub`);
      const form = page.getByRole("form", { name: t("hub.new") });
      await form.getByLabel(t("hub.blueprint"), { exact: true }).selectOption("helper");
      await form.getByLabel(t("hub.slug")).fill(agent);
      await form.getByRole("button", { name: t("hub.create") }).click();
      await arrived(page, new RegExp(`/hub/${agent}$`));
      await page.getByRole("heading", { name: t("runs.title") }).waitFor();
      await page.getByText(t("runs.empty")).waitFor();

      // ...brought into the community...
      await page.goto(`${city.url}/communities/grove-${lang}`);
      await page.getByLabel(t("dao.agent_id")).fill(agent);
      await page.getByRole("button", { name: t("dao.add_agent") }).click();
      await page
        .getByRole("list", { name: t("dao.members") })
        .getByRole("listitem")
        .filter({ hasText: `agent:${agent}` })
        .waitFor();

      // Its page stays open in another tab, following its runs.
      const hub = await maker.context.newPage();
      await hub.goto(`${city.url}/hub/${agent}`);
      await hub.getByText(t("runs.empty")).waitFor();

      // ...and asked in its room: the answer arrives live, as a reply.
      await page.goto(`${city.url}/messages/${room}`);
      await page.getByRole("status").getByText(t("live.open")).waitFor();
      await page
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill(`@agent:${agent} what grows here?`);
      await page.getByRole("button", { name: t("room.send") }).click();
      await page
        .locator("article.message")
        .filter({ hasText: `agent:${agent}` })
        .filter({ hasText: REPLY.join("") })
        .waitFor({ timeout: 20000 });
      await expectNoAccessibilityProblems(page, "room with an agent's answer");

      // Made the room's responder, it answers a message that names nobody.
      const settings = page.getByRole("form", { name: t("chat.settings") });
      await settings.getByLabel(t("chat.responder")).fill(agent);
      await settings.getByRole("button", { name: t("chat.save_settings") }).click();
      await settings.getByText(t("chat.saved")).waitFor();
      await page
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill("Good morning, grove");
      await page.getByRole("button", { name: t("room.send") }).click();
      const answers = page
        .locator("article.message")
        .filter({ hasText: `agent:${agent}` })
        .filter({ hasText: REPLY.join("") });
      await answers.nth(1).waitFor({ timeout: 20000 });
      // Asked to use a tool, it calls it, then answers.
      await page
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill(`@agent:${agent} use time__now`);
      await page.getByRole("button", { name: t("room.send") }).click();
      await answers.nth(2).waitFor({ timeout: 20000 });

      // On its page, without reloading: the run, answered, asked by her;
      // its steps.
      const runs = hub.getByRole("list", { name: t("runs.title") });
      const completed = runs.getByRole("listitem").filter({ hasText: t("runs.status.completed") });
      // The third run (the tool's) is the newest once all three have ended.
      await completed.nth(2).waitFor();
      const run = completed.first();
      await run.getByText(t("runs.asked_by", { who: `keeper-${lang}` })).waitFor();
      await run.getByRole("button", { name: t("runs.show_steps") }).click();
      const steps = hub.getByRole("list", { name: t("runs.steps") });
      await steps
        .getByText(t("runs.model_call", { model: "default" }))
        .first()
        .waitFor();
      await steps.getByText(t("runs.tool_call", { tool: "time.now" })).waitFor();
      await steps.getByText(REPLY.join("")).waitFor();
      await expectNoAccessibilityProblems(hub, "agent runs");
      await screenshot(hub, `agent-runs-${lang}`);

      // Its rules: a blocked word stops a question before the model sees it.
      const rules = hub.getByRole("form", { name: t("filters.form") });
      await rules.getByLabel(t("filters.terms")).fill("secret");
      await rules.getByRole("button", { name: t("filters.save") }).click();
      await hub.getByText(t("filters.saved")).waitFor();
      await page
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill(`@agent:${agent} tell me a SECRET`);
      await page.getByRole("button", { name: t("room.send") }).click();
      await runs
        .getByRole("listitem")
        .filter({ hasText: t("runs.status.failed") })
        .getByText(/filtered/)
        .waitFor({ timeout: 20000 });
      await hub.reload();
      await hub
        .getByRole("list", { name: t("filters.events") })
        .getByText(t("filters.action.blocked"))
        .waitFor();
      await expectNoAccessibilityProblems(hub, "agent rules");

      // The community's own rules bind the agents in its rooms too.
      const club = await maker.context.newPage();
      await club.goto(`${city.url}/communities/grove-${lang}`);
      const clubRules = club.getByRole("form", { name: t("filters.form") });
      await clubRules.getByLabel(t("filters.terms")).fill("pumpkin");
      await clubRules.getByRole("button", { name: t("filters.save") }).click();
      await club.getByText(t("filters.saved")).waitFor();
      await expectNoAccessibilityProblems(club, "community rules");
      await club.close();
      await page
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill(`@agent:${agent} grow a pumpkin`);
      await page.getByRole("button", { name: t("room.send") }).click();
      await runs
        .getByRole("listitem")
        .filter({ hasText: t("runs.status.failed") })
        .filter({ hasText: "pumpkin" })
        .waitFor({ timeout: 20000 });

      // A stranger, not signed in, finds it answers only its own people...
      const stranger = await person(browser, { lang });
      const visit = stranger.page;
      await visit.goto(`${city.url}/agents/${agent}`);
      const ask = visit.getByRole("form", { name: stranger.t("agents.ask") });
      await ask.getByLabel(stranger.t("agents.question")).fill("Who are you?");
      await ask.getByRole("button", { name: stranger.t("agents.send_question") }).click();
      await ask.getByText(stranger.t("agents.not_public")).waitFor();
      // ...until its maker makes it public: then it answers them too.
      const edit = hub.getByRole("form", { name: t("hub.edit") });
      await edit.getByLabel(t("hub.visibility")).selectOption("public");
      await edit.getByRole("button", { name: t("hub.save") }).click();
      await hub.getByText(t("hub.visibility.public"), { exact: false }).first().waitFor();
      await ask.getByRole("button", { name: stranger.t("agents.send_question") }).click();
      await ask.getByText(REPLY.join("")).waitFor({ timeout: 20000 });
      await expectNoAccessibilityProblems(visit, "asking a public agent");
      await stranger.context.close();
      await maker.context.close();
    });

    test("a crew of agents answers in turn; its run shows who took each step", async () => {
      const maker = await person(browser, { lang });
      const { page, t } = maker;
      await register(city, maker, `crewer-${lang}`);
      const room = await community(city, maker, `den-${lang}`, `Den ${lang}`);
      const [scout, quill, team] = ["scout", "quill", "team"].map((a) => `${a}-${lang}`);
      for (const slug of [scout, quill, team]) {
        const made = await page.request.post(`${city.url}/api/agents/agents`, {
          data: { slug, blueprint: "helper", dao: `den-${lang}` },
          headers: { origin: city.url },
        });
        if (made.status() !== 201) throw new Error(await made.text());
      }
      const joined = await page.request.post(`${city.url}/api/microdao/daos/den-${lang}/agents`, {
        data: { agent: team },
        headers: { origin: city.url },
      });
      if (joined.status() !== 200) throw new Error(await joined.text());

      // Its crew, set on its page: a researcher, then a writer.
      await page.goto(`${city.url}/hub/${team}`);
      const crew = page.getByRole("form", { name: t("hub.crew") });
      await page.getByText(t("hub.crew_alone")).waitFor();
      await crew.getByLabel(t("hub.crew_process")).selectOption("sequential");
      await crew.getByLabel(t("hub.crew_member", { n: 1 })).fill(scout);
      await crew.getByLabel(t("hub.crew_role", { n: 1 })).fill("researcher");
      await crew.getByRole("button", { name: t("hub.crew_add") }).click();
      await crew.getByLabel(t("hub.crew_member", { n: 2 })).fill(quill);
      await crew.getByLabel(t("hub.crew_role", { n: 2 })).fill("writer");
      await crew.getByRole("button", { name: t("hub.crew_save") }).click();
      await page.getByText(t("hub.crew_is")).waitFor();
      await expectNoAccessibilityProblems(page, "an agent's crew");

      // Asked in the room, the crew answers as the agent.
      const chat = await maker.context.newPage();
      await chat.goto(`${city.url}/messages/${room}`);
      await chat.getByRole("status").getByText(t("live.open")).waitFor();
      await chat
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill(`@agent:${team} plan the harvest`);
      await chat.getByRole("button", { name: t("room.send") }).click();
      await chat
        .locator("article.message")
        .filter({ hasText: `agent:${team}` })
        .filter({ hasText: REPLY.join("") })
        .waitFor({ timeout: 20000 });

      // Its run's steps: the researcher's, then the writer's.
      await page.reload();
      const run = page
        .getByRole("list", { name: t("runs.title") })
        .getByRole("listitem")
        .filter({ hasText: t("runs.status.completed") })
        .first();
      await run.getByRole("button", { name: t("runs.show_steps") }).click();
      const steps = page.getByRole("list", { name: t("runs.steps") }).getByRole("listitem");
      await steps
        .nth(0)
        .getByText(t("runs.by_member", { agent: scout }))
        .waitFor();
      await steps
        .nth(1)
        .getByText(t("runs.by_member", { agent: quill }))
        .waitFor();
      await maker.context.close();
    });

    test("a community founded with an orchestrator greets a newcomer", async () => {
      const founder = await person(browser, { lang });
      const { page, t } = founder;
      await register(city, founder, `founder-${lang}`);
      const host = `host-${lang}`;
      const made = await page.request.post(`${city.url}/api/agents/agents`, {
        data: { slug: host, blueprint: "helper", tools: ["microdao.found"] },
        headers: { origin: city.url },
      });
      if (made.status() !== 201) throw new Error(await made.text());
      await page.goto(`${city.url}/communities`);
      await page.getByLabel(t("rooms.slug")).fill(`bay-${lang}`);
      await page.getByLabel(t("rooms.name")).fill(`Bay ${lang}`);
      await page.getByLabel(t("dao.orchestrator")).fill(host);
      await page.getByRole("button", { name: t("dao.create") }).click();
      await arrived(page, new RegExp(`/communities/bay-${lang}$`));
      await page.getByText(t("dao.orchestrator_is", { agent: `agent:${host}` })).waitFor();
      await expectNoAccessibilityProblems(page, "a community with an orchestrator");

      // Someone joins; the orchestrator welcomes them in General.
      const newcomer = await person(browser, { lang });
      await register(city, newcomer, `sailor-${lang}`);
      await newcomer.page.goto(`${city.url}/communities/bay-${lang}`);
      await newcomer.page.getByRole("button", { name: newcomer.t("dao.join") }).click();
      await newcomer.page.getByRole("button", { name: newcomer.t("dao.leave") }).waitFor();
      const rooms = await (
        await newcomer.page.request.get(`${city.url}/api/messaging/daos/bay-${lang}/rooms`)
      ).json();
      const general = rooms.items.find((r) => r.slug === "general");
      await newcomer.page.goto(`${city.url}/messages/${general.id}`);
      await newcomer.page
        .locator("article.message")
        .filter({ hasText: `agent:${host}` })
        .filter({ hasText: REPLY.join("") })
        .waitFor({ timeout: 20000 });
      await newcomer.context.close();

      // Asked in General, it founds a private community it orchestrates,
      // owned by the person who asked.
      await page.goto(`${city.url}/messages/${general.id}`);
      await page.getByRole("status").getByText(t("live.open")).waitFor();
      await page
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill(
          `use microdao__found {"slug": "cove-${lang}", "name": "Cove ${lang}", "public": false}`,
        );
      await page.getByRole("button", { name: t("room.send") }).click();
      await page
        .locator("article.message")
        .filter({ hasText: `agent:${host}` })
        .nth(1)
        .waitFor({ timeout: 20000 });
      await page.goto(`${city.url}/communities/cove-${lang}`);
      await page.getByText(t("dao.orchestrator_is", { agent: `agent:${host}` })).waitFor();
      await page
        .getByRole("list", { name: t("dao.members") })
        .getByRole("listitem")
        .filter({ hasText: `founder-${lang}` })
        .waitFor();

      // On the city's map, Bay's planet counts its agent's runs: the
      // greeting and the founding.
      await page.goto(`${city.url}/space/planets/bay-${lang}`);
      const runs = page.locator("dl.facts > div").filter({ hasText: t("space.runs_today") });
      await eventually(page, runs.getByRole("definition").getByText("2", { exact: true }));
      await founder.context.close();
    });
  });
}
