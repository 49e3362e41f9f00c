// taxifare console: the parts of a page that update while runs execute, and the log follower.
// No library, nothing fetched but the console's own URLs. The server renders every part; this
// only fetches it again and swaps it in, keeping what the user ticked or opened.
"use strict";

(function () {
  // An element with data-poll="URL" is refreshed from URL every data-every ms while data-live is
  // not "0"; the answer's X-Taxifare-Live header says whether there is more to come.
  function keepState(el, swap) {
    const ticked = new Set([...el.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value));
    const opened = new Set([...el.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
    const closed = new Set([...el.querySelectorAll("details:not([open])[data-key]")].map((d) => d.dataset.key));
    swap();
    el.querySelectorAll("input[type=checkbox]").forEach((i) => { i.checked = ticked.has(i.value); });
    el.querySelectorAll("details[data-key]").forEach((d) => {
      if (opened.has(d.dataset.key)) d.open = true;
      if (closed.has(d.dataset.key)) d.open = false;
    });
  }

  function poll(el) {
    let last = null;
    const every = Number(el.dataset.every) || 2000;
    async function tick() {
      try {
        const answer = await fetch(el.dataset.poll, { cache: "no-store" });
        if (answer.ok) {
          const html = await answer.text();
          if (html !== last) {
            keepState(el, () => { el.innerHTML = html; });
            last = html;
            el.dispatchEvent(new CustomEvent("console:swapped", { bubbles: true }));
          }
          if (answer.headers.get("X-Taxifare-Live") === "0") {
            el.dataset.live = "0";
            document.dispatchEvent(new CustomEvent("console:done"));
            return;
          }
        }
      } catch (e) {
        // the console was stopped or restarted: try again at the next tick
      }
      setTimeout(tick, every);
    }
    if (el.dataset.live !== "0") setTimeout(tick, every);
  }

  // The log of a run or of one of its tasks, followed while the run executes.
  function follow(box) {
    const pre = box.querySelector("pre");
    const select = box.querySelector("select");
    const note = box.querySelector(".follow");
    let offset = -65536;
    let timer = null;
    let generation = 0;
    async function tick() {
      const mine = generation;
      let again = 1500;
      try {
        const query = new URLSearchParams({ task: select.value, offset: String(offset) });
        const answer = await fetch(box.dataset.url + "?" + query, { cache: "no-store" });
        if (mine !== generation) return;
        const data = await answer.json();
        if (answer.ok) {
          const bottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
          if (data.missing) pre.textContent = "(no log yet)";
          else if (data.text) {
            if (pre.textContent === "(no log yet)") pre.textContent = "";
            pre.append(data.text);
          }
          if (pre.textContent.length > 2000000) pre.textContent = pre.textContent.slice(-1000000);
          if (bottom) pre.scrollTop = pre.scrollHeight;
          offset = data.offset;
          note.textContent = data.live ? "following" : "";
          if (data.more) again = 50;
          else if (!data.live) return;
        }
      } catch (e) {
        // try again
      }
      timer = setTimeout(tick, again);
    }
    select.addEventListener("change", () => {
      generation += 1;
      clearTimeout(timer);
      offset = -65536;
      pre.textContent = "";
      tick();
    });
    document.addEventListener("console:done", () => { clearTimeout(timer); timer = setTimeout(tick, 300); });
    tick();
  }

  // Compare: the button works once two runs are ticked.
  function compareButton() {
    const form = document.getElementById("compare-form");
    if (!form) return;
    const button = document.getElementById("compare-button");
    const update = () => { button.disabled = form.querySelectorAll("input[name=run]:checked").length < 2; };
    form.addEventListener("change", update);
    form.addEventListener("console:swapped", update);
    update();
  }

  // A node of the DAG opens its task's section.
  function dagLinks() {
    document.addEventListener("click", (event) => {
      const node = event.target.closest && event.target.closest("svg g.task[data-task]");
      if (!node) return;
      const section = document.getElementById("task-" + node.dataset.task);
      if (section) section.scrollIntoView({ behavior: "smooth", block: "start" });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("#logs").forEach(follow);
    compareButton();
    dagLinks();
  });
})();
