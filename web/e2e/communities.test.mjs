// Communities (microDAOs), in each language: one person starts a private
// community, brings in an agent of hers and makes an invitation code;
// another joins with it and is listed among its members; a public
// community is joined with a button, points are minted and sent through
// its treasury, and it is left; an owner defines a role of the
// community's own, and its holder invites people through it.
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
    test("a private community is started, and joined with its invitation code", async () => {
      const olena = await person(browser, { lang });
      await register(city, olena, `olena-${lang}`);
      const { page, t } = olena;
      await page.getByRole("link", { name: t("nav.communities") }).click();
      await arrived(page, /\/communities$/);
      await page.getByRole("heading", { name: t("dao.title") }).waitFor();
      await expectNoAccessibilityProblems(page, "communities");

      const form = page.locator("form").filter({ hasText: t("dao.new") });
      await form.getByLabel(t("rooms.slug")).fill(`circle-${lang}`);
      await form.getByLabel(t("rooms.name")).fill(`Circle ${lang}`);
      await form.getByLabel(t("dao.private_hint")).check();
      await form.getByRole("button", { name: t("dao.create") }).click();
      await arrived(page, new RegExp(`/communities/circle-${lang}$`));
      await page.getByRole("heading", { name: `Circle ${lang}` }).waitFor();
      await page.getByText(t("dao.role.owner")).first().waitFor();
      await page.getByRole("button", { name: t("dao.invite_create") }).click();
      const code = (await page.locator("code.secret").textContent()) ?? "";
      assert.match(code, /^mdi_/);
      // An agent of hers joins with the agent role.
      const key = await page.request.post(`${city.url}/api/auth/api-keys`, {
        data: { name: "scribe", agent: `scribe-${lang}` },
        headers: { origin: city.url },
      });
      assert.equal(key.status(), 201, await key.text());
      await page.getByLabel(t("dao.agent_id")).fill(`scribe-${lang}`);
      await page.getByRole("button", { name: t("dao.add_agent") }).click();
      await page
        .getByRole("list", { name: t("dao.members") })
        .getByRole("listitem")
        .filter({ hasText: `agent:scribe-${lang}` })
        .getByText(t("dao.role.agent"), { exact: true })
        .waitFor();
      await expectNoAccessibilityProblems(page, "community");

      const taras = await person(browser, { lang });
      await register(city, taras, `taras-${lang}`);
      await taras.page.goto(`${city.url}/communities`);
      // A private community is not listed for a stranger.
      const listed = taras.page.getByRole("list", { name: taras.t("dao.title") });
      await listed.or(taras.page.getByText(taras.t("dao.empty"))).waitFor();
      assert.equal(await listed.getByText(`Circle ${lang}`).count(), 0);
      await taras.page.getByLabel(taras.t("dao.code")).fill(code);
      await taras.page.getByRole("button", { name: taras.t("dao.join") }).click();
      await arrived(taras.page, new RegExp(`/communities/circle-${lang}$`));
      const members = taras.page.getByRole("list", { name: taras.t("dao.members") });
      await members.getByText(`taras-${lang}`).waitFor();
      await members.getByText(`olena-${lang}`).waitFor();
      await screenshot(taras.page, `community-${lang}`);

      // The code was for one person: a second use is refused, on the page.
      const third = await person(browser, { lang });
      await register(city, third, `third-${lang}`);
      await third.page.goto(`${city.url}/communities`);
      await third.page.getByLabel(third.t("dao.code")).fill(code);
      await third.page.getByRole("button", { name: third.t("dao.join") }).click();
      await third.page.getByRole("alert").waitFor();
      assert.match(third.page.url(), /\/communities$/);

      assert.deepEqual([...olena.errors, ...taras.errors], [], "no script errors");
      for (const who of [olena, taras, third]) await who.context.close();
    });

    test("a public community is joined, its points move, and it is left", async () => {
      const maker = await person(browser, { lang });
      await register(city, maker, `maker-${lang}`);
      const made = await maker.page.request.post(`${city.url}/api/microdao/daos`, {
        data: { slug: `open-${lang}`, name: `Open ${lang}` },
        headers: { origin: city.url },
      });
      assert.equal(made.status(), 201, await made.text());

      const guest = await person(browser, { lang });
      await register(city, guest, `joiner-${lang}`);
      const { page, t } = guest;
      await page.goto(`${city.url}/communities`);
      await page.getByRole("link", { name: `Open ${lang}` }).click();
      await arrived(page, new RegExp(`/communities/open-${lang}$`));
      await page.getByRole("button", { name: t("dao.join") }).click();
      const members = page.getByRole("list", { name: t("dao.members") });
      await members.getByText(`joiner-${lang}`).waitFor();

      // Its owner mints points to the newcomer, who sends some back to the
      // community; balances and the history show both.
      const owner = maker.page;
      await owner.goto(`${city.url}/communities/open-${lang}`);
      const mint = owner.getByRole("form", { name: maker.t("treasury.mint") });
      await mint.getByLabel(maker.t("treasury.to")).selectOption({ label: `joiner-${lang}` });
      await mint.getByLabel(maker.t("treasury.amount")).fill("50");
      await mint.getByRole("button", { name: maker.t("treasury.mint") }).click();
      const ownerHistory = owner.getByRole("list", { name: maker.t("treasury.history") });
      await ownerHistory.getByText(`→ joiner-${lang}: 50`).waitFor();
      await expectNoAccessibilityProblems(owner, "treasury");

      await page.reload();
      const send = page.getByRole("form", { name: t("treasury.send") });
      await send.getByLabel(t("treasury.to")).selectOption({ label: t("treasury.community") });
      await send.getByLabel(t("treasury.amount")).fill("20");
      await send.getByLabel(t("treasury.memo")).fill("for the party");
      await send.getByRole("button", { name: t("treasury.send") }).click();
      const history = page.getByRole("list", { name: t("treasury.history") });
      await history.getByText(`joiner-${lang} → open-${lang}: 20 · for the party`).waitFor();
      const balances = page.getByRole("list", { name: t("treasury.balances") });
      await balances
        .getByRole("listitem")
        .filter({ hasText: `joiner-${lang}` })
        .getByText("30")
        .waitFor();
      // Sending more than one holds is refused, on the page.
      await send.getByLabel(t("treasury.to")).selectOption({ label: t("treasury.community") });
      await send.getByLabel(t("treasury.amount")).fill("31");
      await send.getByRole("button", { name: t("treasury.send") }).click();
      await send.getByRole("alert").waitFor();
      await screenshot(page, `treasury-${lang}`);

      await page.getByRole("button", { name: t("dao.leave") }).click();
      await members.getByText(`joiner-${lang}`).waitFor({ state: "detached" });
      await page.getByRole("button", { name: t("dao.join") }).waitFor();
      for (const who of [maker, guest]) await who.context.close();
    });

    test("a role of the community's own lets its holder invite, until it is gone", async () => {
      const owner = await person(browser, { lang });
      await register(city, owner, `keeper-${lang}`);
      const made = await owner.page.request.post(`${city.url}/api/microdao/daos`, {
        data: { slug: `guild-${lang}`, name: `Guild ${lang}` },
        headers: { origin: city.url },
      });
      assert.equal(made.status(), 201, await made.text());
      const holder = await person(browser, { lang });
      await register(city, holder, `scout-${lang}`);
      const joined = await holder.page.request.post(
        `${city.url}/api/microdao/daos/guild-${lang}/join`,
        { headers: { origin: city.url } },
      );
      assert.equal(joined.status(), 200, await joined.text());
      const page = `${city.url}/communities/guild-${lang}`;
      await holder.page.goto(page);
      await holder.page.getByRole("heading", { name: holder.t("roles.title") }).waitFor();
      const invite = (who) => who.page.getByRole("button", { name: who.t("dao.invite_create") });
      assert.equal(await invite(holder).count(), 0, "a member does not invite");

      const { t } = owner;
      await owner.page.goto(page);
      const define = owner.page.getByRole("form", { name: t("roles.define") });
      await define.getByLabel(t("roles.name")).fill("recruiter");
      await define.getByLabel(t("rooms.description")).fill("Brings people in");
      await define.getByLabel(t("roles.perm.invite")).check();
      await define.getByRole("button", { name: t("roles.save") }).click();
      const roles = owner.page.getByRole("list", { name: t("roles.title") });
      await roles.getByText(t("roles.holders", { n: 0 })).waitFor();
      await owner.page
        .getByLabel(t("roles.of", { who: `scout-${lang}` }))
        .selectOption({ label: "recruiter" });
      await roles.getByText(t("roles.holders", { n: 1 })).waitFor();
      await expectNoAccessibilityProblems(owner.page, "community roles");
      await screenshot(owner.page, `roles-${lang}`);

      // The holder sees the invitation form and makes a code.
      await holder.page.reload();
      await invite(holder).click();
      assert.match((await holder.page.locator("code.secret").textContent()) ?? "", /^mdi_/);

      // Deleted, the role grants nothing: the form is gone.
      await owner.page
        .getByRole("button", { name: t("roles.delete_named", { name: "recruiter" }) })
        .click();
      await owner.page.getByText(t("roles.none")).waitFor();
      await holder.page.reload();
      await holder.page.getByRole("heading", { name: holder.t("roles.title") }).waitFor();
      assert.equal(await invite(holder).count(), 0, "the deleted role grants nothing");
      assert.deepEqual([...owner.errors, ...holder.errors], [], "no script errors");
      for (const who of [owner, holder]) await who.context.close();
    });
  });
}
