// Copy buttons: <button class="copy-btn" data-copy="text">. No inline script (CSP).
(function () {
  "use strict";
  function fallback(text) {
    // navigator.clipboard needs a secure context; the box is often reached over plain
    // http on the LAN, where only the old selection-based copy works.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallback(text); });
    }
    return fallback(text);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".copy-btn") : null;
    if (!button) { return; }
    copy(button.dataset.copy).then(function () {
      button.textContent = "Copied";
    }, function () {
      button.textContent = "Select and copy by hand";
    });
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  });
})();
