// Reruns in progress: poll each one's progress and reload the page once it is finished,
// so new runs appear without a manual reload.
(function () {
  "use strict";
  const items = document.querySelectorAll("[data-progress-url]");
  if (!items.length) return;
  let pending = items.length;
  items.forEach(function (item) {
    const text = item.querySelector(".progress-text");
    function poll() {
      fetch(item.dataset.progressUrl, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          text.textContent = p.done + " of " + p.total + " probes done";
          if (p.finished) {
            pending -= 1;
            if (pending === 0) window.location.reload();
          } else {
            window.setTimeout(poll, 1500);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  });
})();
