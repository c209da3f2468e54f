// Space, in each language: the city's admin registers a node for a
// community and gets its token once; the node reports; a visitor who
// never signed in finds the community in the directory and sees its
// planet (figures from what happened, the node as a satellite); the admin
// rotates the token and removes the node.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
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

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    let city;
    before(async () => {
      city = await startCity();
    });
    after(async () => {
      await city?.stop();
    });

    test("a node is registered, reports, and orbits its community's planet", async () => {
      const admin = await person(browser, { lang });
      await register(city, admin, `astra-${lang}`);
      const { page, t } = admin;
      const slug = `orbiters-${lang}`;
      const room = await community(city, admin, slug, `Orbiters ${lang}`);
      const posted = await page.request.post(`${city.url}/api/messaging/rooms/${room}/messages`, {
        data: { body: "lift-off" },
        headers: { origin: city.url },
      });
      assert.equal(posted.status(), 201, await posted.text());

      await page.getByRole("link", { name: t("nav.space") }).click();
      await arrived(page, /\/space$/);
      await page.getByRole("link", { name: t("space.nodes") }).click();
      await arrived(page, /\/space\/nodes$/);
      await page.getByText(t("space.no_nodes")).waitFor();
      const form = page.getByRole("form", { name: t("space.register") });
      await form.getByLabel(t("space.node_id")).fill(`box-${lang}`);
      await form.getByLabel(t("space.node_name")).fill(`Box ${lang}`);
      await form.getByLabel(t("space.node_role")).selectOption("production");
      await form.getByLabel(t("space.node_kind")).selectOption("gateway");
      await form.getByLabel(t("space.node_dao")).fill(slug);
      await form.getByRole("button", { name: t("space.register_button") }).click();
      const token = (await page.locator("code.secret").textContent()) ?? "";
      assert.match(token, /^dn_/);
      const nodes = page.getByRole("list", { name: t("space.nodes") });
      await nodes.getByText(t("space.status.registered")).waitFor();
      await expectNoAccessibilityProblems(page, "node registry");

      const beat = await fetch(`${city.url}/api/space/nodes/box-${lang}/heartbeat`, {
        method: "POST",
        headers: { "x-node-token": token, "content-type": "application/json" },
        body: JSON.stringify({
          version: "1.0",
          metrics: { cpu_percent: 21, latency_ms: 7, agents: 2 },
        }),
      });
      assert.equal(beat.status, 200, await beat.text());
      await page.reload();
      await nodes.getByText(t("space.status.online")).waitFor();
      await nodes.getByRole("link", { name: `Box ${lang}` }).click();
      await arrived(page, new RegExp(`/space/nodes/box-${lang}$`));
      await page.getByRole("heading", { name: `Box ${lang}` }).waitFor();
      assert.equal(await page.locator("tbody tr").count(), 1);

      // A visitor finds the community and sees its planet.
      const visitor = await person(browser, { lang });
      const v = visitor.t;
      await visitor.page.goto(`${city.url}/space`);
      await visitor.page.getByLabel(v("space.search")).fill(`orbiters`);
      await visitor.page.getByRole("button", { name: v("space.find") }).click();
      const planets = visitor.page.getByRole("list", { name: v("space.planets") });
      await eventually(visitor.page, planets.getByRole("link", { name: `Orbiters ${lang}` }));
      await expectNoAccessibilityProblems(visitor.page, "space directory");
      await planets.getByRole("link", { name: `Orbiters ${lang}` }).click();
      await arrived(visitor.page, new RegExp(`/space/planets/${slug}$`));
      const figures = visitor.page.getByRole("definition");
      await eventually(visitor.page, figures.nth(2).getByText("1", { exact: true }));
      const satellites = visitor.page.getByRole("list", { name: v("space.satellites") });
      await satellites.getByText(`Box ${lang}`).waitFor();
      await satellites.getByText(v("space.status.online")).waitFor();
      await visitor.page.getByText(v("space.anomaly_none", { days: 0 })).waitFor();
      await expectNoAccessibilityProblems(visitor.page, "planet");
      await screenshot(visitor.page, `planet-${lang}`);

      // A new token replaces the old; removing the node ends it.
      await page.goto(`${city.url}/space/nodes`);
      await page.getByRole("button", { name: t("space.rotate", { node: `Box ${lang}` }) }).click();
      await page.locator("code.secret").filter({ hasNotText: token }).waitFor();
      const stale = await fetch(`${city.url}/api/space/nodes/box-${lang}/heartbeat`, {
        method: "POST",
        headers: { "x-node-token": token, "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(stale.status, 401);
      await page.getByRole("button", { name: t("space.remove", { node: `Box ${lang}` }) }).click();
      await page.getByText(t("space.no_nodes")).waitFor();
      assert.deepEqual(admin.errors, []);
      assert.deepEqual(visitor.errors, []);
      for (const who of [admin, visitor]) await who.context.close();
    });
  });
}
