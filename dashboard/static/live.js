// Live updates of the list page: server-sent events from /live, placed without a reload.
// The server renders (and escapes) every fragment; this file only puts them in place:
// a changed row replaces the one shown, a new one goes on top of the first page, and each
// change is added to the activity list (repeats after a reconnect are dropped by event id).
(function () {
  "use strict";
  var source = null;
  var url = "";
  var lastId = "";
  var seen = new Set();

  function element(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function say(text) {
    var status = document.getElementById("live-status");
    if (status) status.textContent = text;
  }

  function onRow(event) {
    var row = element(event.data);
    if (!row || !row.id) return;
    var shown = document.getElementById(row.id);
    if (shown) {
      shown.replaceWith(row);
    } else {
      var body = document.getElementById("tx-rows");
      if (!body || body.dataset.prepend !== "true" || row.dataset.created !== "true") return;
      var empty = document.getElementById("no-rows");
      if (empty) empty.remove();
      body.prepend(row);
    }
    row.classList.add("fresh");
  }

  function onActivity(event) {
    if (event.lastEventId) lastId = event.lastEventId;
    var item = element(event.data);
    var list = document.getElementById("activity");
    if (!item || !list) return;
    var id = item.dataset.event;
    if (id && seen.has(id)) return;
    if (id) seen.add(id);
    list.prepend(item);
    while (list.children.length > 20) list.lastElementChild.remove();
  }

  function connect() {
    var holder = document.querySelector("[data-live-url]");
    var next = holder ? holder.dataset.liveUrl : "";
    if (source && next === url) return;
    if (source) source.close();
    source = null;
    url = next;
    if (!url) return;
    var address = url;
    if (lastId) address += (url.indexOf("?") < 0 ? "?" : "&") + "resume=" + encodeURIComponent(lastId);
    source = new EventSource(address);
    // "on" comes from the server, once its watch is live: a change made before then would be missed
    source.addEventListener("open", function () { say("Connecting to live updates…"); });
    source.addEventListener("error", function () { say("Live updates paused; reconnecting…"); });
    source.addEventListener("row", onRow);
    source.addEventListener("activity", onActivity);
    source.addEventListener("status", function (event) { say(event.data); });
    source.addEventListener("ended", function (event) {
      // the server will not stream for now (logged out, busy, or no WatchTransactions): try later
      say(event.data);
      source.close();
      source = null;
      window.setTimeout(connect, 60000);
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
  // htmx swapped the results (a filter or another page): follow the new filter
  document.addEventListener("htmx:afterSettle", connect);
})();
