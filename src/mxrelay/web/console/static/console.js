/* mxrelay console: theme toggle, keyboard navigation, and live updates.
 *
 * Live updates: the page subscribes to the relay's event socket (body[data-events], brief frames
 * {Type}: one per kind of event the relay's poller found) and turns them into DOM events
 * "mx:<type>" on <body>; the fragments that can change listen for the events that concern them
 * (hx-trigger="mx:new from:body ...") and re-fetch themselves. Each kind is passed on at most
 * once per gap: at once after a quiet spell, then once more when the gap is over, so the last
 * change always shows. While the events keep coming the gap grows (2 s, 4 s, up to 5 s) and after
 * a quiet spell it is 2 s again: a flood of mail costs the relay a page's re-read every few
 * seconds, not one per message. (htmx's own `throttle:` would not do: a fragment swapped for its
 * new self starts with no throttle, so under a flood it re-reads as fast as the relay answers.)
 * A page in a background tab re-reads nothing until it is shown again.
 * Without the socket (not offered, or a proxy that drops it) the page fires "mx:poll" every
 * body[data-poll] milliseconds instead, while it is visible, and tries the socket again later.
 * There is no other channel: the server renders, htmx swaps.
 */
(function () {
  "use strict";

  var body = document.body;
  var live = document.getElementById("live");
  var pollMs = Math.max(1000, parseInt(body.dataset.poll || "5000", 10));
  var pollTimer = null;
  var socket = null;
  var retryMs = 2000;

  function fire(name, detail) {
    if (window.htmx) {
      window.htmx.trigger(body, name, detail || {});
    } else {
      body.dispatchEvent(new CustomEvent(name, { detail: detail || {} }));
    }
  }

  var GAP_MS = 2000;
  var GAP_MAX_MS = 5000;
  var signals = {};

  function signal(type) {
    var kind = signals[type] || (signals[type] = { timer: null, last: 0, gap: GAP_MS, hidden: false });
    if (document.visibilityState !== "visible") {
      kind.hidden = true; /* passed on when the page is shown again */
      return;
    }
    if (kind.timer !== null) return; /* the trailing re-read is due already */
    var wait = kind.last + kind.gap - Date.now();
    if (wait <= 0) {
      kind.gap = GAP_MS;
      kind.last = Date.now();
      fire("mx:" + type);
      return;
    }
    kind.timer = window.setTimeout(function () {
      kind.timer = null;
      kind.last = Date.now();
      kind.gap = Math.min(kind.gap * 2, GAP_MAX_MS);
      fire("mx:" + type);
    }, wait);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible") return;
    Object.keys(signals).forEach(function (type) {
      if (!signals[type].hidden) return;
      signals[type].hidden = false;
      signal(type);
    });
  });

  function setLive(state, title) {
    if (!live) return;
    live.dataset.state = state;
    live.textContent = state === "events" ? "live" : state === "polling" ? "refreshing" : "offline";
    live.title = title;
  }

  var pollEvery = 0;

  function startPolling(every) {
    if (pollTimer !== null && pollEvery === every) return; /* keep its rhythm across retries */
    stopPolling();
    pollEvery = every;
    pollTimer = window.setInterval(function () {
      if (document.visibilityState === "visible") fire("mx:poll");
    }, every);
  }

  function stopPolling() {
    if (pollTimer !== null) window.clearInterval(pollTimer);
    pollTimer = null;
  }

  function connect() {
    var path = body.dataset.events;
    if (!path || !("WebSocket" in window)) {
      setLive("polling", "Refreshed every " + pollMs / 1000 + " s");
      startPolling(pollMs);
      return;
    }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var opened = false;
    try {
      socket = new WebSocket(scheme + location.host + path);
    } catch (e) {
      socket = null;
    }
    if (!socket) {
      setLive("polling", "Refreshed every " + pollMs / 1000 + " s");
      startPolling(pollMs);
      return;
    }
    socket.addEventListener("open", function () {
      opened = true;
      retryMs = 2000;
      setLive("events", "Updated as the relay reports changes");
      startPolling(pollMs * 6); /* health and retry times change without an event */
    });
    socket.addEventListener("message", function (message) {
      var frame;
      try {
        frame = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame.Type === "string" && /^[a-z_]{1,32}$/i.test(frame.Type)) {
        signal(frame.Type.toLowerCase());
      }
    });
    socket.addEventListener("close", function () {
      socket = null;
      setLive("polling", "Refreshed every " + pollMs / 1000 + " s (no event socket)");
      startPolling(pollMs);
      if (opened) fire("mx:poll"); /* catch up on what happened while it was down */
      window.setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 60000);
    });
  }

  /* --- theme ---------------------------------------------------------------------------- */

  var themes = ["auto", "dark", "light"];
  var toggle = document.getElementById("theme-toggle");
  if (toggle) {
    toggle.hidden = false;
    toggle.addEventListener("click", function () {
      var current = document.documentElement.dataset.theme || "auto";
      var next = themes[(themes.indexOf(current) + 1) % themes.length];
      document.documentElement.dataset.theme = next;
      document.cookie = "mxrelay_theme=" + next + "; path=" + (body.dataset.webroot || "/") +
        "; max-age=31536000; SameSite=Strict";
      toggle.dataset.themeChoice = next;
      toggle.setAttribute("aria-label", "Colour theme: " + next);
      var name = toggle.querySelector(".theme-name");
      if (name) name.textContent = next;
    });
  }

  /* --- keyboard and pointer navigation in lists ------------------------------------------ */

  var currentId = null;

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tbody tr[data-href]"));
  }

  function mark(row) {
    rows().forEach(function (r) { r.classList.remove("is-current"); r.removeAttribute("aria-selected"); });
    if (!row) return;
    row.classList.add("is-current");
    row.setAttribute("aria-selected", "true");
    currentId = row.dataset.id || row.dataset.href;
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var index = all.findIndex(function (r) { return r.classList.contains("is-current"); });
    index = index < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, index + step));
    mark(all[index]);
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key;
    if (key === "Escape") {
      if (typing(event.target)) { event.target.blur(); return; }
      var back = document.querySelector("[data-back]");
      if (back && !document.querySelector(":popover-open")) { event.preventDefault(); location.href = back.href; }
      return;
    }
    if (typing(event.target)) return;
    if (key === "/") {
      var search = document.querySelector("input[type=search]");
      if (search) { event.preventDefault(); search.focus(); search.select(); }
    } else if (key === "j" || key === "ArrowDown") {
      if (rows().length) { event.preventDefault(); move(1); }
    } else if (key === "k" || key === "ArrowUp") {
      if (rows().length) { event.preventDefault(); move(-1); }
    } else if (key === "Enter") {
      var current = document.querySelector("tbody tr.is-current[data-href]");
      if (current && event.target === document.body || current && event.target === current) {
        event.preventDefault();
        location.href = current.dataset.href;
      }
    }
  });

  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("tbody tr[data-href]");
    if (!row || event.target.closest("a, button, input, label")) return;
    location.href = row.dataset.href;
  });

  /* A refreshed list keeps the row the operator had reached. */
  body.addEventListener("htmx:afterSettle", function () {
    if (!currentId) return;
    var again = rows().filter(function (r) { return (r.dataset.id || r.dataset.href) === currentId; })[0];
    if (again) { again.classList.add("is-current"); again.setAttribute("aria-selected", "true"); }
  });

  /* --- operator actions (rendered for operators only) ------------------------------------
   * Each button names an API call (data-method, data-url, data-body); the page confirms, then
   * sends it with the operator's own credentials. Never without an ID: for Mailpit's API an
   * empty list means every message. */

  var dialog = document.getElementById("confirm-dialog");

  function selectedIds(bar) {
    if (bar.dataset.ids) return bar.dataset.ids.split(",");
    return Array.prototype.slice.call(document.querySelectorAll("input[name=ids]:checked"))
      .map(function (box) { return box.value; });
  }

  function splitList(text) {
    return text.split(",").map(function (item) { return item.trim(); })
      .filter(function (item) { return item.length > 0; });
  }

  function bodyFor(kind, ids, typed) {
    if (kind === "read" || kind === "unread") return { IDs: ids, Read: kind === "read" };
    if (kind === "tags") return { IDs: ids, Tags: splitList(typed) };
    if (kind === "release") return { To: splitList(typed) };
    return { IDs: ids };
  }

  function ask(question, needsInput, then) {
    var input = document.getElementById("confirm-input");
    document.getElementById("confirm-question").textContent = question;
    input.hidden = !needsInput;
    input.value = "";
    dialog.returnValue = "";
    dialog.addEventListener("close", function answered() {
      dialog.removeEventListener("close", answered);
      if (dialog.returnValue === "ok") then(input.value);
    });
    dialog.showModal();
    (needsInput ? input : dialog.querySelector("button.primary")).focus();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-action]");
    if (!button || !dialog) return;
    var bar = button.closest(".actions");
    var status = bar.querySelector(".action-status");
    var ids = selectedIds(bar);
    if (!ids.length || ids.some(function (id) { return !/^[0-9A-Za-z]{1,64}$/.test(id); })) {
      status.textContent = "Select one or more messages first.";
      return;
    }
    var kind = button.dataset.body;
    var count = ids.length === 1 ? "1 message" : ids.length + " messages";
    var question = button.dataset.confirm.replace("{n}", count);
    ask(question, kind === "tags" || kind === "release", function (typed) {
      if (kind === "release" && !splitList(typed).length) { status.textContent = "No address given."; return; }
      status.textContent = button.textContent + "…";
      fetch(button.dataset.url, {
        method: button.dataset.method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(bodyFor(kind, ids, typed))
      }).then(function (response) {
        return response.text().then(function (text) {
          status.textContent = response.ok ? button.textContent + ": done." :
            button.textContent + " failed (" + response.status + "): " + text.slice(0, 200);
          if (response.ok) fire("mx:update", { data: { IDs: ids } });
          /* A message deleted from its own page: back to the list it was opened from. */
          var back = document.querySelector("a[data-back]");
          if (response.ok && button.dataset.action === "delete" && bar.dataset.ids && back) {
            location.href = back.href;
          }
        });
      }, function () {
        status.textContent = button.textContent + " failed: the relay did not answer.";
      });
    });
  });

  /* The selection survives the list's refreshes. */
  var checked = {};
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target.matches) return;
    if (target.matches("input[data-select-all]")) {
      document.querySelectorAll("input[name=ids]").forEach(function (box) {
        box.checked = target.checked;
        if (box.checked) checked[box.value] = true; else delete checked[box.value];
      });
    } else if (target.matches("input[name=ids]")) {
      if (target.checked) checked[target.value] = true; else delete checked[target.value];
    }
  });
  body.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = !!checked[box.value]; });
  });

  connect();
})();
