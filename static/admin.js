// The admin console's one script: moves a blocklist import's progress bar without reloading.
// Progressive: without it the page refreshes itself (a <noscript> meta refresh) and shows the same.
(function () {
  "use strict";
  var box = document.querySelector(".import-progress[data-progress-url]");
  if (!box) { return; }
  document.documentElement.classList.add("js");
  var state = box.getAttribute("data-state");
  if (state === "done" || state === "dead") { return; }
  var url = box.getAttribute("data-progress-url");
  var bar = box.querySelector("progress");
  function set(selector, value) {
    var el = box.querySelector(selector);
    if (el) { el.textContent = String(value); }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (p) {
        bar.max = p.total || 1;
        bar.value = p.state === "done" ? bar.max : p.done;
        bar.textContent = p.percent + " %";
        set(".percent", p.percent);
        set(".done", p.done);
        set(".added", p.added);
        set(".updated", p.updated);
        box.setAttribute("data-state", p.state);
        if (p.state === "done" || p.state === "dead") {
          window.location.reload(); // the finished page lists the result and any refused lines
          return;
        }
        window.setTimeout(poll, 700);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
