/* Leadloop sales UI: drag-and-drop on the pipeline board, column counts, the toast, and
 * small comforts. Every action also works without this file (plain forms and links);
 * htmx (vendored) does the partial updates. */
(function () {
  "use strict";

  // Styles that only make sense with this script (the phone's filter toggle) key on it.
  document.documentElement.classList.add("js");

  var lang = document.documentElement.lang || "en";
  var numberFormat;
  try {
    numberFormat = new Intl.NumberFormat(lang);
  } catch (e) {
    numberFormat = new Intl.NumberFormat();
  }

  /* --- Toast and screen-reader announcements ----------------------------------------- */

  var toastTimer = null;

  function toast(text, level) {
    var box = document.getElementById("toast");
    if (!box || !text) return;
    box.textContent = text;
    box.className = "toast toast-" + (level || "success");
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () {
      box.hidden = true;
    }, level === "error" ? 7000 : 3500);
  }

  function announce(text, level) {
    var live = document.getElementById("live");
    if (live) {
      live.textContent = "";
      var span = document.createElement("span");
      span.dataset.level = level || "success";
      span.textContent = text;
      live.appendChild(span);
    }
    toast(text, level);
  }

  /* The server answers a move with the card and, out of band, the message for #live. */
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "live") {
      var span = target.querySelector("[data-level]");
      toast(target.textContent.trim(), span ? span.dataset.level : "success");
    }
  });

  /* --- Board: counts and card placement ----------------------------------------------- */

  function column(slug) {
    return document.querySelector('.column[data-stage="' + slug + '"]');
  }

  function setCount(slug, count) {
    var badge = document.getElementById("count-" + slug);
    if (!badge || isNaN(count)) return;
    count = Math.max(0, count);
    badge.dataset.count = String(count);
    badge.textContent = numberFormat.format(count);
  }

  function bump(slug, delta) {
    var badge = document.getElementById("count-" + slug);
    if (badge) setCount(slug, parseInt(badge.dataset.count || "0", 10) + delta);
  }

  /* Before a move is sent, remember where the card stood (its stage per the server). */
  var stageBefore = new Map();

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form.move")) return;
    var card = form.closest(".card");
    if (card) {
      stageBefore.set(card.id, {
        stage: card.dataset.stage,
        focused: card.contains(document.activeElement),
      });
      card.classList.add("is-saving");
    }
  });

  /* After the swap the card carries its true stage: put it in that column (the keyboard
   * path moves it there; a refused drag goes back), fix the counts and keep focus. */
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || !target.id || !/^lead-\d+$/.test(target.id)) return;
    var card = document.getElementById(target.id) || target;
    var before = stageBefore.get(card.id) || {};
    stageBefore.delete(card.id);
    var now = card.dataset.stage;
    var home = column(now);
    if (home) {
      var list = home.querySelector(".cards");
      if (card.parentElement !== list) list.prepend(card);
    }
    if (before.stage && before.stage !== now) {
      bump(before.stage, -1);
      bump(now, +1);
      card.classList.add("just-moved");
      setTimeout(function () {
        card.classList.remove("just-moved");
      }, 1200);
    }
    // Keyboard users keep their place: focus follows the card to its new column.
    if (before.focused) {
      var select = card.querySelector("select");
      if (select) select.focus();
    }
  });

  /* A failed request (lost access: 404, server error): say so and show the truth. */
  document.addEventListener("htmx:responseError", function (event) {
    var form = event.detail.elt;
    if (form && form.matches && form.matches("form.move")) {
      var board = document.getElementById("board");
      announce((board && board.dataset.moveError) || "Error", "error");
      setTimeout(function () {
        window.location.reload();
      }, 1200);
    }
  });

  /* --- Board: drag and drop --------------------------------------------------------- */

  var dragging = null;

  function columnAt(node) {
    return node && node.closest ? node.closest(".column") : null;
  }

  document.addEventListener("dragstart", function (event) {
    var card = event.target.closest && event.target.closest(".card[draggable]");
    if (!card) return;
    dragging = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.lead);
    card.classList.add("is-dragging");
    document.body.classList.add("is-dragging");
  });

  document.addEventListener("dragend", function () {
    if (dragging) dragging.classList.remove("is-dragging");
    dragging = null;
    document.body.classList.remove("is-dragging");
    document.querySelectorAll(".column.is-over").forEach(function (el) {
      el.classList.remove("is-over");
    });
  });

  document.addEventListener("dragover", function (event) {
    var target = columnAt(event.target);
    if (!dragging || !target) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    document.querySelectorAll(".column.is-over").forEach(function (el) {
      if (el !== target) el.classList.remove("is-over");
    });
    target.classList.add("is-over");
  });

  document.addEventListener("drop", function (event) {
    var target = columnAt(event.target);
    var card = dragging;
    if (!card || !target) return;
    event.preventDefault();
    target.classList.remove("is-over");
    if (target.dataset.stage === card.dataset.stage) return;
    var form = card.querySelector("form.move");
    var select = form && form.querySelector("select[name=stage]");
    if (!select) return;
    select.value = target.dataset.stage;
    // Show the move at once; the server's answer replaces the card where it now stands
    // (or sends it back if the move was refused).
    target.querySelector(".cards").prepend(card);
    if (form.requestSubmit) form.requestSubmit();
    else htmx.trigger(form, "submit");
  });

  /* --- Load more: a card moved meanwhile can come twice; keep the first. ------------- */

  document.addEventListener("htmx:afterSettle", function (event) {
    var list = event.detail.target && event.detail.target.closest
      ? event.detail.target.closest(".cards")
      : null;
    var lists = list ? [list] : [];
    if (!list && event.detail.elt && event.detail.elt.closest) {
      var parent = event.detail.elt.closest(".cards");
      if (parent) lists.push(parent);
    }
    lists.forEach(function (cards) {
      var seen = new Set();
      cards.querySelectorAll(".card").forEach(function (card) {
        if (seen.has(card.id)) card.remove();
        else seen.add(card.id);
      });
    });
  });

  /* --- Live refresh ------------------------------------------------------------------
   * The board, the list and a lead's page each hold a hidden `.live-poll` element that
   * htmx polls (its hx-trigger). The server answers 204 while nothing changed; otherwise
   * the board's and the list's answer replaces the element, carrying the next cursor,
   * the column counts and the cards (rows) of leads changed since, which are applied
   * here to what the page shows; new leads only update the "n new leads" notice, so
   * nothing jumps under the pointer. A lead's page gets its parts swapped by htmx. */

  function highlight(node) {
    node.classList.add("live-updated");
    setTimeout(function () {
      node.classList.remove("live-updated");
    }, 1600);
  }

  /* The control that had focus in a card or row replaced by a fresh copy keeps it. */
  function keepFocus(old, fresh) {
    var active = document.activeElement;
    if (!active || !old.contains(active)) return;
    var same = active.id ? fresh.querySelector("#" + CSS.escape(active.id)) : null;
    same = same || fresh.querySelector(active.tagName.toLowerCase());
    if (same) same.focus();
  }

  function applyBoard(poll) {
    poll.querySelectorAll("data.live-count").forEach(function (item) {
      setCount(item.dataset.stage, parseInt(item.value, 10));
    });
    var template = poll.querySelector("template.live-cards");
    if (!template) return;
    // Oldest first, so that the most recently moved card ends on top of its column.
    var fresh = Array.prototype.slice.call(template.content.querySelectorAll(".card"));
    fresh.reverse().forEach(function (incoming) {
      var card = document.getElementById(incoming.id);
      // A card the board does not show stays unshown (its column's count says it); one
      // being dragged or saved here is left to that move.
      if (!card || card.dataset.stage === incoming.dataset.stage) return;
      if (card.classList.contains("is-dragging") || card.classList.contains("is-saving")) return;
      var home = column(incoming.dataset.stage);
      if (!home) return;
      var node = document.importNode(incoming, true);
      home.querySelector(".cards").prepend(node);
      keepFocus(card, node);
      card.remove();
      htmx.process(node);
      highlight(node);
    });
  }

  function applyList(poll) {
    var template = poll.querySelector("template.live-rows");
    if (!template) return;
    template.content.querySelectorAll("tr[data-lead]").forEach(function (incoming) {
      var row = document.getElementById(incoming.id);
      if (!row || row.innerHTML === incoming.innerHTML) return;
      var node = document.importNode(incoming, true);
      row.after(node);
      keepFocus(row, node);
      row.remove();
      htmx.process(node);
      highlight(node);
    });
  }

  htmx.onLoad(function (elt) {
    if (elt.id === "board-live") applyBoard(elt);
    else if (elt.id === "list-live") applyList(elt);
  });

  function isPoll(elt) {
    return elt && elt.classList && elt.classList.contains("live-poll");
  }

  /* A hidden tab does not ask; it asks at once when shown again. */
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (isPoll(event.detail.elt) && document.hidden) event.preventDefault();
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    document.querySelectorAll(".live-poll").forEach(function (poll) {
      htmx.trigger(poll, "live-refresh");
    });
  });

  /* An answer that is not the refresh's own (the session ended and the login page came
   * back, or access to the lead was withdrawn) stops the refresh rather than land in the
   * page; a server error is passing, and the next refresh asks again. */
  document.addEventListener("htmx:beforeSwap", function (event) {
    var poll = event.detail.elt;
    if (!isPoll(poll)) return;
    var xhr = event.detail.xhr;
    var ours = xhr && xhr.responseURL && xhr.responseURL.indexOf("/changes/") !== -1;
    if (!ours || (xhr.status >= 400 && xhr.status < 500)) {
      event.detail.shouldSwap = false;
      poll.remove();
    }
  });

  /* --- Lead list: keep the sort control in step with header clicks. ----------------- */

  document.addEventListener("htmx:afterSwap", function (event) {
    var results = document.getElementById("results");
    // A history restore swaps the whole page and names no target.
    var target = event.detail.target;
    if (!results || !target || target.id !== "results") return;
    var form = document.getElementById("lead-filters");
    if (form && form.elements.sort && results.dataset.sort) {
      form.elements.sort.value = results.dataset.sort;
    }
    // Say how many leads match now (the table itself is not read out on every keystroke).
    var count = results.querySelector(".results-count");
    var live = document.getElementById("live");
    if (count && live) live.textContent = count.textContent.replace(/\s+/g, " ").trim();
  });

  /* --- Filters on a phone: the search box, and the rest behind a button. ---------- */

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".filter-toggle");
    if (!button) return;
    var form = button.closest(".filters");
    var open = form.classList.toggle("is-open");
    button.setAttribute("aria-expanded", open ? "true" : "false");
  });

  /* --- Menus: one open at a time; Escape and outside clicks close them. -------------- */

  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary) summary.focus();
    });
  });

  /* Flash messages fade after a while; errors stay. */
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".flash-success, .flash-info").forEach(function (flash) {
      setTimeout(function () {
        flash.classList.add("is-leaving");
      }, 5000);
    });
  });

  window.leadloop = { announce: announce };
})();
