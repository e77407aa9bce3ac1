// ripcord's dashboard: keeps a page's live parts ([data-live] sections)
// current. The server sends an event after each commit; the page fetches
// itself again and swaps the sections that changed, except one the person
// is typing in. While the tab is hidden the stream is closed (as Argo's
// UI does), and it catches up when the tab comes back.
(function () {
  "use strict";
  if (!document.querySelector("[data-live]")) return;
  var status = document.getElementById("live-status");
  var source = null;
  var busy = false;
  var again = false;

  function say(text) {
    if (status) status.textContent = "live updates: " + text;
  }

  function editing(el) {
    if (el.contains(document.activeElement) && document.activeElement !== document.body) return true;
    var inputs = el.querySelectorAll("input:not([type=hidden]), select, textarea");
    for (var i = 0; i < inputs.length; i++) if (inputs[i].value) return true;
    return false;
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "ripcord-live": "1" } })
      .then(function (r) {
        if (r.redirected || r.status === 401) { location.reload(); throw new Error("session ended"); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML && !editing(el)) el.replaceWith(fresh);
        });
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function open() {
    if (source || typeof EventSource === "undefined") return;
    source = new EventSource("/ui/events");
    source.addEventListener("ready", function () { say("on"); });
    source.addEventListener("change", refresh);
    source.onerror = function () { say("reconnecting"); };
  }

  function close() {
    if (source) { source.close(); source = null; }
    say("paused while the tab is hidden");
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { close(); } else { open(); refresh(); }
  });
  if (!document.hidden) open();
})();
