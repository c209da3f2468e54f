// The city as it moves, in each language: the city's admin draws a
// district and places a room on the map; a citizen watching the map sees
// the room light up when someone speaks in it and reads the feed live; a
// visitor who never signed in reads the map, the feed and a citizen's
// public page; an agent comes online and the citizen sees it; a public
// community started in a district appears in it.
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
      // A city of its own: its first person is its admin.
      city = await startCity();
    });
    after(async () => {
      await city?.stop();
    });

    test("the map is drawn, lights up, and the feed and public pages follow", async () => {
      const mayor = await person(browser, { lang });
      await register(city, mayor, `mayor-${lang}`);
      const { page, t } = mayor;
      const say = async (room, body) => {
        const posted = await page.request.post(`${city.url}/api/city/rooms/${room}/messages`, {
          data: { body },
          headers: { origin: city.url },
        });
        assert.equal(posted.status(), 201, await posted.text());
      };
      const opened = await page.request.post(`${city.url}/api/city/rooms`, {
        data: { slug: "harbour", title: "Harbour" },
        headers: { origin: city.url },
      });
      assert.equal(opened.status(), 201, await opened.text());

      await page.getByRole("link", { name: t("nav.map") }).click();
      await arrived(page, /\/city$/);
      await page.getByRole("heading", { name: t("map.title") }).waitFor();
      await page.getByText(t("map.empty")).waitFor();
      const district = page.getByRole("form", { name: t("map.draw_district") });
      await district.getByLabel(t("map.district_slug")).fill("port");
      await district.getByLabel(t("map.district_name")).fill("Port");
      await district.getByLabel(t("map.w")).fill("6");
      await district.getByLabel(t("map.h")).fill("4");
      await district.getByRole("button", { name: t("map.draw") }).click();
      await page.getByRole("region", { name: "Port" }).waitFor();

      const place = page.getByRole("form", { name: t("map.place_room") });
      await place.getByLabel(t("map.room")).selectOption("harbour");
      await place.getByLabel(t("map.district")).selectOption("port");
      await place.getByLabel(t("map.x")).fill("1");
      await place.getByLabel(t("map.w")).fill("2");
      await place.getByRole("button", { name: t("map.place") }).click();
      const legend = page.getByRole("region", { name: "Port" });
      await legend.getByRole("link", { name: "Harbour" }).waitFor();
      // A second room on the same cells is refused, with the reason.
      await place.getByLabel(t("map.room")).selectOption("general");
      await place.getByRole("button", { name: t("map.place") }).click();
      await place.getByRole("alert").filter({ hasText: "harbour" }).waitFor();
      await expectNoAccessibilityProblems(page, "city map (admin)");

      // A citizen watches the map: the harbour lights up when someone speaks there.
      const lina = await person(browser, { lang });
      await register(city, lina, `lina-${lang}`);
      await lina.page.goto(`${city.url}/city`);
      const harbour = lina.page.locator('svg a[aria-label="Harbour"]');
      await harbour.waitFor();
      assert.equal(
        await lina.page.getByRole("form", { name: lina.t("map.place_room") }).count(),
        0,
        "only admins draw",
      );
      await say("harbour", "Ships ahoy");
      await harbour.locator("g.lit").waitFor();
      // She starts a public community in the port: it appears in its
      // district on the map she is looking at.
      const guild = await lina.page.request.post(`${city.url}/api/microdao/daos`, {
        data: { slug: `dockers-${lang}`, name: "Dockers", visibility: "public", district: "port" },
        headers: { origin: city.url },
      });
      assert.equal(guild.status(), 201, await guild.text());
      await lina.page
        .getByRole("list", { name: `Port: ${lina.t("map.communities")}` })
        .getByRole("link", { name: "Dockers" })
        .waitFor();
      await screenshot(lina.page, `city-map-${lang}`);

      // The feed: what happened, live.
      await lina.page.getByRole("link", { name: lina.t("nav.feed") }).click();
      await arrived(lina.page, /\/feed$/);
      const feed = lina.page.getByRole("list", { name: lina.t("feed.title") });
      await feed.getByText("Ships ahoy").waitFor();
      await feed.getByText(lina.t("feed.what.room_opened")).first().waitFor();
      await say("harbour", "<b>Tide</b> is high");
      await feed.getByText("<b>Tide</b> is high").waitFor();
      await expectNoAccessibilityProblems(lina.page, "feed");

      // An agent comes online, and the citizen sees it at once.
      const key = await page.request.post(`${city.url}/api/auth/api-keys`, {
        data: { name: "pilot", agent: `pilot-${lang}` },
        headers: { origin: city.url },
      });
      assert.equal(key.status(), 201, await key.text());
      const reported = await fetch(`${city.url}/api/city/agents/presence`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${(await key.json()).key}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ status: "busy" }),
      });
      assert.equal(reported.status, 200, await reported.text());
      const agents = lina.page.getByRole("complementary", { name: lina.t("agents.title") });
      const pilot = agents.getByRole("listitem").filter({ hasText: `pilot-${lang}` });
      await pilot.getByText(lina.t("agents.status.busy")).waitFor();
      await screenshot(lina.page, `city-feed-${lang}`);
      await pilot.getByRole("link", { name: `pilot-${lang}` }).click();
      await arrived(lina.page, new RegExp(`/agents/pilot-${lang}$`));
      await lina.page
        .getByRole("heading", { name: lina.t("agents.heading", { id: `pilot-${lang}` }) })
        .waitFor();

      // A visitor who never signed in reads the map, the feed and a citizen's page.
      const visitor = await person(browser, { lang });
      await visitor.page.goto(`${city.url}/city`);
      await visitor.page.locator('svg a[aria-label="Harbour"]').waitFor();
      await visitor.page.getByRole("link", { name: visitor.t("nav.sign_in") }).waitFor();
      await expectNoAccessibilityProblems(visitor.page, "city map (visitor)");
      await visitor.page.getByRole("link", { name: visitor.t("nav.feed") }).click();
      await arrived(visitor.page, /\/feed$/);
      const seen = visitor.page.getByRole("list", { name: visitor.t("feed.title") });
      await seen.getByText("Ships ahoy").waitFor();
      await seen
        .getByRole("link", { name: `mayor-${lang}` })
        .first()
        .click();
      await arrived(visitor.page, new RegExp(`/people/mayor-${lang}$`));
      await visitor.page.getByRole("heading", { name: `mayor-${lang}` }).waitFor();
      const activity = visitor.page.getByRole("list", { name: visitor.t("feed.activity") });
      await activity.getByText("Ships ahoy").waitFor();
      // The visitor reads the room itself, and is asked to sign in to talk.
      await visitor.page.getByRole("link", { name: visitor.t("nav.rooms") }).click();
      await arrived(visitor.page, /\/rooms$/);
      await visitor.page.getByRole("link", { name: "Harbour" }).click();
      await arrived(visitor.page, /\/rooms\/harbour$/);
      await visitor.page.getByRole("log").getByText("Ships ahoy").waitFor();
      await visitor.page.getByRole("link", { name: visitor.t("room.sign_in_to_talk") }).waitFor();
      assert.equal(await visitor.page.locator("textarea").count(), 0);
      await expectNoAccessibilityProblems(visitor.page, "room (visitor)");

      // The admin takes the room off the map; the district stays, empty.
      await page.getByRole("button", { name: t("map.remove_named", { name: "Harbour" }) }).click();
      await page.getByRole("region", { name: "Port" }).getByText(t("map.district_empty")).waitFor();
      assert.deepEqual(visitor.errors, []);
      assert.deepEqual(lina.errors, []);
      assert.deepEqual(mayor.errors, []);
      for (const who of [mayor, lina, visitor]) await who.context.close();
    });
  });
}
