// The journey, in each language: a community is started, a second
// person is invited and joins, they talk in a topic of its general room;
// an edit and a reaction show live in the other browser; removed from the
// community (after its owner opened a room he does not see), the second
// person's open room stops at once. Then a direct
// conversation is started from the messenger and found by search.
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

/** The article of the message whose text is `text`. */
function line(page, text) {
  return page.locator("article.message").filter({ hasText: text });
}

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("a community talks in a topic, live, and a removed member is cut off", async () => {
      const olena = await person(browser, { lang });
      await register(city, olena, `host-${lang}`);
      const { page, t } = olena;
      await page.goto(`${city.url}/communities`);
      const form = page.locator("form").filter({ hasText: t("dao.new") });
      await form.getByLabel(t("rooms.slug")).fill(`talk-${lang}`);
      await form.getByLabel(t("rooms.name")).fill(`Talk ${lang}`);
      await form.getByLabel(t("dao.private_hint")).check();
      await form.getByRole("button", { name: t("dao.create") }).click();
      await arrived(page, new RegExp(`/communities/talk-${lang}$`));
      await page.getByRole("button", { name: t("dao.invite_create") }).click();
      const code = (await page.locator("code.secret").textContent()) ?? "";

      const taras = await person(browser, { lang });
      await register(city, taras, `guest-${lang}`);
      await taras.page.goto(`${city.url}/communities`);
      await taras.page.getByLabel(taras.t("dao.code")).fill(code);
      await taras.page.getByRole("button", { name: taras.t("dao.join") }).click();
      await arrived(taras.page, new RegExp(`/communities/talk-${lang}$`));

      // Both open the community's general room from its page.
      for (const who of [olena, taras]) {
        await who.page.goto(`${city.url}/communities/talk-${lang}`);
        await who.page
          .getByRole("list", { name: who.t("chat.rooms") })
          .getByRole("link", { name: "General" })
          .click();
        await arrived(who.page, /\/messages\/rm_/);
        await who.page.getByRole("status").getByText(who.t("live.open")).waitFor();
      }

      // Taras writes in a topic; Olena sees it at once, rendered.
      await taras.page.getByLabel(taras.t("chat.topic"), { exact: true }).fill("plans");
      await taras.page
        .getByRole("textbox", { name: taras.t("room.message"), exact: true })
        .fill("Let us meet **on Friday**");
      await taras.page.getByRole("button", { name: taras.t("room.send") }).click();
      const seen = line(page, "Let us meet on Friday");
      await seen.locator("strong", { hasText: "on Friday" }).waitFor();
      await page.getByRole("button", { name: /plans/ }).waitFor();
      await expectNoAccessibilityProblems(page, "chat room");

      // He edits it; she reacts: each shows in the other browser.
      const his = line(taras.page, "Let us meet on Friday");
      await his.getByRole("button", { name: taras.t("chat.edit") }).click();
      await taras.page.getByLabel(taras.t("chat.edit")).fill("Let us meet on Saturday");
      await taras.page.getByRole("button", { name: taras.t("chat.save") }).click();
      const edited = line(page, "Let us meet on Saturday");
      await edited.getByText(t("chat.edited")).waitFor();
      // Her second tab follows the room too: the reaction is marked hers
      // there as well (a live frame says who reacted).
      const other = await olena.context.newPage();
      await other.goto(page.url());
      await other.getByRole("status").getByText(t("live.open")).waitFor();
      await line(other, "Let us meet on Saturday").waitFor();
      await edited.getByRole("button", { name: t("chat.react", { emoji: "👍", n: 0 }) }).click();
      await line(taras.page, "Let us meet on Saturday")
        .getByRole("button", { name: taras.t("chat.react", { emoji: "👍", n: 1 }) })
        .waitFor();
      await line(other, "Let us meet on Saturday")
        .getByRole("button", { name: t("chat.react", { emoji: "👍", n: 1 }), pressed: true })
        .waitFor();
      await other.close();
      await screenshot(taras.page, `chat-${lang}`);

      // Olena opens a room for admins only: Taras does not see it.
      await page.goto(`${city.url}/communities/talk-${lang}`);
      const open = page.getByRole("form", { name: t("chat.new_room") });
      await open.getByLabel(t("rooms.slug")).fill("council");
      await open.getByLabel(t("rooms.name")).fill("Council");
      await open
        .getByLabel(t("chat.audience"))
        .selectOption({ label: t("chat.from_role", { role: t("dao.role.admin") }) });
      await open.getByRole("button", { name: t("rooms.create") }).click();
      const rooms = page.getByRole("list", { name: t("chat.rooms") });
      await rooms.getByRole("link", { name: "Council" }).waitFor();
      await taras.page.goto(`${city.url}/communities/talk-${lang}`);
      const hisRooms = taras.page.getByRole("list", { name: taras.t("chat.rooms") });
      await hisRooms.getByRole("link", { name: "General" }).waitFor();
      assert.equal(await hisRooms.getByRole("link", { name: "Council" }).count(), 0);
      await hisRooms.getByRole("link", { name: "General" }).click();
      await arrived(taras.page, /\/messages\/rm_/);
      await taras.page.getByRole("status").getByText(taras.t("live.open")).waitFor();

      // Removed from the community, Taras's open room stops at once.
      await page
        .getByRole("button", { name: t("dao.remove_member", { who: `guest-${lang}` }) })
        .click();
      await page
        .getByRole("list", { name: t("dao.members") })
        .getByText(`guest-${lang}`)
        .waitFor({ state: "detached" });
      await taras.page.getByText(taras.t("chat.denied")).waitFor();
      const general = await page.request.get(`${city.url}/api/messaging/daos/talk-${lang}/rooms`);
      const room = (await general.json()).items.find((r) => r.slug === "general");
      const after = await page.request.post(`${city.url}/api/messaging/rooms/${room.id}/messages`, {
        data: { body: "after you left" },
        headers: { origin: city.url },
      });
      assert.equal(after.status(), 201, await after.text());
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(
        await line(taras.page, "after you left").count(),
        0,
        "a removed member still receives",
      );

      assert.deepEqual([...olena.errors, ...taras.errors], [], "no script errors");
      for (const who of [olena, taras]) await who.context.close();
    });

    test("a direct conversation is started from the messenger and found by search", async () => {
      const ada = await person(browser, { lang });
      await register(city, ada, `ada-${lang}`);
      const bo = await person(browser, { lang });
      await register(city, bo, `bo-${lang}`);
      const { page, t } = ada;
      await page.getByRole("link", { name: t("nav.messages") }).click();
      await arrived(page, /\/messages$/);
      await page.getByRole("heading", { name: t("chat.title") }).waitFor();
      const start = page.getByRole("form", { name: t("chat.new_direct") });
      await start.getByLabel(t("chat.username")).fill(`bo-${lang}`);
      await start.getByRole("button", { name: t("chat.start") }).click();
      await arrived(page, /\/messages\/rm_/);
      await page.getByRole("status").getByText(t("live.open")).waitFor();
      await page
        .getByRole("textbox", { name: t("room.message"), exact: true })
        .fill(`secret harbour ${lang}`);
      await page.getByRole("button", { name: t("room.send") }).click();
      await line(page, `secret harbour ${lang}`).waitFor();

      // Bo sees it as unread in his list, and finds it by a word.
      await bo.page.goto(`${city.url}/messages`);
      const list = bo.page.getByRole("list", { name: bo.t("chat.conversations") });
      await list.getByText(bo.t("chat.unread", { n: 1 })).waitFor();
      await expectNoAccessibilityProblems(bo.page, "messenger");
      await bo.page.getByRole("searchbox").fill("harbour");
      await bo.page.getByRole("button", { name: bo.t("chat.search") }).click();
      await bo.page
        .getByRole("list", { name: bo.t("chat.results") })
        .getByText(`secret harbour ${lang}`)
        .waitFor();
      for (const who of [ada, bo]) await who.context.close();
    });

    test("a group is started, grows, and is left", async () => {
      const [ida, ben, cyd] = [
        await person(browser, { lang }),
        await person(browser, { lang }),
        await person(browser, { lang }),
      ];
      await register(city, ida, `ida-${lang}`);
      await register(city, ben, `ben-${lang}`);
      await register(city, cyd, `cyd-${lang}`);
      const { page, t } = ida;
      await page.goto(`${city.url}/messages`);
      const start = page.getByRole("form", { name: t("chat.new_group") });
      await start.getByLabel(t("chat.group_title")).fill(`Trip ${lang}`);
      await start.getByLabel(t("chat.group_people")).fill(`ben-${lang}`);
      await start.getByRole("button", { name: t("chat.start") }).click();
      await arrived(page, /\/messages\/rm_/);
      await page.getByRole("heading", { name: `Trip ${lang}` }).waitFor();
      const people = page.getByRole("list", { name: t("chat.people") });
      await people.getByText(`ben-${lang}`).waitFor();
      const add = page.getByRole("form", { name: t("chat.add_person") });
      await add.getByLabel(t("chat.username")).fill(`cyd-${lang}`);
      await add.getByRole("button", { name: t("chat.add_person") }).click();
      await people.getByText(`cyd-${lang}`).waitFor();
      await expectNoAccessibilityProblems(page, "group");

      // Cyd finds it among their conversations; Ben, who may not add anyone, leaves.
      await cyd.page.goto(`${city.url}/messages`);
      await cyd.page
        .getByRole("list", { name: cyd.t("chat.conversations") })
        .getByRole("link", { name: `Trip ${lang}` })
        .waitFor();
      await ben.page.goto(page.url());
      await ben.page
        .getByRole("list", { name: ben.t("chat.people") })
        .getByText(`cyd-${lang}`)
        .waitFor();
      assert.equal(await ben.page.getByRole("form", { name: ben.t("chat.add_person") }).count(), 0);
      await ben.page.getByRole("button", { name: ben.t("chat.leave") }).click();
      await arrived(ben.page, /\/messages$/);
      const list = ben.page.getByRole("list", { name: ben.t("chat.conversations") });
      await list
        .or(ben.page.getByText(ben.t("chat.empty")))
        .first()
        .waitFor();
      assert.equal(await ben.page.getByRole("link", { name: `Trip ${lang}` }).count(), 0);
      for (const who of [ida, ben, cyd]) await who.context.close();
    });
  });
}
