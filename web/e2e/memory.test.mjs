// A community's knowledge, in each language: a member adds a document, it
// becomes searchable, a question in other words finds it, and its author
// removes it; facts replace each other and keep their history, and link
// into a graph; a person keeps facts of their own, sees what memory holds
// of theirs, downloads it and erases it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  arrived,
  expectNoAccessibilityProblems,
  launch,
  person,
  register,
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

const documents = {
  en: {
    title: "Assembly decisions",
    body: "# Budget\n\nAt the March assembly we voted to spend the remaining 1 200 hryvnias on seedlings for the shared garden.",
    question: "what did we decide about the money?",
  },
  uk: {
    title: "Рішення зборів",
    body: "# Бюджет\n\nНа березневих зборах ми проголосували витратити решту бюджету, 1 200 гривень, на розсаду для спільного саду.",
    question: "що ми вирішили щодо грошей?",
  },
};

// A note for the community's General room, which a search kept to that
// room finds alone.
const roomNotes = {
  en: { title: "Watering rota", body: "Olena waters the seedlings on Mondays." },
  uk: { title: "Графік поливу", body: "Олена поливає розсаду по понеділках." },
};

const facts = {
  en: {
    subject: "Garden budget",
    predicate: "is",
    old: "1 200 hryvnias",
    now: "1 500 hryvnias",
    who: "Olena",
    role: "coordinates",
    own: ["I", "am allergic to", "peanuts"],
  },
  uk: {
    subject: "Бюджет саду",
    predicate: "становить",
    old: "1 200 гривень",
    now: "1 500 гривень",
    who: "Олена",
    role: "координує",
    own: ["Я", "маю алергію на", "арахіс"],
  },
};

/** Fills the "remember a fact" form of `scope` (a page or a section). */
async function rememberFact(scope, t, subject, predicate, object) {
  const form = scope.getByRole("form", { name: t("facts.add") });
  await form.getByLabel(t("facts.subject"), { exact: true }).fill(subject);
  await form.getByLabel(t("facts.predicate"), { exact: true }).fill(predicate);
  await form.getByLabel(t("facts.object"), { exact: true }).fill(object);
  await form.getByRole("button", { name: t("facts.add") }).click();
}

for (const lang of ["en", "uk"]) {
  describe(`in ${lang}`, () => {
    test("a newer fact replaces the one before, which stays in its history; what is linked shows", async () => {
      const f = facts[lang];
      const olena = await person(browser, { lang });
      await register(city, olena, `facts-${lang}`);
      const { page, t } = olena;
      const made = await page.request.post(`${city.url}/api/microdao/daos`, {
        data: { slug: `facts-${lang}`, name: `Facts ${lang}` },
        headers: { origin: city.url },
      });
      assert.equal(made.status(), 201, await made.text());
      await page.goto(`${city.url}/communities/facts-${lang}`);
      await page.getByRole("heading", { name: t("facts.title"), exact: true }).waitFor();
      const holding = page.getByRole("list", { name: t("facts.holding") });

      await rememberFact(page, t, f.subject, f.predicate, f.old);
      await holding.getByText(`${f.subject} ${f.predicate} ${f.old}`).waitFor();
      await rememberFact(page, t, f.subject, f.predicate, f.now);
      const current = `${f.subject} ${f.predicate} ${f.now}`;
      await holding.getByText(current).waitFor();
      await holding
        .getByText(`${f.subject} ${f.predicate} ${f.old}`)
        .waitFor({ state: "detached" });
      await page.getByRole("button", { name: t("facts.history_of", { fact: current }) }).click();
      const history = page.getByRole("list", { name: t("facts.history_of", { fact: current }) });
      await history.getByText(`${f.subject} ${f.predicate} ${f.old}`).waitFor();
      await history.getByText(current).waitFor();
      await expectNoAccessibilityProblems(page, "facts");

      await rememberFact(page, t, f.who, f.role, f.subject);
      const around = page.getByRole("form", { name: t("facts.around") });
      await around.getByLabel(t("facts.around")).fill(f.who);
      await around.getByRole("button", { name: t("facts.show") }).click();
      const linked = page.getByRole("list", { name: t("facts.linked") });
      await linked.getByText(`${f.who} ${f.role} ${f.subject}`).waitFor();
      await linked.getByText(current).waitFor();

      // Forgetting the value that holds brings back the one before.
      await page.getByRole("button", { name: t("facts.forget_named", { fact: current }) }).click();
      await holding.getByText(`${f.subject} ${f.predicate} ${f.old}`).waitFor();
    });

    test("a document is added, found by a question in other words, and removed", async () => {
      const { title, body, question } = documents[lang];
      const olena = await person(browser, { lang });
      await register(city, olena, `keeper-${lang}`);
      const { page, t } = olena;
      await page.goto(`${city.url}/communities`);
      const form = page.locator("form").filter({ hasText: t("dao.new") });
      await form.getByLabel(t("rooms.slug")).fill(`garden-${lang}`);
      await form.getByLabel(t("rooms.name")).fill(`Garden ${lang}`);
      await form.getByRole("button", { name: t("dao.create") }).click();
      await arrived(page, new RegExp(`/communities/garden-${lang}$`));
      await page.getByRole("heading", { name: t("memory.title") }).waitFor();

      const adding = page.locator("form").filter({ hasText: t("memory.add") });
      await adding.getByLabel(t("memory.doc_title")).fill(title);
      await adding.getByLabel(t("memory.body")).fill(body);
      await adding.getByRole("button", { name: t("memory.add") }).click();
      const listed = page.getByRole("list", { name: t("memory.documents") });
      await listed.getByText(title).waitFor();
      await listed.getByText(t("memory.indexed", { n: 1 }), { exact: false }).waitFor();
      await expectNoAccessibilityProblems(page, "knowledge");

      const asking = page.getByRole("form", { name: t("memory.ask") });
      await asking.getByLabel(t("memory.ask")).fill(question);
      await asking.getByRole("button", { name: t("memory.search") }).click();
      const found = page.getByRole("list", { name: t("memory.hits") });
      await found.getByText(`${title} › ${lang === "en" ? "Budget" : "Бюджет"}`).waitFor();
      await found.getByText("1 200").waitFor();

      // A note for a room; kept to that room, the same question finds it
      // and not the decision, which is the whole community's.
      const note = roomNotes[lang];
      await adding.getByLabel(t("memory.doc_title")).fill(note.title);
      await adding.getByLabel(t("memory.body")).fill(note.body);
      await adding.getByLabel(t("memory.room")).selectOption({ index: 1 });
      await adding.getByRole("button", { name: t("memory.add") }).click();
      await listed.getByText(note.title).waitFor();
      await listed
        .getByText(t("memory.indexed", { n: 1 }), { exact: false })
        .nth(1)
        .waitFor();
      await asking.getByLabel(t("memory.room")).selectOption({ index: 1 });
      await asking.getByRole("button", { name: t("memory.search") }).click();
      await found.getByText(note.title).waitFor();
      assert.equal(await found.getByText(title).count(), 0, "kept to the room");
      await page
        .getByRole("button", { name: t("memory.remove_named", { title: note.title }) })
        .click();
      await listed.getByText(note.title).waitFor({ state: "detached" });

      await page.getByRole("button", { name: t("memory.remove_named", { title }) }).click();
      await page.getByText(t("memory.empty")).waitFor();
    });

    test("a person downloads and erases what memory holds of theirs", async () => {
      const { title, body } = documents[lang];
      const taras = await person(browser, { lang });
      await register(city, taras, `writer-${lang}`);
      const { page, t } = taras;
      const made = await page.request.post(`${city.url}/api/microdao/daos`, {
        data: { slug: `notes-${lang}`, name: `Notes ${lang}` },
        headers: { origin: city.url },
      });
      assert.equal(made.status(), 201, await made.text());
      const added = await page.request.post(`${city.url}/api/memory/daos/notes-${lang}/documents`, {
        data: { title, format: "markdown", body },
        headers: { origin: city.url },
      });
      assert.equal(added.status(), 201, await added.text());

      await page.goto(`${city.url}/settings/memory`);
      await page.getByRole("heading", { name: t("memory.mine") }).waitFor();
      await page
        .getByRole("list", { name: t("memory.mine") })
        .getByText(title)
        .waitFor();
      const note = page.getByRole("form", { name: t("memory.add_own") });
      await note.getByLabel(t("memory.doc_title")).fill(`${title} (mine)`);
      await note.getByLabel(t("memory.body")).fill(body);
      await note.getByRole("button", { name: t("memory.add_own") }).click();
      await page
        .getByRole("list", { name: t("memory.mine") })
        .getByText(`${title} (mine)`)
        .waitFor();
      const [subject, predicate, object] = facts[lang].own;
      await rememberFact(page, t, subject, predicate, object);
      await page
        .getByRole("list", { name: t("facts.holding") })
        .getByText(`${subject} ${predicate} ${object}`)
        .waitFor();
      await expectNoAccessibilityProblems(page, "my memory");
      const downloading = page.waitForEvent("download");
      await page.getByRole("button", { name: t("memory.download") }).click();
      const file = await (await downloading).path();
      const exported = JSON.parse(readFileSync(file, "utf8"));
      const titles = exported.documents.map((d) => d.title).sort();
      assert.deepEqual(titles, [title, `${title} (mine)`]);
      assert.equal(exported.documents[0].body, body);
      assert.equal(exported.facts[0].object, object);
      assert.equal(exported.facts[0].scope, exported.subject);

      page.once("dialog", (dialog) => dialog.accept());
      await page.getByRole("button", { name: t("memory.erase") }).click();
      await page.getByText(t("memory.mine_empty")).waitFor();
      const left = await (await page.request.get(`${city.url}/api/memory/me/export`)).json();
      assert.deepEqual(left.documents, []);
      assert.deepEqual(left.facts, []);
    });
  });
}
