// "Bring your old mail": fill the server fields from a preset, and follow running imports.
(function () {
  "use strict";
  var hint = document.getElementById("preset-hint");
  document.querySelectorAll('input[name="preset"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (!radio.checked) { return; }
      document.getElementById("f-host").value = radio.dataset.host;
      document.getElementById("f-port").value = radio.dataset.port;
      document.getElementById("f-security").value = radio.dataset.security;
      hint.textContent = radio.dataset.hint;
    });
  });
  var box = document.getElementById("migrate-jobs");
  if (!box) { return; }
  function set(el, cls, value) {
    var node = el.querySelector("." + cls);
    if (node) { node.textContent = value; }
  }
  function poll() {
    fetch(box.dataset.url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var running = false;
        (data.jobs || []).forEach(function (j) {
          var el = box.querySelector('[data-job="' + j.job_id + '"]');
          if (!el) { return; }
          var bar = el.querySelector(".migrate-bar");
          if (bar) { bar.max = j.total || 1; bar.value = j.copied + j.skipped; }
          set(el, "migrate-state", j.status);
          set(el, "migrate-copied", j.copied);
          set(el, "migrate-total", j.total);
          set(el, "migrate-skipped", j.skipped);
          set(el, "migrate-failed", j.failed);
          set(el, "migrate-rate", j.rate);
          set(el, "migrate-folder", j.folder);
          if (j.status === "running") { running = true; }
        });
        var wasRunning = box.dataset.running === "1";
        box.dataset.running = running ? "1" : "0";
        if (running) { setTimeout(poll, 2000); } else if (wasRunning) { location.reload(); }
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  if (box.querySelector('.migrate-state') && Array.prototype.some.call(
      box.querySelectorAll(".migrate-state"), function (s) { return s.textContent === "running"; })) {
    box.dataset.running = "1";
    setTimeout(poll, 2000);
  }
})();
