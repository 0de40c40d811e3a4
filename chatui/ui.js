() => {
  // Browser-side behaviour that Gradio 6.31 has no option for. ui.py loads this file as the
  // Blocks' `js` (run once when the page loads); nothing here talks to the server.
  const NARROW = "(max-width: 767px)";

  // 1. Phone: start with the sidebar closed. gr.Sidebar(open=…) is decided on the server,
  //    which does not know the screen width; on a phone an open sidebar covers the chat.
  //    Clicking Gradio's own toggle keeps its state consistent.
  const closeSidebarOnPhone = () => {
    if (!window.matchMedia(NARROW).matches) return true;
    const open = document.querySelector(".sidebar.open .toggle-button");
    if (!open) return !!document.querySelector(".sidebar");
    open.click();
    return true;
  };

  // 2. Labels for Gradio's icon-only buttons that come without one (the textbox's send and
  //    stop buttons): a screen reader would read nothing, a test cannot tell them apart.
  const LABELS = [
    ["#input .submit-button", "Send"],
    ["#input .stop-button", "Stop"],
  ];
  const labelIconButtons = () => {
    for (const [selector, label] of LABELS) {
      for (const b of document.querySelectorAll(selector)) {
        if (!b.getAttribute("aria-label")) b.setAttribute("aria-label", label);
      }
    }
  };

  // 3. The thumbs-down reason box opens under the chat: bring it on screen when it appears
  //    (on a phone it would open below the fold and go unnoticed).
  let reasonShown = false;
  const revealReasonBox = () => {
    const box = document.getElementById("reason-box");
    const shown = !!box && box.offsetParent !== null && box.getBoundingClientRect().height > 0;
    if (shown && !reasonShown) box.scrollIntoView({ block: "nearest", behavior: "instant" });
    reasonShown = shown;
  };

  let queued = false;
  const tick = () => {
    queued = false;
    labelIconButtons();
    revealReasonBox();
  };
  new MutationObserver(() => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(tick);
    }
  }).observe(document.body, { childList: true, subtree: true, attributes: true,
                              attributeFilter: ["class", "style"] });

  // The sidebar is rendered after this runs: retry for a few seconds until it exists.
  let tries = 0;
  const timer = setInterval(() => {
    if (closeSidebarOnPhone() || ++tries > 50) clearInterval(timer);
  }, 100);

  // 4. On a phone, picking a conversation or starting a new chat closes the sidebar, which
  //    otherwise keeps covering the chat the user just asked for.
  document.addEventListener("click", (e) => {
    if (!window.matchMedia(NARROW).matches) return;
    if (e.target.closest("#conversations label, #new-chat")) {
      setTimeout(() => document.querySelector(".sidebar.open .toggle-button")?.click(), 0);
    }
  });

  // 5. In the chat's edit box, Enter saves and resends (Shift+Enter: a new line), as in
  //    the main input. Gradio's edit box is a plain textarea with Submit/Cancel buttons.
  document.addEventListener("keydown", (e) => {
    const box = e.target;
    if (e.key !== "Enter" || e.shiftKey || e.isComposing) return;
    if (!box.matches?.("#chatbot textarea.edit-textarea")) return;
    // Its buttons are not inside the message row but in the panel right after it.
    const row = box.closest(".message-row");
    const panel = row?.nextElementSibling;
    const submit = panel?.matches(".message-buttons")
      ? panel.querySelector('button[aria-label="Submit"]')
      : document.querySelector('#chatbot button[aria-label="Submit"]');
    if (!submit) return;
    e.preventDefault();
    submit.click();
  }, true);

  // 7. (issue 11) The address names the conversation on screen: /?c=<id>, or /?share=<id>
  //    for a shared snapshot. ui.py calls show() when the open conversation changes (a
  //    chat starts, one is opened or continued); Back/Forward and search hits press the
  //    hidden #url-nav button, whose event reads location.search and opens what it names.
  let lastNav = 0;
  const openAddress = () => {
    lastNav = Date.now();
    document.querySelector("#url-nav")?.click();
  };
  window.chatuiUrl = {
    show(conv) {
      const u = new URL(window.location.href);
      if (!conv || typeof conv !== "string") {
        // No chat on screen any more (deleted, undone, new chat): the address must not keep
        // naming it. Replace, not push: there is nothing to go Back to. Not right after a
        // Back/Forward: the emptied list of the address before may arrive after the browser
        // already shows the next one, whose ?c= must stay (it is what gets opened).
        if (u.searchParams.has("c") && Date.now() - lastNav > 3000) {
          u.searchParams.delete("c");
          window.history.replaceState({}, "", u);
        }
        return;
      }
      if (u.searchParams.get("c") === conv && !u.searchParams.has("share")) return;
      u.searchParams.delete("share");
      u.searchParams.set("c", conv);
      window.history.pushState({ c: conv }, "", u);
    },
    shareLink(id) {
      if (!id || typeof id !== "string" || id.includes("/")) return id;
      const u = new URL(window.location.href);
      u.search = "";
      u.hash = "";
      u.searchParams.set("share", id);
      return u.href;
    },
  };
  window.addEventListener("popstate", openAddress);
  const clearAddress = (replace) => {
    const u = new URL(window.location.href);
    if (!u.search) return;
    u.search = "";
    window.history[replace ? "replaceState" : "pushState"]({}, "", u);
  };
  document.addEventListener("click", (e) => {
    const hit = e.target.closest?.("a.chatui-search-hit");
    if (hit) {
      e.preventDefault();
      window.history.pushState({}, "", new URL(hit.getAttribute("href"), window.location.href));
      openAddress();
    } else if (e.target.closest?.("#chatbot button.example")) {
      // An example prompt of the empty chat: send it as if typed (the same validation and
      // send path as the input box).
      const text = e.target.closest("#chatbot button.example")
        .querySelector(".example-text")?.innerText;
      const box = document.querySelector("#input textarea");
      if (!text || !box) return;
      box.value = text;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      setTimeout(() => document.querySelector("#input .submit-button")?.click(), 50);
    } else if (e.target.closest?.("#new-chat")) {
      clearAddress(false);
    } else if (e.target.closest?.("#confirm-delete-button")) {
      clearAddress(true);                   // the deleted chat's address would say "not found"
    }
  });

  // 8. (issue 11) Date headings of the chat list: when its labels change (a chat added,
  //    renamed, deleted), ask the server for the headings' <style> (sidebar.py list_groups).
  let groupsTimer = null;
  const watchList = () => {
    const list = document.querySelector("#conversations");
    if (!list) return false;
    new MutationObserver(() => {
      clearTimeout(groupsTimer);
      groupsTimer = setTimeout(() => document.querySelector("#conv-groups-refresh")?.click(), 150);
    }).observe(list, { childList: true, subtree: true, characterData: true });
    document.querySelector("#conv-groups-refresh")?.click();
    return true;
  };
  let listTries = 0;
  const listTimer = setInterval(() => {
    if (watchList() || ++listTries > 50) clearInterval(listTimer);
  }, 100);

  // 9. (issue 11) Rename and Delete on each chat of the list: a small toolbar beside the
  //    chat under the pointer (or the open one). It lives outside Gradio's list (fixed, on
  //    <body>) and works through the sidebar's own controls: it opens that chat, then the
  //    "Rename / delete" section, so Delete still asks for confirmation there.
  const bar = document.createElement("div");
  bar.id = "chat-item-actions";
  bar.innerHTML = '<button type="button" data-act="rename">Rename</button>' +
                  '<button type="button" data-act="delete">Delete</button>';
  bar.hidden = true;
  document.body.appendChild(bar);
  let barFor = null;
  const placeBar = (label) => {
    const list = label?.closest("#conversations .wrap");
    // On a phone a tap opens the chat and closes the sidebar: the section is the way there.
    if (!label || !list || label.offsetParent === null || window.matchMedia(NARROW).matches) {
      bar.hidden = true;
      barFor = null;
      return;
    }
    const r = label.getBoundingClientRect();
    const box = list.getBoundingClientRect();
    if (r.bottom < box.top || r.top > box.bottom) { bar.hidden = true; return; }
    bar.hidden = false;
    barFor = label;
    bar.style.top = `${Math.round(r.bottom - bar.offsetHeight - 2)}px`;
    bar.style.left = `${Math.round(r.right - bar.offsetWidth - 4)}px`;
  };
  document.addEventListener("mouseover", (e) => {
    const label = e.target.closest?.("#conversations label");
    if (label) placeBar(label);
    else if (!e.target.closest?.("#chat-item-actions, #conversations")) bar.hidden = true;
  });
  const openSection = () => {
    const section = document.querySelector("#rename-delete");
    const header = section?.querySelector("button");
    if (section && header && !section.querySelector("#new-title")?.offsetParent) header.click();
  };
  bar.addEventListener("click", (e) => {
    const act = e.target.closest("button")?.dataset.act;
    const label = barFor;
    if (!act || !label) return;
    if (!label.querySelector("input")?.checked) label.click();       // open that chat
    openSection();
    setTimeout(() => {
      if (act === "rename") {
        const box = document.querySelector("#new-title textarea, #new-title input");
        if (!box) return;
        box.value = label.innerText.trim();
        box.dispatchEvent(new Event("input", { bubbles: true }));
        box.focus();
        box.select();
      } else {
        document.querySelector("#delete-conversation")?.click();      // asks to confirm
      }
    }, 300);
  });
  window.addEventListener("scroll", () => barFor && placeBar(barFor), true);

  // 6. Each answer starts with a muted line naming its model (render.py model_line); the
  //    chat's Copy buttons copy message sources, so keep that line out of the clipboard.
  //    Copy conversation copies "assistant: <small>…</small>" as a turn of its own: drop it.
  const MODEL_LINE = /^(?:assistant: )?<small>[^<\n]*<\/small>\n*/gm;
  if (navigator.clipboard?.writeText) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = (text) => write(String(text).replace(MODEL_LINE, ""));
  }

  // 10. "‹ Previous  Answer 1 / 2  Next ›": no Previous at the first version, no Next at the
  //     last (the labels are what the server sends; the buttons follow them).
  const ends = () => {
    for (const kind of ["answer", "question"]) {
      const m = document.querySelector(`#${kind}-position`)?.innerText.match(/(\d+)\s*\/\s*(\d+)/);
      const prev = document.querySelector(`#prev-${kind}`);
      const next = document.querySelector(`#next-${kind}`);
      if (!m || !prev || !next) continue;
      prev.disabled = m[1] === "1";
      next.disabled = m[1] === m[2];
    }
  };

  // 11. The browser tab names the open chat, as HuggingChat's does ("Title - Chat UI"); a
  //     new chat, a shared page or no chat gives the app's own title back.
  const appTitle = document.title;
  const nameTab = () => {
    const open = document.querySelector("#conversations label:has(input:checked)");
    const title = open?.innerText.trim();
    const wanted = title ? `${title} - ${appTitle}` : appTitle;
    if (document.title !== wanted) document.title = wanted;
  };

  let framePending = false;                 // once per frame, however fast tokens arrive
  new MutationObserver(() => {
    if (framePending) return;
    framePending = true;
    requestAnimationFrame(() => { framePending = false; ends(); nameTab(); });
  }).observe(document.body, { childList: true, subtree: true, characterData: true,
                              attributes: true, attributeFilter: ["class"] });

  // 12. Keyboard: Enter on a focused chat of the list opens it (a radio takes only Space).
  document.addEventListener("keydown", (e) => {
    const radio = e.target.closest?.("#conversations input[type=radio]");
    if (e.key === "Enter" && radio && !e.isComposing) {
      e.preventDefault();
      radio.click();
    }
  });
}
