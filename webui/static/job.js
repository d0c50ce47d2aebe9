// Polls the job's JSON until it ends; no inline script (the CSP forbids it).
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || box.dataset.state !== "running") { return; }
  var message = document.getElementById("job-message");
  var back = document.getElementById("job-back");
  var bar = box.querySelector(".progress");
  var polls = 0;
  function update(job) {
    message.textContent = job.message;
    message.className = "job-" + job.state;
    if (job.state !== "running") {
      bar.classList.remove("running");
      bar.classList.add(job.state);
      back.hidden = false;
      return true;
    }
    return false;
  }
  function poll() {
    polls += 1;
    if (polls > 3600) { return; }  // one hour at one poll a second
    fetch(box.dataset.url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (job) { if (!update(job)) { setTimeout(poll, 1000); } })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
