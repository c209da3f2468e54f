// Governance, in each language: a member writes a proposal to add a
// person to the community and opens it; two members vote on their ballots
// and see the live count; it passes at its deadline by itself and is
// carried out (the person is listed among the members), and its record
// checks out in the browser; the living map shows the community and its
// activity as it happens. A ranked-choice signal shows its ballot and
// run-off, and a member lends their vote to another. A community pauses
// its agent, gives it a new prompt (the body in Markdown) and lowers its
// own monthly budget by vote.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  arrived,
  community,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
  screenshot,
  startCity,
} from "./harness.mjs";

let city;
let browser;
before(async () => {
  // Proposals may be open for a few seconds here.
  city = await startCity({ DAARION__DAO__MIN_VOTING_SECS: "1", DAARION__DAO__SWEEP_MS: "200" });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await city?.stop();
});

async function join(city, who, slug) {
  const joined = await who.page.request.post(`${city.url}/api/microdao/daos/${slug}/join`, {
    headers: { origin: city.url },
  });
  assert.equal(joined.status(), 200, await joined.text());
}

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("a proposal to add a member passes at its deadline and is carried out", async () => {
      const slug = `guild-${lang}`;
      const olha = await person(browser, { lang });
      await register(city, olha, `olha-${lang}`);
      await community(city, olha, slug, `Guild ${lang}`);
      const petro = await person(browser, { lang });
      await register(city, petro, `petro-${lang}`);
      await join(city, petro, slug);
      const newcomer = await person(browser, { lang });
      await register(city, newcomer, `newcomer-${lang}`);

      const { page, t } = olha;
      await page.goto(`${city.url}/communities/${slug}`);
      await page.getByRole("heading", { name: t("gov.title") }).waitFor();
      const form = page.getByRole("form", { name: t("gov.new") });
      await form.getByLabel(t("gov.proposal_title")).fill(`Welcome newcomer ${lang}`);
      await form.getByLabel(t("gov.body")).fill("They have helped for months.");
      await form.getByLabel(t("gov.kind.action")).check();
      await form.getByLabel(t("gov.action")).selectOption("add_member");
      await form.getByLabel(t("gov.username")).fill(`newcomer-${lang}`);
      await form.getByLabel(t("gov.duration")).fill("8");
      await form.getByLabel(t("gov.unit"), { exact: true }).selectOption("seconds");
      await form.getByLabel(t("gov.quorum"), { exact: true }).selectOption("share");
      await form.getByLabel(t("gov.percent")).fill("50");
      await expectNoAccessibilityProblems(page, "governance");
      await form.getByRole("button", { name: t("gov.create") }).click();
      await arrived(page, /\/proposals\/prp_/);
      const proposal = page.url();
      await page.getByRole("heading", { name: `Welcome newcomer ${lang}` }).waitFor();
      await page.getByText(t("gov.status.draft")).waitFor();
      await page.getByRole("button", { name: t("gov.open") }).click();
      await page.getByText(t("gov.status.active"), { exact: true }).waitFor();

      // Both members vote for it on their ballots; the count follows.
      const ballot = page.getByRole("form", { name: t("gov.ballot") });
      await ballot.getByLabel(t("gov.basic.for")).check();
      await ballot.getByRole("button", { name: t("gov.vote") }).click();
      await page.getByText(t("gov.receipt", { seq: 1, hash: "" }).split("(")[0].trim()).waitFor();
      await petro.page.goto(proposal);
      const theirs = petro.page.getByRole("form", { name: petro.t("gov.ballot") });
      await theirs.getByLabel(petro.t("gov.basic.for")).check();
      await expectNoAccessibilityProblems(petro.page, "ballot");
      await theirs.getByRole("button", { name: petro.t("gov.vote") }).click();
      const tally = petro.page.getByRole("list", { name: petro.t("gov.tally") });
      await tally.getByText(petro.t("gov.score", { n: 2, share: 100 })).waitFor();
      await screenshot(petro.page, `proposal-${lang}`);

      // Nobody closes it: at the deadline it passes and is carried out.
      await page.getByText(t("gov.execution.done")).waitFor({ timeout: 30_000 });
      await page.getByText(t("gov.status.executed"), { exact: true }).waitFor();
      await page.getByRole("button", { name: t("gov.verify") }).click();
      await page.getByText(t("gov.record_intact", { n: 2 })).waitFor();
      await screenshot(page, `proposal-executed-${lang}`);
      await page.goto(`${city.url}/communities/${slug}`);
      await page
        .getByRole("list", { name: t("dao.members") })
        .getByText(`newcomer-${lang}`)
        .waitFor();
      // And the community's room was told.
      const rooms = await page.request.get(`${city.url}/api/messaging/daos/${slug}/rooms`);
      const general = (await rooms.json()).items.find((r) => r.slug === "general").id;
      const said = await page.request.get(`${city.url}/api/messaging/rooms/${general}/messages`);
      const bodies = (await said.json()).items.map((m) => m.body).join("\n");
      assert.match(bodies, new RegExp(`Welcome newcomer ${lang}`));

      // The living map shows the community, and its activity as it happens.
      await page.getByRole("link", { name: t("nav.livemap") }).click();
      await arrived(page, /\/living-map$/);
      await page
        .getByRole("list", { name: t("livemap.communities") })
        .getByText(`Guild ${lang}`)
        .waitFor();
      await expectNoAccessibilityProblems(page, "living map");
      const posted = await petro.page.request.post(
        `${city.url}/api/messaging/rooms/${general}/messages`,
        { data: { body: "Are we on the map?" }, headers: { origin: city.url } },
      );
      assert.equal(posted.status(), 201, await posted.text());
      await page
        .getByRole("list", { name: t("livemap.recent") })
        .getByText(t("livemap.spoke", { who: `petro-${lang}`, where: "general" }))
        .first()
        .waitFor();
      await screenshot(page, `living-map-${lang}`);

      assert.deepEqual([...olha.errors, ...petro.errors], [], "no script errors");
      for (const who of [olha, petro, newcomer]) await who.context.close();
    });

    test("a ranked-choice signal is voted on, and a vote is lent", async () => {
      const slug = `choir-${lang}`;
      const anna = await person(browser, { lang });
      await register(city, anna, `anna-${lang}`);
      await community(city, anna, slug, `Choir ${lang}`);
      const ivan = await person(browser, { lang });
      await register(city, ivan, `ivan-${lang}`);
      await join(city, ivan, slug);
      const { page, t } = anna;
      await page.goto(`${city.url}/communities/${slug}`);

      // Ivan lends his vote to Anna, then takes it back.
      await ivan.page.goto(`${city.url}/communities/${slug}`);
      const lend = ivan.page.getByRole("form", { name: ivan.t("gov.delegation") });
      await lend.getByText(ivan.t("gov.votes_self")).waitFor();
      await lend.getByLabel(ivan.t("gov.delegate")).selectOption({ label: `anna-${lang}` });
      await lend.getByRole("button", { name: ivan.t("gov.lend") }).click();
      await lend.getByText(ivan.t("gov.delegates_to", { who: `anna-${lang}` })).waitFor();
      await lend.getByRole("button", { name: ivan.t("gov.take_back") }).click();
      await lend.getByText(ivan.t("gov.votes_self")).waitFor();

      const form = page.getByRole("form", { name: t("gov.new") });
      await form.getByLabel(t("gov.proposal_title")).fill(`Next song ${lang}`);
      await form.getByLabel(t("gov.method")).selectOption("ranked");
      await form.getByLabel(t("gov.options")).fill("Shchedryk\nVerbovaya doshchechka\nOi u luzi");
      await form.getByLabel(t("gov.threshold")).selectOption("majority");
      await form.getByRole("button", { name: t("gov.create") }).click();
      await arrived(page, /\/proposals\/prp_/);
      await page.getByRole("button", { name: t("gov.open") }).click();
      const ballot = page.getByRole("form", { name: t("gov.ballot") });
      await ballot.getByLabel(t("gov.rank_of", { option: "Oi u luzi" })).selectOption("1");
      await ballot.getByLabel(t("gov.rank_of", { option: "Shchedryk" })).selectOption("2");
      await expectNoAccessibilityProblems(page, "ranked ballot");
      await ballot.getByRole("button", { name: t("gov.vote") }).click();
      const tally = page.getByRole("list", { name: t("gov.tally") });
      await tally.getByText(`Oi u luzi · ${t("gov.leading")}`).waitFor();
      assert.deepEqual([...anna.errors, ...ivan.errors], [], "no script errors");
      for (const who of [anna, ivan]) await who.context.close();
    });

    test("a community pauses its agent, gives it a new prompt and lowers its budget by vote", async () => {
      const slug = `desk-${lang}`;
      const oksana = await person(browser, { lang });
      await register(city, oksana, `oksana-${lang}`);
      await community(city, oksana, slug, `Desk ${lang}`);
      const { page, t } = oksana;
      const made = await page.request.post(`${city.url}/api/agents/agents`, {
        data: { slug: `clerk-${lang}`, name: `Clerk ${lang}`, prompt: "Help.", dao: slug },
        headers: { origin: city.url },
      });
      assert.equal(made.status(), 201, await made.text());
      await page.goto(`${city.url}/communities/${slug}`);
      const form = page.getByRole("form", { name: t("gov.new") });
      await form.getByLabel(t("gov.proposal_title")).fill(`Rest the clerk ${lang}`);
      await form.getByLabel(t("gov.body")).fill("The clerk **needs a rest** and a shorter prompt.");
      await form.getByLabel(t("gov.kind.action")).check();
      await form.getByLabel(t("gov.action")).selectOption("change_agent");
      await form
        .getByLabel(t("gov.agent"), { exact: true })
        .selectOption({ label: `Clerk ${lang}` });
      await form.getByLabel(t("gov.prompt")).fill("Answer in one sentence.");
      await form.getByLabel(t("gov.agent_status")).selectOption("paused");
      await form.getByLabel(t("gov.duration")).fill("3");
      await form.getByLabel(t("gov.unit"), { exact: true }).selectOption("seconds");
      await expectNoAccessibilityProblems(page, "agent proposal");
      await form.getByRole("button", { name: t("gov.create") }).click();
      await arrived(page, /\/proposals\/prp_/);
      // The body is Markdown, shown rendered.
      await page.locator("strong", { hasText: "needs a rest" }).waitFor();
      await page.getByText("Answer in one sentence.").waitFor();
      await page.getByRole("button", { name: t("gov.open") }).click();
      const ballot = page.getByRole("form", { name: t("gov.ballot") });
      await ballot.getByLabel(t("gov.basic.for")).check();
      await ballot.getByRole("button", { name: t("gov.vote") }).click();
      await page.getByText(t("gov.execution.done")).waitFor({ timeout: 30_000 });
      const clerk = await page.request.get(`${city.url}/api/agents/agents/clerk-${lang}`);
      const now = await clerk.json();
      assert.equal(now.status, "paused");
      assert.equal(now.prompt, "Answer in one sentence.");

      // And it lowers its own monthly budget.
      await page.goto(`${city.url}/communities/${slug}`);
      await form.getByLabel(t("gov.proposal_title")).fill(`Spend less ${lang}`);
      await form.getByLabel(t("gov.kind.action")).check();
      await form.getByLabel(t("gov.action")).selectOption("limit_spending");
      await form.getByLabel(t("gov.budget")).fill("20.50");
      await form.getByLabel(t("gov.duration")).fill("3");
      await form.getByLabel(t("gov.unit"), { exact: true }).selectOption("seconds");
      await form.getByRole("button", { name: t("gov.create") }).click();
      await arrived(page, /\/proposals\/prp_/);
      await page
        .getByText(t("gov.does.limit_spending", { what: `${t("gov.budget")}: 20.50` }))
        .waitFor();
      await page.getByRole("button", { name: t("gov.open") }).click();
      await ballot.getByLabel(t("gov.basic.for")).check();
      await ballot.getByRole("button", { name: t("gov.vote") }).click();
      await page.getByText(t("gov.execution.done")).waitFor({ timeout: 30_000 });
      const quota = await page.request.get(`${city.url}/api/control/quotas/dao:${slug}`);
      assert.equal((await quota.json()).value.budget_cents_per_month, 2050);
      assert.deepEqual(oksana.errors, [], "no script errors");
      await oksana.context.close();
    });
  });
}
