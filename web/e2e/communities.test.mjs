// Communities (microDAOs), in each language: one person starts a private
// community, brings in an agent of hers and makes an invitation code;
// another joins with it and is listed among its members; a public
// community is joined with a button, points are minted and sent through
// its treasury, and it is left.
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
  });
}
