// The console's own script: progressive enhancement only. Every action
// works without it (plain forms); with it, times read in the agent's own
// time zone, a saved reply fills the box, and keys do the common actions.
// No inline script anywhere: the Content-Security-Policy forbids it.
(function () {
  "use strict";

  // Times: the server writes UTC (or the brand's zone); show the agent's.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.title = t.textContent;
        t.textContent = d.toLocaleString([], {
          year: "numeric", month: "2-digit", day: "2-digit",
          hour: "2-digit", minute: "2-digit"
        });
      }
    });
  }

  // A saved reply: into the reply box, counted at once.
  function savedReplies(root) {
    var select = root.querySelector("#saved");
    var box = root.querySelector("#reply-text");
    if (!select || !box) return;
    root.querySelectorAll(".nojs").forEach(function (b) { b.hidden = true; });
    select.addEventListener("change", function () {
      var opt = select.options[select.selectedIndex];
      if (!opt || !opt.value) return;
      box.value = opt.getAttribute("data-text") || "";
      box.dispatchEvent(new Event("input", { bubbles: true }));
      box.focus();
    });
  }

  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" ||
      el.tagName === "SELECT" || el.isContentEditable);
  }

  // The inbox's rows: j and k move, Enter opens (a link is focused).
  function moveRow(step) {
    var links = Array.prototype.slice.call(
      document.querySelectorAll("tr[data-row] td:first-child a"));
    if (!links.length) return;
    var i = links.indexOf(document.activeElement);
    var next = i < 0 ? 0 : Math.max(0, Math.min(links.length - 1, i + step));
    links[next].focus();
  }

  var help = "Keys\n" +
    "Inbox: j / k move, Enter open, / filters\n" +
    "Ticket: r reply, n note, c claim, p pending, s solve, x close, o reopen, i inbox\n" +
    "In the reply box: Ctrl+Enter sends, Esc leaves the box";

  document.addEventListener("keydown", function (e) {
    var el = document.activeElement;
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && el && el.id === "reply-text") {
      var send = document.getElementById("send");
      if (send && !send.disabled) { e.preventDefault(); send.click(); }
      return;
    }
    if (e.key === "Escape" && typing(el)) { el.blur(); return; }
    if (typing(el) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") { moveRow(1); return; }
    if (e.key === "k") { moveRow(-1); return; }
    if (e.key === "?") { window.alert(help); return; }
    if (e.key === "/") {
      var f = document.querySelector("#filters select");
      if (f) { e.preventDefault(); f.focus(); }
      return;
    }
    var target = document.querySelector('[data-key="' + e.key + '"]');
    if (!target) return;
    e.preventDefault();
    if (target.tagName === "TEXTAREA") { target.focus(); } else { target.click(); }
  });

  function enhance(root) {
    localTimes(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    savedReplies(document);
  });
  document.addEventListener("htmx:afterSwap", function (e) { enhance(e.target); });
  document.addEventListener("htmx:oobAfterSwap", function (e) { enhance(e.target); });
})();
